// See http_errors.h.
#include "serve/http_errors.h"

#include <algorithm>
#include <cctype>
#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>
#include <nlohmann/json.hpp>

#include "model/display_text.h"

namespace imp::serve {

namespace http = boost::beast::http;

namespace {

std::string seconds(std::chrono::milliseconds t) {
    const auto ms = t.count();
    return ms % 1000 ? std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + " s"
                     : std::to_string(ms / 1000) + " s";
}

// 'text', escaped (imp::quoted, appended in steps: GCC 12 warns -Wrestrict about "'" + string here, wrongly).
std::string in_quotes(std::string_view s, size_t max_bytes) {
    std::string out = "'";
    out += display_text(s, max_bytes);
    out += "'";
    return out;
}

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
        for (const auto& x : v) {
            if (!all.empty()) all += ", ";
            all += in_quotes(x, 40);
        }
        return {400, "Content-Length is given " + std::to_string(v.size()) + " times (" + all + ")"};
    }
    const std::string x = v.empty() ? "" : v[0];
    if (!x.empty() && x.size() <= 40 && std::all_of(x.begin(), x.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return {413, "the request body (Content-Length " + x + ") is larger than " +
                         std::to_string(kBodyLimit >> 20) + " MiB"};
    return {400, "Content-Length " + in_quotes(x, 40) + " is not a length (a decimal number of bytes)"};
}

}  // namespace

// What to answer a request Beast's parser refused (or that did not come in time).
ReadError read_error(const boost::system::error_code& ec, std::string_view head, bool got_bytes,
                     std::chrono::milliseconds request_timeout) {
    using he = http::error;
    const std::string limit = std::to_string(kHeaderLimit) + " bytes";
    if (ec == boost::beast::error::timeout)
        return got_bytes ? ReadError{408, "the request did not arrive whole within " + seconds(request_timeout)}
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
        return {400, "not an HTTP/1.x request (" + ec.message() + "): the request line is " + in_quotes(line, 100)};
    if (ec == he::bad_line_ending || ec == he::bad_field || ec == he::bad_value || ec == he::bad_obs_fold)
        return {400, "the request head is malformed (" + ec.message() + ")"};
    return {};  // the client closed or the connection failed: nobody to answer
}

ReadError evicted(int max_connections) {
    return {503, "the server has " + std::to_string(max_connections) + " connections open and closed this one, "
                 "the longest waiting for its request; retry"};
}

std::string http_error_body(const std::string& message, const std::string& type, const std::string& param) {
    using json = nlohmann::json;
    const json e = {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)},
                    {"code", nullptr}};
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

}  // namespace imp::serve
