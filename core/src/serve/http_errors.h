// What the server answers a request it cannot read (http_connection.cpp): the HTTP status Beast's parser error
// implies (400 malformed, 413 body too large, 414 request line too long, 431 headers too large), 408 for a request
// not sent whole in time, 505 for HTTP/2 or another version, 503 for a connection over the limit; each as a whole
// HTTP/1.1 response with an OpenAI-style JSON error naming the header or limit at fault.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

namespace imp::serve {

constexpr size_t kHeaderLimit = 8192;    // request line and headers, bytes (larger: 414 or 431)
constexpr size_t kBodyLimit = 8u << 20;  // request body, bytes (larger: 413)

struct ReadError {
    int status = 0;  // 0: nothing to answer (the client left, or a connection idle too long)
    std::string message;
};

// For a read that failed with `ec` (Beast's parser, or beast::error::timeout); `head`: the request's first bytes as
// received, `got_bytes`: whether any came.
ReadError read_error(const boost::system::error_code& ec, std::string_view head, bool got_bytes,
                     std::chrono::milliseconds request_timeout);
// A connection closed to make room for a newer one while its request was coming in.
ReadError evicted(int max_connections);

// {"error": {"message", "type", "param" (null when empty), "code": null}}: every error body the server sends.
std::string http_error_body(const std::string& message, const std::string& type, const std::string& param = "");
// A whole HTTP/1.1 response with that body and "Connection: close".
std::string http_error_response(int status, const std::string& message);
// The answer to a connection over the limit, when every open one is in a handler.
std::string too_many_connections(int max_connections);

}  // namespace imp::serve
