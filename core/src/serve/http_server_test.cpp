// HttpServer on loopback with a trivial handler, through raw sockets: silent and slow clients are timed out (408 for
// a request begun), idle connections over the limit make room for new ones, and a connection over the limit when
// every one is in a handler gets a 503 JSON error rather than a reset.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "serve/http_server.h"

using namespace imp::serve;
using namespace std::chrono_literals;

namespace {

// A raw loopback client.
class Client {
public:
    explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }
    ~Client() { ::close(fd_); }
    void send(const std::string& s) { REQUIRE(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size())); }
    // Everything until the server closes, or until `limit` passes (then "<open>" is appended); "<reset>" on a reset.
    std::string read_all(std::chrono::milliseconds limit = 5000ms) {
        std::string out;
        const auto until = std::chrono::steady_clock::now() + limit;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
            pollfd p{fd_, POLLIN, 0};
            if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) <= 0) return out + "<open>";
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n == 0) return out;
            if (n < 0) return out + "<reset>";
            out.append(buf, size_t(n));
        }
    }
    // One response on a kept-alive connection (its head and a Content-Length body).
    std::string read_response() {
        std::string out;
        char c;
        while (out.find("\r\n\r\n") == std::string::npos && ::recv(fd_, &c, 1, 0) == 1) out += c;
        const size_t at = out.find("Content-Length: ");
        REQUIRE(at != std::string::npos);
        size_t n = std::stoul(out.substr(at + 16));
        while (n-- > 0 && ::recv(fd_, &c, 1, 0) == 1) out += c;
        return out;
    }

private:
    int fd_;
};

const std::string kGet = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";

Handler ok_handler() {
    return [](const HttpRequest& r, Responder& out) { out.send(200, "application/json", "{\"path\":\"" + r.target + "\"}"); };
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

TEST_CASE("http: a silent connection is closed, a request not sent whole in time gets 408", "[serve][http]") {
    HttpLimits lim;
    lim.request_timeout = 1000ms;
    lim.idle_timeout = 1000ms;
    HttpServer srv("127.0.0.1", 0, ok_handler(), lim);

    Client silent(srv.port());
    CHECK(silent.read_all() == "");  // closed with nothing to answer

    Client half(srv.port());
    half.send("POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n{\"a\"");
    const std::string r = half.read_all();
    CHECK(starts_with(r, "HTTP/1.1 408 "));
    CHECK(r.find(R"({"error":{"code":null,"message":"the request did not arrive whole within 1 s")") != std::string::npos);

    Client kept(srv.port());
    kept.send(kGet);
    CHECK(starts_with(kept.read_response(), "HTTP/1.1 200 "));
    CHECK(kept.read_all() == "");  // kept alive, then closed when idle
}

TEST_CASE("http: idle and slow connections make room for new ones at the limit", "[serve][http]") {
    HttpLimits lim;
    lim.max_connections = 3;
    HttpServer srv("127.0.0.1", 0, ok_handler(), lim);
    Client slow(srv.port());  // waited longest: the first to go
    slow.send("POST /v1/completions HTTP/1.1\r\nHost: t\r\n");
    std::this_thread::sleep_for(200ms);
    Client idle1(srv.port()), idle2(srv.port());
    std::this_thread::sleep_for(200ms);
    std::vector<std::unique_ptr<Client>> fresh;
    for (int i = 0; i < 4; ++i) {  // each one closes the connection that has waited longest for a request
        fresh.push_back(std::make_unique<Client>(srv.port()));
        fresh.back()->send(kGet);
        CHECK(starts_with(fresh.back()->read_response(), "HTTP/1.1 200 "));
    }
    const std::string r = slow.read_all();  // it had begun a request: told why
    CHECK(starts_with(r, "HTTP/1.1 503 "));
    CHECK(r.find("connections open and closed this one") != std::string::npos);
    CHECK(idle1.read_all() == "");
    CHECK(idle2.read_all() == "");
    CHECK(fresh[0]->read_all() == "");  // idle after its response
}

TEST_CASE("http: a connection over the limit while every one is in a handler gets a 503 error", "[serve][http]") {
    std::atomic<int> inside{0};
    std::atomic<bool> release{false};
    HttpLimits lim;
    lim.max_connections = 2;
    HttpServer srv("127.0.0.1", 0, [&](const HttpRequest&, Responder& out) {
        ++inside;
        while (!release) std::this_thread::sleep_for(5ms);
        out.send(200, "application/json", "{}");
    }, lim);
    Client a(srv.port()), b(srv.port());
    a.send(kGet);
    b.send(kGet);
    for (int i = 0; i < 500 && inside < 2; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(inside == 2);
    Client c(srv.port());
    c.send(kGet);
    const std::string r = c.read_all();
    CHECK(starts_with(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(r.find(R"("message":"the server has 2 connections open, every one with a request in progress; retry later")") !=
          std::string::npos);
    release = true;
    CHECK(starts_with(a.read_response(), "HTTP/1.1 200 "));
    CHECK(starts_with(b.read_response(), "HTTP/1.1 200 "));
}
