#include "server/http_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace tinyserve {
namespace {

using State = HttpRequestParser::State;

// Feeds `bytes` in pieces of `step`; returns the final state (the parser stops at completion).
State FeedAll(HttpRequestParser& p, std::string_view bytes, size_t step, size_t* used_total) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t used = p.Feed(bytes.substr(pos, step));
    pos += used;
    if (p.state() == State::kComplete || p.state() == State::kError) break;
    if (used == 0 && p.state() != State::kHeadersDone) break;
  }
  *used_total = pos;
  return p.state();
}

TEST(HttpParser, ChunkedBodySplitAtEveryByteDecodesTheSame) {
  const std::string req =
      "POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=\"v\"\r\n world\r\n0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1\r\n";
  for (size_t step = 1; step <= req.size(); ++step) {
    HttpRequestParser p(HttpLimits{});
    size_t used = 0;
    ASSERT_EQ(FeedAll(p, req, step, &used), State::kComplete) << step;
    EXPECT_EQ(p.request().body, "hello world");
    EXPECT_EQ(p.request().path, "/v1/completions");
    EXPECT_EQ(req.substr(used), "GET / HTTP/1.1\r\n") << "pipelined bytes were consumed";
  }
}

TEST(HttpParser, ChunkedBodyIsLimitedOnDecodedBytes) {
  HttpLimits limits;
  limits.max_body_bytes = 10;
  HttpRequestParser p(limits);
  size_t used = 0;
  EXPECT_EQ(FeedAll(p,
                    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "6\r\nabcdef\r\n6\r\n",
                    7, &used),
            State::kError);
  EXPECT_EQ(p.error_status(), 413);
}

TEST(HttpParser, ContentLengthOverTheLimitFailsBeforeTheBody) {
  HttpLimits limits;
  limits.max_body_bytes = 10;
  HttpRequestParser p(limits);
  p.Feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
  EXPECT_EQ(p.state(), State::kError);
  EXPECT_EQ(p.error_status(), 413);
}

TEST(HttpParser, NoFramingMeansNoBody) {
  HttpRequestParser p(HttpLimits{});
  const std::string req = "POST / HTTP/1.1\r\nHost: a\r\n\r\n{\"x\":1}";
  const size_t used = p.Feed(req);
  EXPECT_EQ(p.state(), State::kComplete);
  EXPECT_EQ(p.request().body, "");
  EXPECT_EQ(req.substr(used), "{\"x\":1}");
}

