// HttpResponder: writes one response (fixed length or streamed, chunked on HTTP/1.1) to a
// connection on a worker thread, with a write deadline instead of buffering for slow readers;
// and the status line's reason phrases. Split from http_transport.cc, which owns connections.
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>

#include "server/http_transport.h"

namespace tinyserve {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

std::string_view HttpReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case kStatusClientClosedRequest:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

bool HttpResponder::WriteAll(std::string_view data) {
  if (!ok_) return false;
  auto last_progress = Clock::now();
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      last_progress = Clock::now();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // A reader too slow for the write deadline is dropped: the response is not buffered.
      const double left =
          write_timeout_s_ - std::chrono::duration<double>(Clock::now() - last_progress).count();
      pollfd p{fd_, POLLOUT, 0};
      if (left > 0 && ::poll(&p, 1, static_cast<int>(left * 1000) + 1) >= 0) continue;
    }
    ok_ = false;
    return false;
  }
  return true;
}

std::string HttpResponder::Head(int status, std::string_view content_type,
                                const HttpHeaders& headers, std::string_view framing) {
  status_ = status;
  started_ = true;
  if (on_status_) on_status_(status);
  keep_alive_ = request_.keep_alive && keep_alive_;
  std::string head = fmt::format("HTTP/1.1 {} {}\r\n", status, HttpReasonPhrase(status));
  if (!content_type.empty()) head += fmt::format("Content-Type: {}\r\n", content_type);
  for (const auto& [name, value] : headers) head += fmt::format("{}: {}\r\n", name, value);
  for (const auto& [name, value] : extra_) head += fmt::format("{}: {}\r\n", name, value);
  head += framing;
  if (!keep_alive_) {
    head += "Connection: close\r\n";
  } else {
    if (request_.minor_version == 0) head += "Connection: keep-alive\r\n";
    // The idle limit, rounded down, as llama-server's HTTP library (cpp-httplib) announces its
    // own: a client that reads it (Node's fetch does) stops reusing the connection before the
    // server closes it, instead of sending its next request into a socket being closed.
    // (An infinite or huge limit is announced as 10^9 s, a count the cast cannot overflow.)
    if (keep_alive_timeout_s_ >= 1) {
      head += fmt::format("Keep-Alive: timeout={}\r\n",
                          static_cast<int64_t>(std::min(keep_alive_timeout_s_, 1e9)));
    }
  }
  head += "\r\n";
  return head;
}

bool HttpResponder::Send(int status, std::string_view content_type, std::string_view body,
                         const HttpHeaders& headers) {
  if (started_) return false;
  std::string out =
      Head(status, content_type, headers, fmt::format("Content-Length: {}\r\n", body.size()));
  if (request_.method != "HEAD") out += body;
  complete_ = WriteAll(out);
  return complete_;
}

bool HttpResponder::BeginStream(int status, std::string_view content_type,
                                const HttpHeaders& headers) {
  if (started_) return false;
  chunked_ = request_.minor_version == 1;
  if (!chunked_) keep_alive_ = false;  // HTTP/1.0: the body ends when the connection does
  return WriteAll(
      Head(status, content_type, headers, chunked_ ? "Transfer-Encoding: chunked\r\n" : ""));
}

bool HttpResponder::Write(std::string_view data) {
  if (!started_ || complete_) return false;
  if (data.empty()) return ok_;
  if (!chunked_) return WriteAll(data);
  std::string chunk = fmt::format("{:x}\r\n", data.size());
  chunk.append(data);
  chunk += "\r\n";
  return WriteAll(chunk);
}

bool HttpResponder::EndStream() {
  if (!started_ || complete_) return false;
  complete_ = chunked_ ? WriteAll("0\r\n\r\n") : ok_;
  return complete_;
}

bool HttpResponder::ClientGone() {
  if (!ok_) client_gone_ = true;
  if (client_gone_) return true;
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  client_gone_ = (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  return client_gone_;
}

}  // namespace tinyserve
