// Fuzz target: the bytes a client sends on one connection, as imp serve's HTTP layer reads them (serve_connection:
// Beast's parser under imp's header and body limits, keep-alive and pipelined requests, the error answers of
// http_errors.h), over a socket pair, with a handler that echoes each request (the target "/stream" answers with an
// event stream). What comes back must be whole HTTP/1.1 responses, each of a status imp sends (200 from the handler;
// 400, 408, 413, 414, 431, 505 for a request it cannot read), an error answer with a JSON error body and the last on
// its connection; and the connection must end once the client's bytes do.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <utility>  // before Boost.Asio 1.74 (awaitable.hpp uses std::exchange)

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "serve/http_connection.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

// Every response in `out`, in order: checked as the header says.
void check_responses(std::string_view out, int requests_answered) {
    int seen = 0;
    bool closed = false;
    while (!out.empty()) {
        require(!closed);  // nothing after a response that closed the connection
        http::response_parser<http::string_body> p;
        p.eager(true);
        p.body_limit(64u << 20);
        beast::error_code ec;
        size_t used = p.put(boost::asio::buffer(out.data(), out.size()), ec);
        while (!ec && !p.is_done() && used < out.size()) {
            const size_t n = p.put(boost::asio::buffer(out.data() + used, out.size() - used), ec);
            if (n == 0) break;
            used += n;
        }
        if (!p.is_done() && (!ec || ec == http::error::need_more)) {
            ec = {};
            p.put_eof(ec);  // a stream's body ends with the connection
        }
        require(!ec && p.is_done());
        const auto& res = p.get();
        const int status = res.result_int();
        require(res.version() == 11 || res.version() == 10);  // the handler answers in the request's version
        require(status == 200 || status == 400 || status == 408 || status == 413 || status == 414 || status == 431 ||
                status == 505);
        if (status != 200) {
            const auto j = nlohmann::json::parse(res.body(), nullptr, false);
            require(j.is_object() && j.contains("error") && j["error"].is_object() &&
                    j["error"].value("message", "") != "");
            require(!res.keep_alive());
        }
        closed = !res.keep_alive();
        out.remove_prefix(used);
        ++seen;
    }
    require(seen >= requests_answered);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 0;
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket server(io);
    server.assign(boost::asio::ip::tcp::v4(), fds[0]);

    // The client: sends the input and shuts its side; reads everything the server says until it closes.
    std::string out;
    std::thread reader([&] {
        char b[65536];
        for (ssize_t n; (n = ::recv(fds[1], b, sizeof b, 0)) > 0;) out.append(b, size_t(n));
    });
    std::thread writer([&] {
        for (size_t off = 0; off < size;) {
            const ssize_t n = ::send(fds[1], data + off, size - off, MSG_NOSIGNAL);
            if (n <= 0) break;
            off += size_t(n);
        }
        ::shutdown(fds[1], SHUT_WR);
    });

    int answered = 0;
    const imp::serve::Handler echo = [&](const imp::serve::HttpRequest& r, imp::serve::Responder& res) {
        ++answered;
        if (r.target == "/stream") {
            if (res.start_stream()) res.event(r.method + " " + std::to_string(r.body.size()));
            return;
        }
        res.send(200, "text/plain", r.method + " " + r.target + " " + std::to_string(r.body.size()));
    };
    imp::serve::HttpLimits limits;
    limits.request_timeout = std::chrono::milliseconds(5000);  // the client's bytes are all sent at once: never hit
    limits.idle_timeout = std::chrono::milliseconds(5000);
    const imp::serve::ConnectionHooks hooks{[] { return true; }, [] { return true; }, [] { return false; }};
    imp::serve::serve_connection(server, echo, limits, hooks);
    boost::system::error_code ec;
    server.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    server.close(ec);
    writer.join();
    reader.join();
    ::close(fds[1]);
    check_responses(out, answered);
    return 0;
}
