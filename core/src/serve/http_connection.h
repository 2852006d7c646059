// One connection's life, on its own thread (http_server.h): reads requests under the deadlines of HttpLimits, hands
// each to the handler, and answers a request it cannot take (http_errors.h) before it closes.
#pragma once
#include <functional>
#include <string>
#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange without it

#include <boost/asio/ip/tcp.hpp>

#include "serve/http_server.h"

namespace imp::serve {

// What the connection tells its server (http_server.cpp keeps a table of connections by these).
struct ConnectionHooks {
    std::function<bool()> waiting;  // about to wait for a request; false: the server is stopping, close
    std::function<bool()> busy;     // a request was read and goes to the handler; false: evicted meanwhile
    std::function<bool()> evicted;  // the read ended: was it the server closing us to make room for another?
};

void serve_connection(boost::asio::ip::tcp::socket& s, const Handler& handler, const HttpLimits& limits,
                      const ConnectionHooks& hooks);

}  // namespace imp::serve
