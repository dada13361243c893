#include "engine/fair_share.h"

#include <gtest/gtest.h>

namespace tinyserve {
namespace {

TEST(FairShare, AClientWithABacklogIsServedAfterANewClient) {
  FairShare f;
  for (int i = 0; i < 5; ++i) f.Commit("hog", f.PeekTag("hog"), 2.0);
  EXPECT_DOUBLE_EQ(f.PeekTag("hog"), 10.0);
  EXPECT_DOUBLE_EQ(f.PeekTag("light"), 0.0);  // ahead of the hog's second request
  f.Commit("light", f.PeekTag("light"), 1.0);
  EXPECT_DOUBLE_EQ(f.PeekTag("light"), 1.0);
  EXPECT_EQ(f.num_clients(), 2);
}

TEST(FairShare, WorkCountsInFullSoSplittingItDoesNotHelp) {
  FairShare a, b;
  a.Commit("x", a.PeekTag("x"), 6.0);  // one request of 6 s (e.g. 3 prompts x n=2)
  for (int i = 0; i < 6; ++i) b.Commit("x", b.PeekTag("x"), 1.0);
  EXPECT_DOUBLE_EQ(a.PeekTag("x"), b.PeekTag("x"));
}

TEST(FairShare, VirtualTimeMovesWithStartedWorkAndIdleClientsAreForgotten) {
  FairShare f;
  f.Commit("a", 0, 3.0);
  f.Commit("a", 3.0, 3.0);
  f.OnStarted(3.0);
  EXPECT_DOUBLE_EQ(f.virtual_time(), 3.0);
  EXPECT_DOUBLE_EQ(f.PeekTag("b"), 3.0);  // a newcomer gets no credit for the past
  f.OnStarted(1.0);
  EXPECT_DOUBLE_EQ(f.virtual_time(), 3.0);  // never goes back
  f.OnDone("a");
  f.OnDone("a");
  EXPECT_EQ(f.num_clients(), 0);
  f.OnDone("unknown");
  EXPECT_EQ(f.num_clients(), 0);
}

}  // namespace
}  // namespace tinyserve
