#include "server/http_parser.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace tinyserve {
namespace {

// A chunk-size line (size and extensions) or a trailer line longer than this is hostile.
constexpr size_t kMaxLineBytes = 4096;

bool IsTchar(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (std::isalnum(u)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A control character other than HTAB (RFC 9110 5.5): never in a field value, a chunk extension
// or a trailer, where a front proxy that reads a bare CR or a NUL differently would frame the
// stream differently from us.
bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const unsigned char u = static_cast<unsigned char>(c);
    return (u < 0x20 && u != '\t') || u == 0x7f;
  });
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Comma-separated tokens of a header value, lower-cased and trimmed.
std::vector<std::string> Tokens(std::string_view value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view t = TrimOws(value.substr(start, comma - start));
    if (!t.empty()) out.push_back(AsciiLower(t));
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsJsonMediaType(std::string_view content_type) {
  // "OWS ; OWS": whitespace may stand around the type and before the parameters.
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  const size_t slash = type.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string main = AsciiLower(type.substr(0, slash));
  const std::string sub = AsciiLower(type.substr(slash + 1));
  if (!std::all_of(sub.begin(), sub.end(), IsTchar)) return false;
  return main == "application" && (sub == "json" || (sub.size() > 5 && sub.ends_with("+json")));
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= s.size()) return std::nullopt;
    const auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16);
    if (ec != std::errc() || end != s.data() + i + 3) return std::nullopt;
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

std::string_view HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return value;
  return {};
}

bool HttpRequest::HasHeader(std::string_view lower_name) const {
  for (const auto& h : headers)
    if (h.first == lower_name) return true;
  return false;
}

std::string_view ClientAddress(const HttpRequest& request) {
  if (!request.via_trusted_proxy) return request.peer_address;
  std::string_view forwarded;
  for (const auto& [name, value] : request.headers)
    if (name == "x-forwarded-for") forwarded = value;  // the last header holds the last entry
  const size_t comma = forwarded.rfind(',');
  if (comma != std::string_view::npos) forwarded.remove_prefix(comma + 1);
  forwarded = TrimOws(forwarded);
  return forwarded.empty() ? std::string_view(request.peer_address) : forwarded;
}

void HttpRequestParser::Reset() {
  state_ = State::kNeedMore;
  phase_ = Phase::kHead;
  started_ = false;
  reported_head_ = false;
  method_read_ = false;
  error_status_ = 0;
  error_message_.clear();
  pending_.clear();
  remaining_ = 0;
  trailer_bytes_ = 0;
  request_ = HttpRequest{};
}

bool HttpRequestParser::Fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_message_ = std::move(message);
  pending_.clear();
  return false;
}

size_t HttpRequestParser::FailAt(size_t used, int status, std::string message) {
  Fail(status, std::move(message));
  return used;
}

bool HttpRequestParser::TakeLine(std::string_view data, size_t* used, std::string* line) {
  const size_t nl = data.find('\n', *used);
  if (nl == std::string_view::npos) {
    pending_.append(data.substr(*used));
    *used = data.size();
    if (pending_.size() > kMaxLineBytes) Fail(431, "chunk-size or trailer line too long");
    return false;
  }
  pending_.append(data.substr(*used, nl - *used));
  *used = nl + 1;
  if (pending_.size() > kMaxLineBytes) return Fail(431, "chunk-size or trailer line too long");
  // CRLF only, unlike the head's lines (RFC 9112 2.2 lets those end in a bare LF, as nginx
  // does): a chunk line ended by a bare LF, inside a chunk extension most of all, is framed one
  // way by a proxy that waits for CRLF and another by one that does not, a request-smuggling
  // gap ("funky chunks"). Every client sends CRLF.
  if (pending_.empty() || pending_.back() != '\r') return Fail(400, "chunk line not ended by CRLF");
  pending_.pop_back();
  *line = std::move(pending_);
  pending_.clear();
  return true;
}

