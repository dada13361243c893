#include "sampling/token_constraint.h"

#include <gtest/gtest.h>

namespace tinyserve {
namespace {

// Allows one token (or none); records what it was told.
class OneToken : public TokenConstraint {
 public:
  explicit OneToken(int32_t allowed) : allowed_(allowed) {}
  std::span<const uint32_t> AllowedTokens(int32_t remaining) override {
    last_remaining = remaining;
    mask_.assign(1, 0);
    if (allowed_ >= 0) mask_[0] = 1u << allowed_;
    return mask_;
  }
  bool Accept(int32_t token) override {
    accepted.push_back(token);
    return token == allowed_;
  }
  bool IsTerminated() const override { return false; }

  int32_t last_remaining = -1;
  std::vector<int32_t> accepted;

 private:
  int32_t allowed_;
  std::vector<uint32_t> mask_;
};

ResolvedSamplingParams GreedyParams() {
  SamplingParams p;
  p.temperature = 0.0f;
  return ResolveSamplingParams(p, GenerationDefaults{});
}

TEST(TokenConstraintTest, TheMaskDecidesAndTheConstraintLearnsTheToken) {
  const ResolvedSamplingParams params = GreedyParams();
  SamplerState state(params, {});
  std::vector<float> logits = {5.0f, 1.0f, 0.5f, 0.0f};  // greedy alone would pick 0
  OneToken c(2);
  ConstrainedSample s = SampleWithConstraint(logits, params, state, {}, &c, 7);
  ASSERT_TRUE(s.error.ok()) << s.error.ToString();
  EXPECT_EQ(s.result.token_id, 2);
  EXPECT_EQ(c.accepted, std::vector<int32_t>{2});
  EXPECT_EQ(c.last_remaining, 7);
  EXPECT_GE(s.mask_seconds, 0.0);
}

TEST(TokenConstraintTest, NoConstraintIsThePlainChain) {
  const ResolvedSamplingParams params = GreedyParams();
  SamplerState state(params, {});
  std::vector<float> logits = {5.0f, 1.0f, 0.5f, 0.0f};
  const int32_t banned[] = {0};
  ConstrainedSample s = SampleWithConstraint(logits, params, state, banned, nullptr, 7);
  EXPECT_TRUE(s.error.ok());
  EXPECT_EQ(s.result.token_id, 1);
  EXPECT_LT(s.mask_seconds, 0.0);
}

// Allows nothing and says why.
class Failed : public OneToken {
 public:
  Failed() : OneToken(-1) {}
  Status error() const override { return InvalidArgumentError("too ambiguous"); }
};

TEST(TokenConstraintTest, AnEmptyMaskIsTheConstraintsErrorWhenItHasOne) {
  const ResolvedSamplingParams params = GreedyParams();
  SamplerState state(params, {});
  std::vector<float> logits = {5.0f, 1.0f};
  Failed c;
  ConstrainedSample s = SampleWithConstraint(logits, params, state, {}, &c, 3);
  EXPECT_EQ(s.error.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.error.message(), "too ambiguous");
}

TEST(TokenConstraintTest, AnEmptyMaskIsAnError) {
  const ResolvedSamplingParams params = GreedyParams();
  SamplerState state(params, {});
  std::vector<float> logits = {5.0f, 1.0f};
  OneToken c(-1);
  ConstrainedSample s = SampleWithConstraint(logits, params, state, {}, &c, 3);
  EXPECT_EQ(s.error.code(), StatusCode::kInternal);
  EXPECT_TRUE(c.accepted.empty());
}

}  // namespace
}  // namespace tinyserve
