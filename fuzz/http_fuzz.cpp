// Fuzz target: the bytes a client sends on one connection, as imp serve's HTTP layer reads them (serve_connection:
// Beast's parser under imp's header and body limits, keep-alive and pipelined requests, the error answers of
// http_errors.h), over a socket pair, with a handler that echoes each request (the target "/stream" answers with an
// event stream). What comes back must be whole HTTP/1.x responses: the handler's answers exactly as sent, in order,
// then at most one error answer (400, 408, 413, 414, 431, 505 for a request the server cannot read) with a JSON error
// body, which closes the connection; and the connection must end once the client's bytes do.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
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

// The client end of the socket pair, served by one thread for the whole process: a thread per input costs ASan about
// 190 bytes it never gives back, which over an hour's run nears scripts/fuzz's 2 GB RSS limit. For each input it
// sends the bytes, shuts its writing side and reads until the server closes, with poll() between the two so neither
// waits on the other's full socket buffer.
class Client {
public:
    Client() : thread_([this] { loop(); }) {}
    ~Client() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    void start(int fd, const uint8_t* data, size_t size) {
        {
            std::lock_guard lock(mutex_);
            fd_ = fd, data_ = data, size_ = size, out_.clear(), busy_ = true;
        }
        wake_.notify_all();
    }
    // What the server sent, once it closed its end.
    std::string finish() {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return !busy_; });
        return std::move(out_);
    }

private:
    void loop() {
        for (;;) {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return busy_ || stop_; });
            if (stop_) return;
            lock.unlock();
            std::string out = talk();
            lock.lock();
            out_ = std::move(out), busy_ = false;
            lock.unlock();
            wake_.notify_all();
        }
    }
    std::string talk() const {
        std::string out;
        size_t sent = 0;
        bool writing = true;
        char b[65536];
        for (;;) {
            if (writing && sent == size_) {
                ::shutdown(fd_, SHUT_WR);
                writing = false;
            }
            pollfd p{fd_, short(POLLIN | (writing ? POLLOUT : 0)), 0};
            if (::poll(&p, 1, -1) < 0) {
                if (errno == EINTR) continue;
                return out;
            }
            if (writing && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
                const ssize_t n = ::send(fd_, data_ + sent, size_ - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) sent += size_t(n);
                else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) sent = size_;  // closed
            }
            if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
                const ssize_t n = ::recv(fd_, b, sizeof b, MSG_DONTWAIT);
                if (n > 0) out.append(b, size_t(n));
                else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return out;
            }
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    int fd_ = -1;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    std::string out_;
    bool busy_ = false, stop_ = false;
    std::thread thread_;  // last: starts once the members above exist
};

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

    static Client client;
    client.start(fds[1], data, size);

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
    const std::string out = client.finish();
    ::close(fds[1]);
    check_responses(out, sent);
    return 0;
}
