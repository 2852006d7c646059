// Fuzz target: the bytes a client sends on one connection, as imp serve's HTTP layer reads them (serve_connection:
// Beast's parser under imp's header and body limits, keep-alive and pipelined requests, the error answers of
// http_errors.h), over a socket pair, with a handler that echoes each request (the target "/stream" answers with an
// event stream). What comes back must be whole HTTP/1.x responses: the handler's answers exactly as sent, in order,
// then at most one error answer (400, 408, 413, 414, 431, 505 for a request the server cannot read) with a JSON error
// body, which closes the connection; and the connection must end once the client's bytes do.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
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

// The responses in `out`, in order: the handler's answers, each exactly as it sent it (`sent`: its bodies, a stream's
// as its event lines), then at most one error answer, which comes last.
void check_responses(std::string_view out, const std::vector<std::string>& sent) {
    size_t answers = 0;
    bool error = false, closed = false;
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
        if (status == 200) {
            require(!error && answers < sent.size() && res.body() == sent[answers]);
            ++answers;
        } else {
            require(status == 400 || status == 408 || status == 413 || status == 414 || status == 431 ||
                    status == 505);
            const auto j = nlohmann::json::parse(res.body(), nullptr, false);
            require(j.is_object() && j.contains("error") && j["error"].is_object() &&
                    j["error"].value("message", "") != "");
            require(!res.keep_alive());
            error = true;
        }
        closed = !res.keep_alive();
        out.remove_prefix(used);
    }
    require(answers == sent.size());
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

    std::vector<std::string> sent;
    const imp::serve::Handler echo = [&](const imp::serve::HttpRequest& r, imp::serve::Responder& res) {
        const std::string text = r.method + " " + r.target + " " + std::to_string(r.body.size());
        if (r.target == "/stream") {
            sent.push_back("data: " + text + "\n\n");
            if (res.start_stream()) res.event(text);
            return;
        }
        sent.push_back(text);
        res.send(200, "text/plain", text);
    };
    // The client's bytes are all sent at once and its side shut: a connection that waits for more is a hang, which
    // libFuzzer reports after its -timeout (60 s in scripts/fuzz).
    imp::serve::HttpLimits limits;
    limits.request_timeout = std::chrono::hours(1);
    limits.idle_timeout = std::chrono::hours(1);
    const imp::serve::ConnectionHooks hooks{[] { return true; }, [] { return true; }, [] { return false; }};
    imp::serve::serve_connection(server, echo, limits, hooks);
    boost::system::error_code ec;
    server.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    server.close(ec);
    writer.join();
    reader.join();
    ::close(fds[1]);
    check_responses(out, sent);
    return 0;
}
