// libFuzzer target: the server's HTTP request path on untrusted bytes. The input is fed to
// HttpRequestParser in pieces (sizes taken from the first bytes, so framing split across reads
// is explored), pipelined requests are parsed until the bytes run out, and each complete body
// goes through ParseUntrustedJson as the route handlers do. Checks the parser's invariants:
// it never consumes more than it was given, never reports a body over the limit, and always
// makes progress or stops.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/http_parser.h"
#include "tokenizer/chat_template_json.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t step = 1 + data[0] % 64;  // bytes per read
  tinyserve::HttpLimits limits;
  limits.max_header_bytes = 1024 + data[1] * 16;
  limits.max_body_bytes = 4096;
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  tinyserve::HttpRequestParser parser(limits);
  size_t pos = 0;
  int requests = 0;
  while (pos < input.size() && requests < 64) {
    const std::string_view piece = input.substr(pos, step);
    const size_t used = parser.Feed(piece);
    Check(used <= piece.size());
    pos += used;
    switch (parser.state()) {
      case tinyserve::HttpRequestParser::State::kComplete: {
        const auto& request = parser.request();
        Check(request.body.size() <= limits.max_body_bytes);
        Check(!request.method.empty() && request.path.size() <= request.target.size());
        (void)tinyserve::ParseUntrustedJson(request.body);
        parser.Reset();
        ++requests;
        break;
      }
      case tinyserve::HttpRequestParser::State::kError:
        Check(parser.error_status() >= 400 && parser.error_status() < 600);
        return 0;
      case tinyserve::HttpRequestParser::State::kHeadersDone:
        break;
      case tinyserve::HttpRequestParser::State::kNeedMore:
        Check(used == piece.size());  // a parser that wants more must have taken everything
        break;
    }
  }
  return 0;
}
