#include "bench/client.h"

#include <gtest/gtest.h>

#include "bench/fake_openai_server.h"

namespace tinyserve::bench {
namespace {

TaskType PlainTask() {
  TaskType t;
  t.name = "code";
  t.max_tokens = 17;
  t.temperature = 0.2;
  t.system = "sys";
  t.samples.push_back({"s0", "in", nullptr, "write it"});
  return t;
}

TEST(ClientTest, ParsesBaseUrls) {
  StatusOr<BaseUrl> u = ParseBaseUrl("http://127.0.0.1:8000/v1/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme_host_port, "http://127.0.0.1:8000");
  EXPECT_EQ(u->path_prefix, "/v1");
  EXPECT_EQ(ParseBaseUrl("https://api.example.com")->path_prefix, "");
  EXPECT_FALSE(ParseBaseUrl("127.0.0.1:8000").ok());
  EXPECT_FALSE(ParseBaseUrl("ftp://x/v1").ok());
  EXPECT_FALSE(ParseBaseUrl("http:///v1").ok());
}

TEST(ClientTest, SseParserSplitsEventsAcrossArbitraryChunkBoundaries) {
  std::string stream = "data: {\"a\":1}\n\n: comment\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    SseParser p;
    std::vector<std::string> got;
    auto on = [&](std::string_view d) { got.emplace_back(d); };
    p.Feed(std::string_view(stream).substr(0, cut), on);
    p.Feed(std::string_view(stream).substr(cut), on);
    ASSERT_EQ(got.size(), 3u) << "cut at " << cut;
    EXPECT_EQ(got[0], "{\"a\":1}");
    EXPECT_EQ(got[2], "[DONE]");
  }
}

TEST(ClientTest, RequestBodyCarriesStreamingUsageAndTaskParameters) {
  TaskType t = PlainTask();
  ClientConfig c;
  c.model = "m";
  nlohmann::json chat = BuildRequestBody(c, t, t.samples[0]);
  EXPECT_EQ(chat["stream"], true);
  EXPECT_EQ(chat["stream_options"]["include_usage"], true);
  EXPECT_EQ(chat["max_tokens"], 17);
  EXPECT_EQ(chat["messages"][0]["role"], "system");
  EXPECT_EQ(chat["messages"][1]["content"], "write it");
  EXPECT_FALSE(chat.contains("response_format"));
  c.endpoint = Endpoint::kCompletions;
  nlohmann::json completion = BuildRequestBody(c, t, t.samples[0]);
  EXPECT_EQ(completion["prompt"], "sys\n\nwrite it");
  EXPECT_FALSE(completion.contains("messages"));
}

TEST(ClientTest, MeasuresTtftInterTokenGapsAndUsage) {
  FakeServerConfig config;
  config.num_tokens = 5;
  config.first_token_delay_ms = 60;
  config.token_delay_ms = 15;
  FakeOpenAIServer server(config);
  server.Start();
  ClientConfig c;
  c.base_url = server.base_url();
  c.model = "m";
  for (Endpoint e : {Endpoint::kChat, Endpoint::kCompletions}) {
    c.endpoint = e;
    auto client = OpenAIClient::Create(c);
    ASSERT_TRUE(client.ok());
    TaskType t = PlainTask();
    RequestOutcome o = (*client)->Send(t, t.samples[0]);
    ASSERT_TRUE(o.ok()) << o.cause << ": " << o.detail;
    EXPECT_EQ(o.http_status, 200);
    EXPECT_GE(o.ttft_s, 0.060);
    EXPECT_LT(o.ttft_s, o.e2e_s);
    ASSERT_EQ(o.itl_s.size(), 4u);
    // Single gaps jitter with delivery, but the last token cannot arrive before the server sent
    // it: 60 ms + 4 x 15 ms after the request.
    double last_arrival = o.ttft_s;
    for (double g : o.itl_s) last_arrival += g;
    EXPECT_GE(last_arrival, 0.120);
    EXPECT_TRUE(o.usage_reported);
    EXPECT_EQ(o.output_tokens, 5);
    EXPECT_EQ(o.prompt_tokens, 11);
    EXPECT_EQ(o.finish_reason, "stop");
    EXPECT_EQ(o.text, "t0 t1 t2 t3 t4 ");
  }
}

TEST(ClientTest, CountsContentChunksWhenUsageIsAbsent) {
  FakeServerConfig config;
  config.num_tokens = 7;
  config.send_usage = false;
  FakeOpenAIServer server(config);
  server.Start();
  ClientConfig c;
  c.base_url = server.base_url();
  auto client = OpenAIClient::Create(c);
  TaskType t = PlainTask();
  RequestOutcome o = (*client)->Send(t, t.samples[0]);
  ASSERT_TRUE(o.ok()) << o.cause;
  EXPECT_FALSE(o.usage_reported);
  EXPECT_EQ(o.output_tokens, 7);
}

std::string CauseFor(FakeServerConfig::Mode mode) {
  FakeServerConfig config;
  config.mode = mode;
  FakeOpenAIServer server(config);
  server.Start();
  ClientConfig c;
  c.base_url = server.base_url();
  // Short only where the timeout is the point: a loaded machine's slow 500 is still a 500.
  c.timeout_s = mode == FakeServerConfig::Mode::kStall ? 0.3 : 10;
  auto client = OpenAIClient::Create(c);
  TaskType t = PlainTask();
  return (*client)->Send(t, t.samples[0]).cause;
}

TEST(ClientTest, ClassifiesFailuresByCause) {
  EXPECT_EQ(CauseFor(FakeServerConfig::Mode::kHttp500), "http_500");
  EXPECT_EQ(CauseFor(FakeServerConfig::Mode::kTruncate), "truncated_stream");
  EXPECT_EQ(CauseFor(FakeServerConfig::Mode::kBadChunk), "bad_chunk");
  EXPECT_EQ(CauseFor(FakeServerConfig::Mode::kStall), "timeout");
}

TEST(ClientTest, RefusedConnectionIsAConnectionFailure) {
  StatusOr<int> port = [] {
    FakeOpenAIServer s(FakeServerConfig{});
    int p = s.Start();
    s.Stop();
    return StatusOr<int>(p);
  }();
  ClientConfig c;
  c.base_url = "http://127.0.0.1:" + std::to_string(*port) + "/v1";
  c.timeout_s = 2;
  auto client = OpenAIClient::Create(c);
  TaskType t = PlainTask();
  RequestOutcome o = (*client)->Send(t, t.samples[0]);
  EXPECT_EQ(o.cause, "connection") << o.detail;
}

TEST(ClientTest, TimeoutsAreReusableClients) {
  // After a stalled request is cut off, the same client still serves a normal one.
  FakeServerConfig config;
  config.num_tokens = 2;
  config.answer = [](const nlohmann::json& body) -> std::string { return "ok"; };
  FakeOpenAIServer normal(config);
  normal.Start();
  FakeServerConfig stall_config;
  stall_config.mode = FakeServerConfig::Mode::kStall;
  FakeOpenAIServer stall(stall_config);
  stall.Start();
  ClientConfig c;
  c.base_url = stall.base_url();
  c.timeout_s = 0.2;
  auto stalled = OpenAIClient::Create(c);
  TaskType t = PlainTask();
  RequestOutcome first = (*stalled)->Send(t, t.samples[0]);
  EXPECT_EQ(first.cause, "timeout");
  // The stall lasts 5 s; the 2 s margin is for a loaded machine (as in load_generator_test).
  EXPECT_LT(first.e2e_s, 0.2 + 2.0);
  RequestOutcome second = (*stalled)->Send(t, t.samples[0]);
  EXPECT_EQ(second.cause, "timeout");
  c.base_url = normal.base_url();
  c.timeout_s = 10;
  auto ok_client = OpenAIClient::Create(c);
  EXPECT_TRUE((*ok_client)->Send(t, t.samples[0]).ok());
}

}  // namespace
}  // namespace tinyserve::bench