TEST(HttpParser, RejectsHostileFraming) {
  const std::pair<std::string, int> cases[] = {
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},     // empty
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: , \r\n\r\n", 400},  // no digits
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: 1\r\n\r\n", 415},
      {"POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", 417},
      {"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400},   // no Host
      {"POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},  // two Hosts
      {"POST / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},  // obs-fold
      {"POST / HTTP/1.1\r\nHost: a\r\nX: a\x01"
       "b\r\n\r\n",
       400},                                                // control character
      {"POST / HTTP/1.1\r\nHost : a\r\n\r\n", 400},         // space before colon
      {"POST http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},  // absolute form
      {"POST / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"POST  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 400},
      // A bare CR or a NUL in a chunk extension, a trailer that is not a field.
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a\rb\r\nx\r\n", 400},
      {std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\0\r\n",
                   63),
       400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n",
       400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n: x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\rb\r\n\r\n", 400},
      // Chunk lines ended by a bare LF: after the size, inside an extension (where a proxy that
      // waits for CRLF reads "ab\r\n0" as more extension), after the data, in the trailers.
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;x\nab\r\n0\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\n\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n", 400},
  };
  for (const auto& [req, status] : cases) {
    HttpRequestParser p(HttpLimits{});
    size_t used = 0;
    EXPECT_EQ(FeedAll(p, req, req.size(), &used), State::kError) << req;
    EXPECT_EQ(p.error_status(), status) << req;
  }
}

// Heads that can never parse are refused as their bytes arrive, not when a blank line ends them
// (which a TLS handshake or garbage never sends, so they held the connection until the head
// timeout); whole or byte by byte, the same 400.
TEST(HttpParser, HeadsThatCanNeverParseFailBeforeTheirEnd) {
  const std::pair<std::string, std::string> cases[] = {
      {std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11),  // TLS ClientHello
       "malformed request method"},
      {std::string("G\0T / HTTP/1.1", 14), "malformed request method"},
      {"GET /health HTTP/1.1\rHost: a\r", "bare CR in the request head"},  // lines ended by CR
      {"GET / HTTP/1.1\r\nHost: a\rX: b", "bare CR in the request head"},
  };
  for (const auto& [req, message] : cases) {
    for (size_t step : {req.size(), size_t{1}}) {
      HttpRequestParser p(HttpLimits{});
      size_t used = 0;
      EXPECT_EQ(FeedAll(p, req, step, &used), State::kError) << req << " step " << step;
      EXPECT_EQ(p.error_status(), 400) << req;
      EXPECT_EQ(p.error_message(), message) << req;
    }
  }
  // Bytes after the head are the body's: a bare CR there is data, and the request parses.
  const std::string post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\rb";
  for (size_t step : {post.size(), size_t{1}}) {
    HttpRequestParser p(HttpLimits{});
    size_t used = 0;
    ASSERT_EQ(FeedAll(p, post, step, &used), State::kComplete) << step;
    EXPECT_EQ(p.request().body, "a\rb");
  }
}

TEST(HttpParser, HeadLimitsCountLinesAndBytes) {
  HttpLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_headers = 4;
  {
    HttpRequestParser p(limits);
    p.Feed("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(2000, 'a'));  // never terminated
    EXPECT_EQ(p.error_status(), 431);
  }
  {
    HttpRequestParser p(limits);
    p.Feed("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n");
    EXPECT_EQ(p.error_status(), 431);
  }
  {
    HttpRequestParser p(limits);
    p.Feed(std::string(5000, '\n'));  // endless empty lines before a request line
    EXPECT_EQ(p.error_status(), 431);
  }
}

TEST(HttpParser, ConnectionSemanticsAndExpect) {
  HttpRequestParser p(HttpLimits{});
  p.Feed(
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nExpect: 100-Continue\r\n"
      "Content-Length: 2\r\n\r\n");
  EXPECT_EQ(p.state(), State::kHeadersDone);
  EXPECT_TRUE(p.request().expect_continue);
  EXPECT_FALSE(p.request().keep_alive);
  p.Feed("{}");
  EXPECT_EQ(p.state(), State::kComplete);

  HttpRequestParser old(HttpLimits{});
  old.Feed("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(old.state(), State::kComplete);
  EXPECT_FALSE(old.request().keep_alive);
  old.Reset();
  old.Feed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_TRUE(old.request().keep_alive);
  EXPECT_EQ(old.request().Header("connection"), "Keep-Alive");
}

TEST(HttpMediaType, JsonIsMatchedAsFastApiDoesWithTheWhitespaceRfc9110Allows) {
  for (std::string_view json :
       {"application/json", "application/json; charset=utf-8", "application/json ;charset=utf-8",
        "application/json\t; charset=UTF-8", " application/json ", "APPLICATION/JSON",
        "Application/Json;charset=utf-8", "application/vnd.api+json",
        "application/merge-patch+json;x=1"})
    EXPECT_TRUE(IsJsonMediaType(json)) << json;
  for (std::string_view other :
       {"", "text/plain", "text/json", "application/jsonx", "application/json-seq",
        "application/x-www-form-urlencoded", "multipart/form-data", "application/+json",
        "application / json", "application/ json", "text/plain; x=application/json", "json",
        "application/vnd.api+json+x", "text/x+json"})
    EXPECT_FALSE(IsJsonMediaType(other)) << other;
}

// The client of a request: the peer, unless the peer is a trusted proxy, whose last
// X-Forwarded-For entry (the address the proxy saw) names it; entries before it are the
// client's own word and never used.
TEST(HttpClientAddress, IsThePeerOrTheAddressATrustedProxySaw) {
  HttpRequest direct;
  direct.peer_address = "10.0.0.7";
  direct.headers = {{"x-forwarded-for", "1.2.3.4"}};
  EXPECT_EQ(ClientAddress(direct), "10.0.0.7");  // not a proxy: the header is the client's word

  HttpRequest proxied;
  proxied.peer_address = "127.0.0.1";
  proxied.via_trusted_proxy = true;
  EXPECT_EQ(ClientAddress(proxied), "127.0.0.1");  // no header: the proxy itself
  proxied.headers = {{"x-forwarded-for", "203.0.113.9"}};
  EXPECT_EQ(ClientAddress(proxied), "203.0.113.9");
  proxied.headers = {{"x-forwarded-for", "6.6.6.6, 203.0.113.9 "}};
  EXPECT_EQ(ClientAddress(proxied), "203.0.113.9");
  proxied.headers = {{"x-forwarded-for", "6.6.6.6"}, {"x-forwarded-for", "7.7.7.7,\t2001:db8::1"}};
  EXPECT_EQ(ClientAddress(proxied), "2001:db8::1");
  proxied.headers = {{"x-forwarded-for", " , "}};
  EXPECT_EQ(ClientAddress(proxied), "127.0.0.1");
}

}  // namespace
}  // namespace tinyserve
