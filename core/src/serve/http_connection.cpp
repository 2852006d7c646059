// See http_connection.h.
#include "serve/http_connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <string_view>
#include <vector>

#include "model/display_text.h"


namespace imp::serve {

namespace asio = boost::asio;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

std::string seconds(std::chrono::milliseconds t) {
    const auto ms = t.count();
    return ms % 1000 ? std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + " s"
                     : std::to_string(ms / 1000) + " s";
}

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
        for (auto it = net::buffer_sequence_begin(b); it != net::buffer_sequence_end(b) && left > 0 &&
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
    // A peer that shut its side down (EOF, even a half-close) or reset counts as gone, as in nginx and Go's net/http.
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

struct ReadError {
    int status = 0;  // 0: nothing to answer (the client left, or a connection idle too long)
    std::string message;
};

std::string_view first_line(std::string_view head) { return head.substr(0, head.find_first_of("\r\n")); }

// The Content-Length values of a request head, as sent.
std::vector<std::string> content_lengths(std::string_view head) {
    head = head.substr(0, head.find("\r\n\r\n"));
    std::vector<std::string> out;
    constexpr std::string_view key = "content-length:";
    for (size_t at = head.find('\n'); at != std::string_view::npos; at = head.find('\n', at + 1)) {
        const std::string_view line = first_line(head.substr(at + 1));
        if (line.size() < key.size() || !std::equal(key.begin(), key.end(), line.begin(), [](char a, char b) {
                return a == std::tolower(static_cast<unsigned char>(b));
            }))
            continue;
        std::string_view v = line.substr(key.size());
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        out.emplace_back(v);
    }
    return out;
}

ReadError bad_content_length(std::string_view head) {
    const auto v = content_lengths(head);
    if (v.size() > 1) {
        std::string all;
        for (const auto& x : v) all += (all.empty() ? "" : ", ") + quoted(x, 40);
        return {400, "Content-Length is given " + std::to_string(v.size()) + " times (" + all + ")"};
    }
    const std::string x = v.empty() ? "" : v[0];
    if (!x.empty() && x.size() <= 40 && std::all_of(x.begin(), x.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return {413, "the request body (Content-Length " + x + ") is larger than " +
                         std::to_string(kBodyLimit >> 20) + " MiB"};
    return {400, "Content-Length " + quoted(x, 40) + " is not a length (a decimal number of bytes)"};
}

// What to answer a request Beast's parser refused (or that did not come in time).
ReadError read_error(const beast::error_code& ec, std::string_view head, bool got_bytes, const HttpLimits& lim) {
    using he = http::error;
    const std::string limit = std::to_string(kHeaderLimit) + " bytes";
    if (ec == beast::error::timeout)
        return got_bytes ? ReadError{408, "the request did not arrive whole within " + seconds(lim.request_timeout)}
                         : ReadError{};
    if (ec == he::header_limit) {
        if (head.find('\n') == std::string_view::npos)
            return {414, "the request line (method, URL, version) is longer than " + limit};
        return {431, "the request line and headers are larger than " + limit};
    }
    if (ec == he::body_limit)
        return {413, "the request body is larger than " + std::to_string(kBodyLimit >> 20) + " MiB"};
    if (ec == he::bad_content_length) return bad_content_length(head);
    if (ec == he::bad_chunk || ec == he::bad_chunk_extension)
        return {400, "the chunked body has a bad chunk size line (" + ec.message() + ")"};
    if (ec == he::bad_transfer_encoding)
        return {400, "the Transfer-Encoding header is not one this server reads (only chunked, last)"};
    const std::string_view line = first_line(head);
    if (line.size() < head.size() && head[line.size()] == '\n')
        return {400, "the request line ends with a bare LF; HTTP/1.1 lines end with CRLF"};
    const std::string_view version = line.substr(line.size() < 8 ? 0 : line.size() - 8);
    if (ec == he::bad_version && line.size() > 9 && line[line.size() - 9] == ' ' && version.substr(0, 5) == "HTTP/" &&
        std::isdigit(static_cast<unsigned char>(version[5])) && version[6] == '.' &&
        std::isdigit(static_cast<unsigned char>(version[7])) && version.substr(5, 1) != "1")
        return {505, std::string(version) + " is not supported; this server speaks HTTP/1.1"};
    if (ec == he::bad_method || ec == he::bad_target || ec == he::bad_version)
        return {400, "not an HTTP/1.x request (" + ec.message() + "): the request line is " + quoted(line, 100)};
    if (ec == he::bad_line_ending || ec == he::bad_field || ec == he::bad_value || ec == he::bad_obs_fold)
        return {400, "the request head is malformed (" + ec.message() + ")"};
    return {};  // the client closed or the connection failed: nobody to answer
}

ReadError evicted(const HttpLimits& lim) {
    return {503, "the server has " + std::to_string(lim.max_connections) + " connections open and closed this one, "
                 "the longest waiting for its request; retry"};
}

}  // namespace

std::string http_error_body(const std::string& message, const std::string& type) {
    using json = nlohmann::json;
    const json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string http_error_response(int status, const std::string& message) {
    const std::string body = http_error_body(message, status == 503 ? "server_error" : "invalid_request_error");
    return "HTTP/1.1 " + std::to_string(status) + " " + std::string(http::obsolete_reason(http::status(status))) +
           "\r\nServer: imp\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
}

std::string too_many_connections(int max_connections) {
    return http_error_response(503, "the server has " + std::to_string(max_connections) +
                                        " connections open, every one with a request in progress; retry later");
}

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
            err = read_error(ec, in.head(), in.got_bytes(), limits);
            if (err.status == 0 && in.got_bytes() && hooks.evicted()) err = evicted(limits);
            if (err.status == 0) return;
        } else if (!hooks.busy()) {
            err = evicted(limits);
        }
        if (err.status) {
            asio::write(s, asio::buffer(http_error_response(err.status, err.message)), ec);
            close_after_answer(s);
            return;
        }
        auto& req = parser.get();
        SocketResponder r(s, req.version(), req.keep_alive());
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
