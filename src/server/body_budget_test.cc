// BodyBudget's shares: the reserve small bodies keep from large ones, and the per-client half.
#include "server/body_budget.h"

#include <gtest/gtest.h>

namespace tinyserve {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kSmall = BodyBudget::kSmallBodyBytes;

TEST(BodyBudget, OneClientHoldsAtMostHalfAndOthersStillGetTheRest) {
  BodyBudget budget(64 * kMiB, 4 * kMiB);
  int held = 0;
  while (budget.Charge("10.0.0.1", 0, 4 * kMiB - 1)) ++held;
  EXPECT_EQ(held, 8);  // 32 MiB: the attacker's 16 stalled bodies do not all fit
  EXPECT_FALSE(budget.Charge("10.0.0.1", 0, 100));
  EXPECT_TRUE(budget.Charge("10.0.0.2", 0, 100));       // a victim's small request
  EXPECT_TRUE(budget.Charge("10.0.0.3", 0, 4 * kMiB));  // ... and a large one
  EXPECT_TRUE(budget.Charge("", 0, 16 * kMiB));         // a trusted proxy: no share
  budget.Release("10.0.0.1", 4 * kMiB - 1);
  EXPECT_TRUE(budget.Charge("10.0.0.1", 0, 4 * kMiB - 1));  // its share comes back
}

TEST(BodyBudget, LargeBodiesFromManyClientsLeaveTheReserveToSmallOnes) {
  BodyBudget budget(64 * kMiB, 4 * kMiB);
  EXPECT_EQ(budget.large_limit(), 56 * kMiB);
  int large = 0;
  for (int peer = 0; peer < 16; ++peer)
    if (budget.Charge("10.0.1." + std::to_string(peer), 0, 4 * kMiB - 1)) ++large;
  EXPECT_EQ(large, 14);
  EXPECT_FALSE(budget.Charge("10.0.2.1", 0, kSmall + 1));  // large: out of the reserve
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(budget.Charge("10.0.2.1", 0, 1000)) << i;
  EXPECT_EQ(budget.held(), 14 * (4 * kMiB - 1) + 100 * 1000);
}

TEST(BodyBudget, ABodyGrowingPastSmallMovesItsWholeChargeToTheLargeShare) {
  BodyBudget budget(8 * kMiB, 1 * kMiB);        // large share 7 MiB
  ASSERT_TRUE(budget.Charge("", 0, 7 * kMiB));  // a trusted proxy's (no per-client share)
  EXPECT_TRUE(budget.Charge("b", 0, kSmall));   // small so far: from the reserve
  EXPECT_FALSE(budget.Charge("b", kSmall, 1));  // growing large: the large share is full
  EXPECT_EQ(budget.held(), 7 * kMiB + kSmall);  // the refusal charged nothing
  budget.Release("", 7 * kMiB);
  EXPECT_TRUE(budget.Charge("b", kSmall, 1));
  budget.Release("b", kSmall + 1);
  EXPECT_EQ(budget.held(), 0u);
  EXPECT_TRUE(budget.Charge("c", 0, 1 * kMiB));  // the large share is whole again
}

TEST(BodyBudget, ALoneLargestBodyAlwaysFits) {
  // A budget of one body: no reserve and no per-client half could leave it room.
  BodyBudget one(4 * kMiB, 4 * kMiB);
  EXPECT_EQ(one.large_limit(), 4 * kMiB);
  EXPECT_EQ(one.peer_limit(), 4 * kMiB);
  EXPECT_TRUE(one.Charge("a", 0, 4 * kMiB));
  BodyBudget below(1, 4 * kMiB);  // raised to one body
  EXPECT_EQ(below.total(), 4 * kMiB);
  EXPECT_TRUE(below.Charge("a", 0, 4 * kMiB));
  // Bodies never large: every byte may be used by them.
  BodyBudget small_only(128 << 10, 64 << 10);
  EXPECT_EQ(small_only.large_limit(), small_only.total());
}

}  // namespace
}  // namespace tinyserve
