// HttpServer on loopback with a trivial handler, through raw sockets: silent and slow clients are timed out (408 for
// a request begun), idle connections over the limit make room for new ones, and a connection over the limit when
// every one is in a handler gets a 503 JSON error rather than a reset; an error answered after an event stream began
// ends the stream as an event, and a streaming client that stops reading is let go after the write timeout.
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
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
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
    return [](const HttpRequest& r, Responder& out) {
        out.send(200, "application/json", "{\"path\":\"" + r.target + "\"}");
    };
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
    CHECK(r.find(R"("message":"the request did not arrive whole within 1 s")") != std::string::npos);

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
    CHECK(r.find(R"("message":"the server has 2 connections open, every one with a request in progress; retry )"
                 R"(later")") != std::string::npos);
    release = true;
    CHECK(starts_with(a.read_response(), "HTTP/1.1 200 "));
    CHECK(starts_with(b.read_response(), "HTTP/1.1 200 "));
}

TEST_CASE("http: malformed requests get the status Beast implies and a JSON error naming the fault", "[serve][http]") {
    HttpServer srv("127.0.0.1", 0, ok_handler());
    const std::string big(100000, 'a');
    struct Case {
        std::string request, status, message;
    };
    const std::vector<Case> cases = {
        {"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + big + "\r\n\r\n", "431 Request Header Fields Too Large",
         "the request line and headers are larger than 8192 bytes"},
        {"GET /" + big + " HTTP/1.1\r\nHost: t\r\n\r\n", "414 URI Too Long",
         "the request line (method, URL, version) is longer than 8192 bytes"},
        {"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n", "400 Bad Request",
         "Content-Length '-5' is not a length (a decimal number of bytes)"},
        {"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\ncontent-length: 3\r\n\r\nab", "400 Bad Request",
         "Content-Length is given 2 times ('2', '3')"},
        {"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n", "413 Payload Too Large",
         "the request body (Content-Length 99999999999999999999) is larger than 8 MiB"},
        {"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n", "413 Payload Too Large",
         "the request body is larger than 8 MiB"},
        {"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", "400 Bad Request",
         "the chunked body has a bad chunk size line (bad chunk)"},
        {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505 HTTP Version Not Supported",
         "HTTP/2.0 is not supported; this server speaks HTTP/1.1"},
        {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), "400 Bad Request",
         R"(not an HTTP/1.x request (bad method): the request line is )"
         R"('\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03')"},
        {"GET /a b c HTTP/1.1\r\n\r\n", "400 Bad Request", "not an HTTP/1.x request (bad version): the request line is "
                                                         "'GET /a b c HTTP/1.1'"},
        {"GET /x HTTP/1.1\nHost: t\n\n", "400 Bad Request",
         "the request line ends with a bare LF; HTTP/1.1 lines end with CRLF"},
        {"GET /x HTTP/1.1\r\nHost: t\r\nBad Header: y\r\n\r\n", "400 Bad Request",
         "the request head is malformed (bad field)"},
    };
    for (const Case& k : cases) {
        Client c(srv.port());
        c.send(k.request);
        const std::string r = c.read_all();
        INFO(k.request.substr(0, 80));
        CHECK(starts_with(r, "HTTP/1.1 " + k.status + "\r\n"));
        CHECK(r.find("Connection: close\r\n") != std::string::npos);
        CHECK(r.find("\"message\":\"" + k.message + "\"") != std::string::npos);
        CHECK(r.find("\"type\":\"invalid_request_error\"") != std::string::npos);
    }
    Client c(srv.port());  // and the server still answers
    c.send(kGet);
    CHECK(starts_with(c.read_response(), "HTTP/1.1 200 "));
}

TEST_CASE("http: the URL of an IPv6 address has it in brackets", "[serve][http]") {
    CHECK(http_url("127.0.0.1", 8080) == "http://127.0.0.1:8080");
    CHECK(http_url("0.0.0.0", 80) == "http://0.0.0.0:80");
    CHECK(http_url("::1", 8080) == "http://[::1]:8080");
    CHECK(http_url("fe80::1", 1) == "http://[fe80::1]:1");
}

TEST_CASE("http: an answer sent after the event stream began ends the stream as an event and [DONE]", "[serve][http]") {
    // As Api::handle does when a generation throws after its stream started: no second HTTP response in the body.
    HttpServer srv("127.0.0.1", 0, [](const HttpRequest&, Responder& out) {
        if (!out.start_stream() || !out.event(R"({"x":1})")) return;
        out.send(500, "application/json", R"({"error":{"message":"internal error: boom"}})");
    });
    Client c(srv.port());
    c.send(kGet);
    const std::string r = c.read_all();
    CHECK(starts_with(r, "HTTP/1.1 200 OK\r\n"));
    const size_t body = r.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    CHECK(r.substr(body + 4) ==
          "data: {\"x\":1}\n\ndata: {\"error\":{\"message\":\"internal error: boom\"}}\n\ndata: [DONE]\n\n");
}

TEST_CASE("http: a streaming client that stops reading is gone after the write timeout", "[serve][http]") {
    HttpLimits lim;
    lim.write_timeout = 300ms;
    std::atomic<int> result{0};  // 0 running, 1 a write failed and client_gone() says so, 2 every write succeeded
    std::atomic<int64_t> sent{0};
    HttpServer srv("127.0.0.1", 0, [&](const HttpRequest&, Responder& out) {
        if (!out.start_stream()) return;
        const std::string chunk(64 * 1024, 'x');
        for (int i = 0; i < 4096; ++i) {  // 256 MiB at most: far beyond any socket buffer
            if (!out.event(chunk)) {
                result = out.client_gone() ? 1 : 3;
                return;
            }
            sent += int64_t(chunk.size());
        }
        result = 2;
    }, lim);
    Client c(srv.port());
    c.send(kGet);  // and never read
    for (int i = 0; i < 1000 && result == 0; ++i) std::this_thread::sleep_for(10ms);
    CHECK(result == 1);
    CHECK(sent > 0);
}