size_t HttpRequestParser::Feed(std::string_view data) {
  if (state_ == State::kError || state_ == State::kComplete) return 0;
  state_ = State::kNeedMore;
  size_t used = 0;
  while (state_ == State::kNeedMore && phase_ != Phase::kDone) {
    switch (phase_) {
      case Phase::kHead: {
        // Empty lines before a request line are ignored (RFC 9112 2.2), within the head budget.
        while (!started_ && used < data.size() && (data[used] == '\r' || data[used] == '\n')) {
          ++used;
          if (++trailer_bytes_ > limits_.max_header_bytes)
            return FailAt(used, 431, "request head too large");
        }
        if (used == data.size()) return used;
        started_ = true;
        const size_t old = pending_.size();
        const size_t room = limits_.max_header_bytes + 1 - std::min(old, limits_.max_header_bytes);
        const size_t take = std::min(room, data.size() - used);
        pending_.append(data.substr(used, take));
        size_t end = 0;
        for (size_t i = old >= 2 ? old - 2 : 0; i < pending_.size() && end == 0; ++i) {
          if (pending_[i] != '\n') continue;
          if (i + 1 < pending_.size() && pending_[i + 1] == '\n')
            end = i + 2;
          else if (i + 2 < pending_.size() && pending_[i + 1] == '\r' && pending_[i + 2] == '\n')
            end = i + 3;
        }
        if (const char* why = EarlyHeadError(old, end == 0 ? pending_.size() : end)) {
          used += end == 0 ? take : end - old;
          return FailAt(used, 400, why);
        }
        if (end == 0) {
          used += take;
          if (pending_.size() > limits_.max_header_bytes)
            return FailAt(used, 431, "request head too large");
          return used;
        }
        if (end > limits_.max_header_bytes) return FailAt(used, 431, "request head too large");
        used += end - old;
        std::string head = std::move(pending_);
        pending_.clear();
        head.resize(end);
        if (!ParseHead(head) || !FinishHead()) return used;
        if (phase_ != Phase::kDone) {
          reported_head_ = true;
          state_ = State::kHeadersDone;
          return used;
        }
        break;
      }
      case Phase::kBody: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - used));
        request_.body.append(data.substr(used, take));
        used += take;
        remaining_ -= take;
        if (remaining_ == 0)
          phase_ = Phase::kDone;
        else
          return used;
        break;
      }
      case Phase::kChunkSize: {
        std::string line;
        if (!TakeLine(data, &used, &line)) return used;
        size_t i = 0;
        uint64_t size = 0;
        while (i < line.size() && std::isxdigit(static_cast<unsigned char>(line[i]))) {
          if (i >= 15) return FailAt(used, 413, "chunk size too large");
          const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(line[i])));
          size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
          ++i;
        }
        if (i == 0) return FailAt(used, 400, "malformed chunk size");
        std::string_view rest = TrimOws(std::string_view(line).substr(i));
        if (!rest.empty() && rest[0] != ';') return FailAt(used, 400, "malformed chunk size");
        if (HasControl(rest)) return FailAt(used, 400, "control character in a chunk extension");
        if (size == 0) {
          phase_ = Phase::kTrailers;
        } else {
          if (size > limits_.max_body_bytes - request_.body.size())
            return FailAt(used, 413, "request body too large");
          remaining_ = size;
          phase_ = Phase::kChunkData;
        }
        break;
      }
      case Phase::kChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - used));
        request_.body.append(data.substr(used, take));
        used += take;
        remaining_ -= take;
        if (remaining_ > 0) return used;
        phase_ = Phase::kChunkDataEnd;
        break;
      }
      case Phase::kChunkDataEnd: {
        std::string line;
        if (!TakeLine(data, &used, &line)) return used;
        if (!line.empty()) return FailAt(used, 400, "chunk data longer than its size");
        phase_ = Phase::kChunkSize;
        break;
      }
      case Phase::kTrailers: {
        std::string line;
        if (!TakeLine(data, &used, &line)) return used;
        trailer_bytes_ += line.size() + 2;
        if (trailer_bytes_ > limits_.max_header_bytes)
          return FailAt(used, 431, "trailers too large");
        // Dropped, but framed as header fields are: a name, a colon, no control characters.
        if (!line.empty()) {
          const size_t colon = line.find(':');
          if (colon == 0 || colon == std::string::npos ||
              !std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(colon),
                           IsTchar) ||
              HasControl(line))
            return FailAt(used, 400, "malformed trailer field");
        }
        if (line.empty()) phase_ = Phase::kDone;  // trailer fields are read and dropped
        break;
      }
      case Phase::kDone:
        break;
    }
  }
  if (phase_ == Phase::kDone && state_ == State::kNeedMore) state_ = State::kComplete;
  return used;
}

// Judged as the bytes arrive, not in ParseHead once the blank line ending the head is there: a TLS
// handshake or binary garbage sent to the port, or a request line ended by a bare CR, never sends
// that line, and held the connection until the head timeout (10 s) before its answer.
const char* HttpRequestParser::EarlyHeadError(size_t from, size_t limit) {
  for (size_t i = from; i < limit && !method_read_; ++i) {
    if (pending_[i] == ' ') {
      method_read_ = true;
    } else if (!IsTchar(pending_[i])) {
      return "malformed request method";
    }
  }
  // A CR that ended the previous call's bytes is judged now, by the byte after it.
  for (size_t i = from > 0 ? from - 1 : 0; i + 1 < limit; ++i)
    if (pending_[i] == '\r' && pending_[i + 1] != '\n') return "bare CR in the request head";
  return nullptr;
}

