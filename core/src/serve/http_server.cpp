// See http_server.h.
#include "serve/http_server.h"

#include <poll.h>
#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange without it
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "imp/error.h"

namespace imp::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
    asio::io_context ioc;
    tcp::acceptor acceptor{ioc};
};

namespace {

class SocketResponder : public Responder {
public:
    SocketResponder(tcp::socket& s, unsigned version, bool keep_alive) : s_(s), version_(version), keep_alive_(keep_alive) {}
    void send(int status, const std::string& content_type, const std::string& body) override {
        http::response<http::string_body> res{http::status(status), version_};
        res.set(http::field::server, "imp");
        res.set(http::field::content_type, content_type);
        res.keep_alive(keep_alive_);
        res.body() = body;
        res.prepare_payload();
        beast::error_code ec;
        http::write(s_, res, ec);
        if (ec) keep_alive_ = false;
    }
    bool start_stream() override {
        streamed_ = true;
        return write_raw("HTTP/1.1 200 OK\r\nServer: imp\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         "Connection: close\r\n\r\n");
    }
    bool event(const std::string& data) override { return write_raw("data: " + data + "\n\n"); }
    bool client_gone() override {
        pollfd p{s_.native_handle(), POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
        char c;
        return ::recv(s_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }
    bool keep_open() const { return keep_alive_ && !streamed_; }

private:
    bool write_raw(const std::string& s) {
        beast::error_code ec;
        asio::write(s_, asio::buffer(s), ec);
        return !ec;
    }
    tcp::socket& s_;
    unsigned version_;
    bool keep_alive_, streamed_ = false;
};

}  // namespace

HttpServer::HttpServer(const std::string& host, int port, Handler handler, int max_connections)
    : impl_(std::make_unique<Impl>()), handler_(std::move(handler)), max_connections_(max_connections) {
    beast::error_code ec;
    const auto addr = asio::ip::make_address(host, ec);
    if (ec) throw Error("[server] host '" + host + "': not an IP address (" + ec.message() + ")");
    const tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    auto& a = impl_->acceptor;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) a.non_blocking(true, ec);
    if (ec) throw Error("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
    port_ = a.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::accept_loop() {
    auto& a = impl_->acceptor;
    while (!stopping_) {
        pollfd p{a.native_handle(), POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;  // wakes every 100 ms to see stop()
        tcp::socket s(impl_->ioc);
        beast::error_code ec;
        a.accept(s, ec);
        if (ec) continue;
        const int fd = s.native_handle();
        {
            std::lock_guard<std::mutex> l(mu_);
            if (int(open_.size()) >= max_connections_) {
                spdlog::warn("serve: {} connections open, refusing another", open_.size());
                continue;  // s closes
            }
            open_.insert(fd);
        }
        s.non_blocking(false, ec);
        std::thread([this, sock = std::make_shared<tcp::socket>(std::move(s))]() mutable {
            beast::flat_buffer buf;
            for (;;) {
                http::request_parser<http::string_body> parser;
                parser.body_limit(8u << 20);
                beast::error_code rec;
                http::read(*sock, buf, parser, rec);
                if (rec == http::error::body_limit) {
                    SocketResponder r(*sock, 11, false);
                    r.send(413, "application/json",
                           R"({"error":{"message":"the request body is larger than 8 MiB","type":"invalid_request_error","param":null,"code":null}})");
                    break;
                }
                if (rec) break;  // closed, or not HTTP
                auto& req = parser.get();
                SocketResponder r(*sock, req.version(), req.keep_alive());
                HttpRequest hr{std::string(req.method_string()), std::string(req.target()), std::move(req.body())};
                try {
                    handler_(hr, r);
                } catch (const std::exception& e) {
                    spdlog::error("serve: handler failed: {}", e.what());
                    break;
                }
                if (!r.keep_open() || stopping_) break;
            }
            // Nothing of `this` is touched after the lock is released: stop() may return then.
            beast::error_code cec;
            sock->shutdown(tcp::socket::shutdown_both, cec);
            std::lock_guard<std::mutex> l(mu_);
            open_.erase(sock->native_handle());
            sock->close(cec);
            cv_.notify_all();
        }).detach();
    }
}

void HttpServer::stop() {
    if (stopping_.exchange(true)) return;
    if (accept_thread_.joinable()) accept_thread_.join();
    beast::error_code ec;
    impl_->acceptor.close(ec);
    std::unique_lock<std::mutex> l(mu_);
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    cv_.wait(l, [&] { return open_.empty(); });
}

}  // namespace imp::serve
