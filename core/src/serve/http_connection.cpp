// See http_connection.h.
#include "serve/http_connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <sstream>
#include <string_view>

#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "serve/http_errors.h"

namespace imp::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Milliseconds left until `t` (0 when past), for poll().
int ms_until(Clock::time_point t) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now()).count();
    return int(std::clamp<int64_t>(left, 0, 1 << 30));
}

// The socket as Beast's http::read sees it: a read waits at most until the deadline, then fails with
// beast::error::timeout. The deadline is the idle one until the request's first byte, then the request one from it.
class DeadlineReader {
public:
    explicit DeadlineReader(tcp::socket& s) : s_(s) {}
    // Before each request; `pending`: its bytes already buffered (pipelined).
    void start(std::string_view pending, const HttpLimits& lim) {
        request_ = lim.request_timeout;
        got_ = !pending.empty();
        deadline_ = Clock::now() + (got_ ? lim.request_timeout : lim.idle_timeout);
        head_.assign(pending.substr(0, kHeaderLimit));
    }
    bool got_bytes() const { return got_; }
    // The request's first bytes (up to kHeaderLimit) as received: Beast's buffer no longer holds what it parsed.
    std::string_view head() const { return head_; }

    template <class Buffers>
    size_t read_some(const Buffers& b, beast::error_code& ec) {
        for (;;) {
            const int left = ms_until(deadline_);
            if (left == 0) {
                ec = beast::error::timeout;
                return 0;
            }
            pollfd p{s_.native_handle(), POLLIN, 0};
            const int r = ::poll(&p, 1, left);
            if (r > 0) break;
            if (r < 0 && errno != EINTR) {
                ec.assign(errno, boost::system::system_category());
                return 0;
            }
        }
        const size_t n = s_.read_some(b, ec);
        size_t left = n;
        for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b) && left > 0 &&
                                                      head_.size() < kHeaderLimit; ++it) {
            const size_t k = std::min({left, it->size(), kHeaderLimit - head_.size()});
            head_.append(static_cast<const char*>(it->data()), k);
            left -= std::min(left, it->size());
        }
        if (n > 0 && !got_) {
            got_ = true;
            deadline_ = Clock::now() + request_;
        }
        return n;
    }
    template <class Buffers>
    size_t read_some(const Buffers& b) {
        beast::error_code ec;
        const size_t n = read_some(b, ec);
        if (ec) throw beast::system_error(ec);
        return n;
    }

private:
    tcp::socket& s_;
    std::chrono::milliseconds request_{0};
    Clock::time_point deadline_;
    bool got_ = false;
    std::string head_;
};

class SocketResponder : public Responder {
public:
    SocketResponder(tcp::socket& s, unsigned version, bool keep_alive, std::chrono::milliseconds write_timeout)
        : s_(s), version_(version), keep_alive_(keep_alive), write_timeout_(write_timeout) {}
    void send(int status, const std::string& content_type, const std::string& body) override {
        if (streamed_) {  // a failure after the event stream began: the stream ends with it as an event, then [DONE]
            if (event(body)) event("[DONE]");
            return;
        }
        http::response<http::string_body> res{http::status(status), version_};
        res.set(http::field::server, "imp");
        res.set(http::field::content_type, content_type);
        res.keep_alive(keep_alive_);
        res.body() = body;
        res.prepare_payload();
        std::ostringstream os;
        os << res;
        if (!write_all(os.str())) keep_alive_ = false;
    }
    bool start_stream() override {
        streamed_ = true;
        return write_all("HTTP/1.1 200 OK\r\nServer: imp\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         "Connection: close\r\n\r\n");
    }
    bool event(const std::string& data) override { return write_all("data: " + data + "\n\n"); }
    // A peer that shut its side down (EOF, even a half-close) or reset counts as gone, as in nginx and Go's net/http;
    // so does one that took no byte of a write for the write timeout.
    bool client_gone() override {
        if (broken_) return true;
        pollfd p{s_.native_handle(), POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
        char c;
        return ::recv(s_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }
    bool keep_open() const { return keep_alive_ && !streamed_ && !broken_; }

private:
    // Writes all of `s`; false (and every later write fails at once) when the peer is gone or takes no byte for
    // write_timeout_: a client that stops reading must not hold this thread, its connection slot and its request.
    bool write_all(std::string_view s) {
        if (broken_) return false;
        const int fd = s_.native_handle();
        auto until = Clock::now() + write_timeout_;
        while (!s.empty()) {
            const ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                s.remove_prefix(size_t(n));
                until = Clock::now() + write_timeout_;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                const int left = ms_until(until);
                pollfd p{fd, POLLOUT, 0};
                if (left > 0 && (::poll(&p, 1, left) >= 0 || errno == EINTR)) continue;
            }
            broken_ = true;
            keep_alive_ = false;
            return false;
        }
        return true;
    }
    tcp::socket& s_;
    unsigned version_;
    bool keep_alive_, streamed_ = false, broken_ = false;
    std::chrono::milliseconds write_timeout_;
};

// After an error answer: the write side is shut, then what the client still sends is read and dropped (for at most
// 2 s and 4 MiB) until it closes, so that unread input does not turn the close into a reset that loses the answer.
void close_after_answer(tcp::socket& s) {
    beast::error_code ec;
    s.shutdown(tcp::socket::shutdown_send, ec);
    const auto until = Clock::now() + std::chrono::seconds(2);
    char scratch[16384];
    for (size_t dropped = 0; dropped < (4u << 20);) {
        pollfd p{s.native_handle(), POLLIN, 0};
        if (::poll(&p, 1, ms_until(until)) <= 0) return;
        const ssize_t n = ::recv(s.native_handle(), scratch, sizeof scratch, MSG_DONTWAIT);
        if (n <= 0) return;
        dropped += size_t(n);
    }
}

}  // namespace

void serve_connection(tcp::socket& s, const Handler& handler, const HttpLimits& limits, const ConnectionHooks& hooks) {
    beast::flat_buffer buf;
    DeadlineReader in(s);
    while (hooks.waiting()) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(kHeaderLimit);
        parser.body_limit(kBodyLimit);
        in.start(std::string_view(static_cast<const char*>(buf.cdata().data()), buf.size()), limits);
        beast::error_code ec;
        http::read(in, buf, parser, ec);
        ReadError err;
        if (ec) {
            err = read_error(ec, in.head(), in.got_bytes(), limits.request_timeout);
            if (err.status == 0 && in.got_bytes() && hooks.evicted()) err = evicted(limits.max_connections);
            if (err.status == 0) return;
        } else if (!hooks.busy()) {
            err = evicted(limits.max_connections);
        }
        if (err.status) {
            asio::write(s, asio::buffer(http_error_response(err.status, err.message)), ec);
            close_after_answer(s);
            return;
        }
        auto& req = parser.get();
        SocketResponder r(s, req.version(), req.keep_alive(), limits.write_timeout);
        HttpRequest hr{std::string(req.method_string()), std::string(req.target()), std::move(req.body())};
        try {
            handler(hr, r);
        } catch (const std::exception& e) {
            spdlog::error("serve: handler failed: {}", e.what());
            return;
        }
        if (!r.keep_open()) return;
    }
}

}  // namespace imp::serve