bool HttpRequestParser::ParseRequestLine(std::string_view line) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return Fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  // Its bytes are token characters (EarlyHeadError).
  if (method.empty()) return Fail(400, "malformed request method");
  if (target.empty() || target[0] != '/') return Fail(400, "the request target must be a path");
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      return Fail(400, "malformed request target");
  if (version == "HTTP/1.1")
    request_.minor_version = 1;
  else if (version == "HTTP/1.0")
    request_.minor_version = 0;
  else if (version.substr(0, 5) == "HTTP/")
    return Fail(505, "only HTTP/1.0 and HTTP/1.1");
  else
    return Fail(400, "malformed HTTP version");
  request_.method = std::string(method);
  request_.target = std::string(target);
  request_.path = std::string(target.substr(0, target.find('?')));
  return true;
}

bool HttpRequestParser::ParseHead(std::string_view head) {
  bool first = true;
  size_t start = 0;
  while (start < head.size()) {
    const size_t nl = head.find('\n', start);
    std::string_view line = head.substr(start, nl - start);
    start = nl + 1;
    // Any other CR was refused as a bare CR (EarlyHeadError).
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      if (!ParseRequestLine(line)) return false;
      first = false;
      continue;
    }
    if (line.empty()) break;  // the end of the head
    if (line[0] == ' ' || line[0] == '\t') return Fail(400, "obsolete header line folding");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return Fail(400, "malformed header line");
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), IsTchar)) return Fail(400, "malformed header name");
    std::string_view value = TrimOws(line.substr(colon + 1));
    if (HasControl(value)) return Fail(400, "control character in a header");
    if (request_.headers.size() >= limits_.max_headers) return Fail(431, "too many header fields");
    request_.headers.emplace_back(AsciiLower(name), std::string(value));
  }
  return true;
}

bool HttpRequestParser::FinishHead() {
  HttpRequest& r = request_;
  int hosts = 0;
  bool chunked = false, has_te = false, has_length = false;
  uint64_t length = 0;
  for (const auto& [name, value] : r.headers) {
    if (name == "host") {
      ++hosts;
    } else if (name == "transfer-encoding") {
      has_te = true;
      for (const std::string& t : Tokens(value)) {
        if (chunked || t != "chunked") return Fail(501, "unsupported Transfer-Encoding");
        chunked = true;
      }
    } else if (name == "content-length") {
      const std::vector<std::string> lengths = Tokens(value);
      // An empty value would otherwise read as no body, so the body bytes would be parsed as the
      // next request while a proxy in front may have refused or framed them (smuggling).
      if (lengths.empty()) return Fail(400, "malformed Content-Length");
      for (const std::string& t : lengths) {  // "5, 5" is tolerated, "5, 6" is not
        if (t.size() > 19 || !std::all_of(t.begin(), t.end(), ::isdigit))
          return Fail(400, "malformed Content-Length");
        const uint64_t v = std::stoull(t);
        if (has_length && v != length) return Fail(400, "conflicting Content-Length values");
        has_length = true;
        length = v;
      }
    } else if (name == "content-encoding") {
      for (const std::string& t : Tokens(value))
        if (t != "identity") return Fail(415, "compressed request bodies are not accepted");
    } else if (name == "connection") {
      for (const std::string& t : Tokens(value)) {
        if (t == "close") r.keep_alive = false;
      }
    } else if (name == "expect") {
      if (AsciiLower(value) != "100-continue") return Fail(417, "unsupported Expect");
      r.expect_continue = r.minor_version == 1;
    }
  }
  if (r.minor_version == 0) {
    bool keep = false;
    for (const std::string& t : Tokens(r.Header("connection"))) keep |= t == "keep-alive";
    r.keep_alive = r.keep_alive && keep;
  }
  if (hosts > 1 || (hosts == 0 && r.minor_version == 1))
    return Fail(400, "exactly one Host header");
  if (has_te && (has_length || r.minor_version == 0))
    return Fail(400, "Transfer-Encoding with Content-Length or in HTTP/1.0");
  if (has_te && !chunked) return Fail(501, "unsupported Transfer-Encoding");
  if (chunked) {
    phase_ = Phase::kChunkSize;
  } else if (length > limits_.max_body_bytes) {
    return Fail(413, "request body too large");
  } else if (length > 0) {
    remaining_ = length;
    phase_ = Phase::kBody;
  } else {
    phase_ = Phase::kDone;  // no Content-Length and not chunked: no body (RFC 9112 6.3)
  }
  return true;
}

}  // namespace tinyserve
