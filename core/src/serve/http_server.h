// A small HTTP/1.1 server on Boost.Beast (blocking sockets, one thread per connection): it reads requests (keep-alive,
// bodies up to 8 MiB) and hands each to a handler, which answers with one response or a server-sent-event stream.
// The scheduler, not this layer, is where requests share the engine; a thread per connection keeps cancellation
// simple (the handler polls its own socket for a hang-up).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
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

class HttpServer {
public:
    // Listens on host:port (port 0: any free port, see port()). Throws imp::Error naming the address on failure.
    HttpServer(const std::string& host, int port, Handler handler, int max_connections = 512);
    ~HttpServer();  // stop()
    int port() const { return port_; }
    // Stops accepting, shuts every open connection down and waits for the connection threads.
    void stop();

private:
    struct Impl;
    void accept_loop();
    void serve_connection(int fd);

    std::unique_ptr<Impl> impl_;
    Handler handler_;
    int port_ = 0;
    int max_connections_;
    std::atomic<bool> stopping_{false};
    std::thread accept_thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::set<int> open_;  // fds of open connections
};

}  // namespace imp::serve
