// A small HTTP/1.1 server on Boost.Beast (blocking sockets, one thread per connection): it reads requests (keep-alive,
// bodies up to 8 MiB) and hands each to a handler, which answers with one response or a server-sent-event stream.
// The scheduler, not this layer, is where requests share the engine; a thread per connection keeps cancellation
// simple (the handler polls its own socket for a hang-up).
// Slow or silent clients cannot hold the server: a request must arrive whole within a deadline, a connection with
// no request in progress is closed after an idle time, and when max_connections are open a new connection takes the
// place of the one that has waited longest for its request (a 503 only when every connection is in a handler).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace imp::serve {

struct HttpRequest {
    std::string method, target, body;
};

// How a handler answers. Either send() once, or start_stream() then event()s; the connection closes after a stream.
class Responder {
public:
    virtual ~Responder() = default;
    virtual void send(int status, const std::string& content_type, const std::string& body) = 0;
    virtual bool start_stream() = 0;                       // text/event-stream head; false if the client is gone
    virtual bool event(const std::string& data) = 0;       // "data: <data>\n\n"; false if the client is gone
    virtual bool client_gone() = 0;                        // the peer hung up (checked without blocking)
};

using Handler = std::function<void(const HttpRequest&, Responder&)>;

struct HttpLimits {
    std::chrono::milliseconds request_timeout{30000};  // a request's headers and body, from its first byte: else 408
    std::chrono::milliseconds idle_timeout{30000};     // no request begun (new or kept-alive connection): closed
    std::chrono::milliseconds write_timeout{30000};    // a response write the client takes no byte of: gone
    int max_connections = 512;                         // open at once (one thread each)
};

// The URL a client uses for host:port ("http://[::1]:8080" for an IPv6 address).
std::string http_url(const std::string& host, int port);

// "" when HttpServer can listen on `host` (an IPv4 or IPv6 address), else why not: "'x' is not an IP address (...)".
std::string host_error(const std::string& host);

class HttpServer {
public:
    // Listens on host:port (port 0: any free port, see port()). Throws imp::Error naming the address on failure.
    HttpServer(const std::string& host, int port, Handler handler, HttpLimits limits = {});
    ~HttpServer();  // stop()
    int port() const { return port_; }
    // Stops accepting and closes the connections that are not in a handler; handlers run on.
    void stop_accepting();
    // stop_accepting(), waits up to `grace` for the handlers to end, then shuts every connection down and waits for
    // the connection threads.
    void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(0));

private:
    struct Impl;
    struct Conn {
        bool busy = false;                 // in the handler (not waiting for a request)
        std::chrono::steady_clock::time_point waiting_since;
        bool evicted = false;              // closed to make room for a newer connection
    };
    void accept_loop();
    bool make_room();  // with mu_ held: evicts the connection waiting longest; false if all are busy
    // Connection-thread side, with mu_ taken inside: begins waiting for a request (false when stopping), starts
    // handling one, and ends.
    bool conn_waiting(int fd);
    bool conn_busy(int fd);  // false: evicted meanwhile
    bool conn_evicted(int fd);
    void conn_closed(int fd);

    std::unique_ptr<Impl> impl_;
    Handler handler_;
    HttpLimits limits_;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread accept_thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::map<int, Conn> open_;  // by fd: open connections
};

}  // namespace imp::serve
