#include "util/mix.h"

#include <gtest/gtest.h>

namespace tinyserve {
namespace {

// The published splitmix64 sequence for seed 1234567 (Vigna's splitmix64.c reference output).
TEST(MixTest, SplitMix64MatchesTheReferenceSequence) {
  uint64_t state = 1234567;
  const uint64_t expected[] = {6457827717110365317ull, 3203168211198807973ull,
                               9817491932198370423ull, 4593380528125082431ull,
                               16408922859458223821ull};
  for (uint64_t e : expected) {
    EXPECT_EQ(SplitMix64(state), e);
    state += kSplitMix64Gamma;
  }
}

}  // namespace
}  // namespace tinyserve
