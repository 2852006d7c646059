// See http_server.h. The accept loop and the table of connections; one connection's requests: http_connection.cpp.
#include "serve/http_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

#include "imp/error.h"
#include "serve/http_connection.h"
#include "serve/http_errors.h"

namespace imp::serve {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct HttpServer::Impl {
    asio::io_context ioc;
    tcp::acceptor acceptor{ioc};
};

namespace {

// A connection answered 503 at accept: its write side is shut; what it sends is read and dropped until it closes or
// `until`, so that its request, unread, does not turn the close into a reset that loses the 503.
struct Refused {
    tcp::socket s;
    Clock::time_point until;
};
constexpr size_t kMaxRefused = 64;  // past it the oldest is closed at once

void refuse(tcp::socket s, const std::string& response, std::vector<Refused>& refused) {
    boost::system::error_code ec;
    s.non_blocking(true, ec);
    s.write_some(asio::buffer(response), ec);  // a fresh socket's send buffer takes it whole
    s.shutdown(tcp::socket::shutdown_send, ec);
    if (refused.size() >= kMaxRefused) refused.erase(refused.begin());
    refused.push_back({std::move(s), Clock::now() + std::chrono::seconds(1)});
}

// Reads what the refused connections sent (pfd: their poll results, in order); closes those done.
void drain(std::vector<Refused>& refused, const pollfd* pfd) {
    char scratch[4096];
    std::vector<Refused> keep;
    for (size_t i = 0; i < refused.size(); ++i) {
        Refused& r = refused[i];
        bool done = Clock::now() >= r.until;
        if (!done && pfd[i].revents) {
            boost::system::error_code ec;
            for (int i = 0; i < 16 && !ec; ++i) r.s.read_some(asio::buffer(scratch), ec);
            done = ec && ec != asio::error::would_block;
        }
        if (!done) keep.push_back(std::move(r));
    }
    refused.swap(keep);
}

}  // namespace

std::string http_url(const std::string& host, int port) {
    const bool v6 = host.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string host_error(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return ec ? "'" + host + "' is not an IP address (" + ec.message() + ")" : "";
}

HttpServer::HttpServer(const std::string& host, int port, Handler handler, HttpLimits limits)
    : impl_(std::make_unique<Impl>()), handler_(std::move(handler)), limits_(limits) {
    if (const std::string why = host_error(host); !why.empty()) throw Error("[server] host " + why);
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(host, ec);
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

bool HttpServer::make_room() {
    int live = 0;
    Conn* oldest = nullptr;
    int oldest_fd = -1;
    for (auto& [fd, c] : open_) {
        if (c.evicted) continue;
        ++live;
        if (!c.busy && (!oldest || c.waiting_since < oldest->waiting_since)) oldest = &c, oldest_fd = fd;
    }
    if (live < limits_.max_connections) return true;
    if (!oldest) return false;
    oldest->evicted = true;
    ::shutdown(oldest_fd, SHUT_RD);  // its read sees the end of input; the thread closes it
    return true;
}

bool HttpServer::conn_waiting(int fd) {
    std::lock_guard<std::mutex> l(mu_);
    Conn& c = open_.at(fd);
    if (stopping_ || c.evicted) return false;
    c.busy = false;
    c.waiting_since = Clock::now();
    return true;
}

bool HttpServer::conn_busy(int fd) {
    std::lock_guard<std::mutex> l(mu_);
    Conn& c = open_.at(fd);
    c.busy = !c.evicted;
    return c.busy;
}

bool HttpServer::conn_evicted(int fd) {
    std::lock_guard<std::mutex> l(mu_);
    return open_.at(fd).evicted;
}

void HttpServer::accept_loop() {
    auto& a = impl_->acceptor;
    std::vector<Refused> refused;
    Clock::time_point warned{};
    while (!stopping_) {
        std::vector<pollfd> p{{a.native_handle(), POLLIN, 0}};
        for (auto& r : refused) p.push_back({r.s.native_handle(), POLLIN, 0});
        ::poll(p.data(), p.size(), 100);  // wakes every 100 ms to see stop()
        drain(refused, p.data() + 1);
        if (!(p[0].revents & POLLIN)) continue;
        tcp::socket s(impl_->ioc);
        boost::system::error_code ec;
        a.accept(s, ec);
        if (ec) continue;
        const int fd = s.native_handle();
        {
            std::lock_guard<std::mutex> l(mu_);
            if (!make_room()) {
                if (Clock::now() - warned > std::chrono::seconds(10)) {
                    spdlog::warn("serve: {} connections open, all with a request in progress: answering 503",
                                 limits_.max_connections);
                    warned = Clock::now();
                }
                refuse(std::move(s), too_many_connections(limits_.max_connections), refused);
                continue;
            }
            open_[fd] = Conn{false, Clock::now(), false};
        }
        s.non_blocking(false, ec);
        std::thread([this, fd, sock = std::make_shared<tcp::socket>(std::move(s))] {
            const ConnectionHooks hooks{[this, fd] { return conn_waiting(fd); }, [this, fd] { return conn_busy(fd); },
                                        [this, fd] { return conn_evicted(fd); }};
            serve_connection(*sock, handler_, limits_, hooks);
            // Nothing of `this` is touched after the lock is released: stop() may return then.
            boost::system::error_code cec;
            sock->shutdown(tcp::socket::shutdown_both, cec);
            std::lock_guard<std::mutex> l(mu_);
            open_.erase(fd);
            sock->close(cec);
            cv_.notify_all();
        }).detach();
    }
}

void HttpServer::stop_accepting() {
    if (stopping_.exchange(true)) return;
    if (accept_thread_.joinable()) accept_thread_.join();
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [fd, c] : open_)
        if (!c.busy) ::shutdown(fd, SHUT_RDWR);
}

void HttpServer::stop(std::chrono::milliseconds grace) {
    stop_accepting();
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, grace, [&] { return open_.empty(); });
    for (auto& [fd, c] : open_) ::shutdown(fd, SHUT_RDWR);
    cv_.wait(l, [&] { return open_.empty(); });
}

}  // namespace imp::serve
