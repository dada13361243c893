#include "engine/output_processor.h"

#include <gtest/gtest.h>

#include "engine/testing/fake_model.h"

namespace tinyserve {
namespace {

using testing::FakeModel;

class OutputProcessorTest : public ::testing::Test {
 protected:
  OutputProcessorTest() : processor_(testing::FakeTokenText({"Hel", "lo"}), {FakeModel::kEos}) {
    seq_.token_ids = {1, 2};
    seq_.num_prompt_tokens = 2;
    spec_.max_tokens = 10;
    spec_.max_model_len = 100;
    spec_.detokenize = true;
  }

  // Appends `token` to the sequence and processes it.
  TokenOutput Feed(int32_t token, OutputText* text) {
    seq_.token_ids.push_back(token);
    SampleResult r;
    r.token_id = token;
    r.logprob = -0.5f;
    r.top_logprobs = {{token, -0.5f}, {7, -1.5f}};
    return processor_.ProcessToken(spec_, seq_, r, /*constraint_done=*/false, text);
  }

  OutputProcessor processor_;
  OutputSpec spec_;
  Sequence seq_;
};

TEST_F(OutputProcessorTest, TextEosAndLogprobs) {
  spec_.logprobs = true;
  auto text = processor_.NewChoiceText(spec_);
  TokenOutput a = Feed(256, text.get());
  EXPECT_EQ(a.finish, FinishReason::kNone);
  EXPECT_EQ(a.event.text, "Hel");
  ASSERT_EQ(a.event.logprobs.size(), 1u);
  EXPECT_EQ(a.event.logprobs[0].chosen.token_id, 256);
  EXPECT_EQ(a.event.logprobs[0].top.size(), 2u);
  TokenOutput eos = Feed(FakeModel::kEos, text.get());
  EXPECT_EQ(eos.finish, FinishReason::kStop);
  EXPECT_EQ(eos.event.text, "");
  EXPECT_EQ(eos.event.stop_reason, "");
}

TEST_F(OutputProcessorTest, MinTokensHoldsStopsBackAndMaxTokensEnds) {
  spec_.stop.min_tokens = 2;
  spec_.stop.stop_token_ids = {'x'};
  spec_.max_tokens = 3;
  EXPECT_EQ(processor_.BannedTokens(spec_, 0), (std::vector<int32_t>{FakeModel::kEos, 'x'}));
  EXPECT_TRUE(processor_.BannedTokens(spec_, 2).empty());
  EXPECT_EQ(Feed('x', nullptr).finish, FinishReason::kNone);  // 1 < min_tokens
  TokenOutput stop = Feed('x', nullptr);
  EXPECT_EQ(stop.finish, FinishReason::kStop);
  EXPECT_EQ(stop.event.stop_reason, std::to_string('x'));
  spec_.stop.stop_token_ids.clear();
  EXPECT_EQ(Feed('y', nullptr).finish, FinishReason::kLength);
}

TEST_F(OutputProcessorTest, AStopStringIsCutAndAPartialCharacterFlushedAtTheEnd) {
  spec_.stop.stop = {"lo"};
  auto text = processor_.NewChoiceText(spec_);
  EXPECT_EQ(Feed(256, text.get()).event.text, "He");  // "l" could start "lo": held back
  TokenOutput stop = Feed(257, text.get());
  EXPECT_EQ(stop.finish, FinishReason::kStop);
  EXPECT_EQ(stop.event.stop_reason, "lo");
  EXPECT_EQ(stop.event.text, "l");
  // Another choice: the first byte of a 2-byte character, then max_tokens.
  spec_.stop.stop.clear();
  spec_.max_tokens = seq_.num_generated() + 1;
  auto text2 = processor_.NewChoiceText(spec_);
  TokenOutput end = Feed(0xC3, text2.get());
  EXPECT_EQ(end.finish, FinishReason::kLength);
  EXPECT_EQ(end.event.text, "\xEF\xBF\xBD");
}

TEST_F(OutputProcessorTest, UsageSplitsQueuePrefillAndDecode) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  seq_.arrival_time = t0;
  seq_.scheduled_once = true;
  seq_.first_scheduled_time = t0 + std::chrono::seconds(1);
  seq_.token_ids.push_back(5);
  seq_.first_token_time = t0 + std::chrono::seconds(3);
  const ChoiceUsage u = OutputProcessor::Usage(seq_, t0 + std::chrono::seconds(6));
  EXPECT_EQ(u.prompt_tokens, 2);
  EXPECT_EQ(u.completion_tokens, 1);
  EXPECT_DOUBLE_EQ(u.queue_time_s, 1.0);
  EXPECT_DOUBLE_EQ(u.prefill_time_s, 2.0);
  EXPECT_DOUBLE_EQ(u.decode_time_s, 3.0);
}

}  // namespace
}  // namespace tinyserve
