// One connection's life, on its own thread (http_server.h): reads requests under the deadlines of HttpLimits, hands
// each to the handler, and answers a request it cannot take with an OpenAI-style JSON error naming the header or
// limit at fault, then closes: the status Beast's parser implies (400 malformed, 413 body too large, 414 request line
// too long, 431 headers too large), 408 for a request not sent whole in time, 505 for HTTP/2 or another version.
#pragma once
#include <functional>
#include <string>
#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange without it

#include <boost/asio/ip/tcp.hpp>

#include "serve/http_server.h"

namespace imp::serve {

constexpr size_t kHeaderLimit = 8192;      // request line and headers, bytes (larger: 414 or 431)
constexpr size_t kBodyLimit = 8u << 20;    // request body, bytes (larger: 413)

// What the connection tells its server (http_server.cpp keeps a table of connections by these).
struct ConnectionHooks {
    std::function<bool()> waiting;  // about to wait for a request; false: the server is stopping, close
    std::function<bool()> busy;     // a request was read and goes to the handler; false: evicted meanwhile
    std::function<bool()> evicted;  // the read ended: was it the server closing us to make room for another?
};

void serve_connection(boost::asio::ip::tcp::socket& s, const Handler& handler, const HttpLimits& limits,
                      const ConnectionHooks& hooks);

// {"error": {"message", "type", "param": null, "code": null}}.
std::string http_error_body(const std::string& message, const std::string& type);
// A whole HTTP/1.1 response with that body and "Connection: close".
std::string http_error_response(int status, const std::string& message);
// The answer to a connection over the limit, when every open one is in a handler.
std::string too_many_connections(int max_connections);

}  // namespace imp::serve
