// Incremental HTTP/1.1 request parser for untrusted bytes: request line, headers and body
// (Content-Length or chunked) with every limit enforced on the bytes actually received, whatever
// the framing. No recursion, no allocation beyond the limits. Rejected outright: request bodies
// with a Content-Encoding (no decompression, so no compression bombs), transfer codings other
// than chunked, Content-Length together with Transfer-Encoding or given twice with different
// values (request smuggling), obsolete line folding, control characters in headers.
// One parser per connection; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinyserve {

struct HttpLimits {
  size_t max_header_bytes = 16 << 10;  // request line + all header lines (+ chunk trailers)
  size_t max_headers = 64;
  uint64_t max_body_bytes = 4 << 20;  // decoded body bytes, whatever the framing
};

struct HttpRequest {
  std::string method;
  std::string target;                                        // as sent: path and query
  std::string path;                                          // target without the query
  int minor_version = 1;                                     // HTTP/1.x
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  bool keep_alive = true;
  bool expect_continue = false;
  // Set by the transport: the connection's peer address, and whether that peer is a trusted
  // proxy (--trusted-proxies), whose X-Forwarded-For names the client.
  std::string peer_address;
  bool via_trusted_proxy = false;

  // The first header of that (lower-case) name, or "" when absent.
  std::string_view Header(std::string_view lower_name) const;
  bool HasHeader(std::string_view lower_name) const;
};

// The address of the client behind a request: the peer's, or from a trusted proxy the last
// address of X-Forwarded-For (the one the proxy itself saw: nginx's $proxy_add_x_forwarded_for
// appends it; entries before it are the client's word), or the proxy's when it sends none.
std::string_view ClientAddress(const HttpRequest& request);

class HttpRequestParser {
 public:
  enum class State { kNeedMore, kHeadersDone, kComplete, kError };

  explicit HttpRequestParser(HttpLimits limits) : limits_(limits) {}

  // Consumes bytes from `data`; returns how many were used (the rest belongs to the next
  // request on the connection). Call again with more bytes while state() is kNeedMore or
  // kHeadersDone (which is reported once, when the head is complete, so that the caller can
  // answer `Expect: 100-continue`).
  size_t Feed(std::string_view data);
  State state() const { return state_; }
  // When kError: the HTTP status to answer (400, 413, 414, 415, 431, 501, 505) and why.
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }
  // True once any byte of the request arrived (an idle connection has none).
  bool started() const { return started_; }
  // The parsed request (complete when state() is kComplete).
  HttpRequest& request() { return request_; }
  // Ready for the next request on the same connection.
  void Reset();

 private:
  enum class Phase { kHead, kBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone };
  bool Fail(int status, std::string message);
  // Fail, for Feed: returns the bytes used so far.
  size_t FailAt(size_t used, int status, std::string message);
  // Why the head in pending_[0, limit) can never parse, from its bytes [from, limit) (earlier ones
  // were judged by earlier calls), or null.
  const char* EarlyHeadError(size_t from, size_t limit);
  bool ParseHead(std::string_view head);
  bool ParseRequestLine(std::string_view line);
  bool FinishHead();
  // Takes one CRLF- (or LF-) terminated line from data[*used..]; false when incomplete.
  bool TakeLine(std::string_view data, size_t* used, std::string* line);

  HttpLimits limits_;
  State state_ = State::kNeedMore;
  Phase phase_ = Phase::kHead;
  bool started_ = false;
  bool reported_head_ = false;
  bool method_read_ = false;  // the request line's method and the space after it have arrived
  int error_status_ = 0;
  std::string error_message_;
  std::string pending_;     // an incomplete head or line
  uint64_t remaining_ = 0;  // body or chunk bytes still to read
  size_t trailer_bytes_ = 0;
  HttpRequest request_;
};

// ASCII lower case: header names and the tokens and media types HTTP compares without case.
std::string AsciiLower(std::string_view s);

// True when a Content-Type names JSON as FastAPI (vLLM's front end) reads it: application/json
// or application/<subtype>+json (structured syntax suffix, RFC 6839), in any case, with optional
// whitespace around the type and any parameters after ';' (RFC 9110 8.3), which are ignored.
bool IsJsonMediaType(std::string_view content_type);

// A URL path's %XX sequences decoded; nullopt for a malformed one.
std::optional<std::string> PercentDecode(std::string_view s);

}  // namespace tinyserve
