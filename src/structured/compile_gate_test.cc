// CompileGate: a free slot goes to the waiting client served longest ago (never served first),
// and within a client to its oldest waiter.
#include "structured/compile_gate.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tinyserve::structured {
namespace {

// Waiters by ticket: (client, label).
using Waiters = std::map<uint64_t, std::pair<std::string, std::string>>;

// Runs the gate to empty, one compile at a time: whichever waiter may take a slot takes it and
// its compile ends at once. Returns the labels in the order they got a slot.
std::vector<std::string> GrantOrder(CompileGate& gate, Waiters waiters) {
  std::vector<std::string> order;
  while (!waiters.empty()) {
    auto next = waiters.begin();
    while (next != waiters.end() && !gate.MayTake(next->first)) ++next;
    if (next == waiters.end()) {
      ADD_FAILURE() << "no waiter may take the free slot";
      break;
    }
    gate.Take(next->first);
    order.push_back(next->second.second);
    gate.Release(next->second.first);
    waiters.erase(next);
  }
  return order;
}

TEST(CompileGateTest, ABurstOfOneClientDoesNotQueueAnotherBehindIt) {
  CompileGate gate(1);
  Waiters waiters;
  for (const char* label : {"a1", "a2", "a3", "a4"})
    waiters[gate.Join("attacker")] = {"attacker", label};
  waiters[gate.Join("user")] = {"user", "u1"};
  waiters[gate.Join("user")] = {"user", "u2"};
  EXPECT_EQ(GrantOrder(gate, waiters),
            (std::vector<std::string>{"a1", "u1", "a2", "u2", "a3", "a4"}));
}

TEST(CompileGateTest, ClientsNeverServedGoInTheOrderTheyCame) {
  CompileGate gate(1);
  Waiters waiters;
  waiters[gate.Join("a")] = {"a", "a1"};
  waiters[gate.Join("a")] = {"a", "a2"};
  waiters[gate.Join("b")] = {"b", "b1"};
  waiters[gate.Join("")] = {"", "anonymous"};  // "" is one client like any other
  waiters[gate.Join("c")] = {"c", "c1"};
  EXPECT_EQ(GrantOrder(gate, waiters),
            (std::vector<std::string>{"a1", "b1", "anonymous", "c1", "a2"}));
}

// The flood's case: its compile is running and more of its requests wait when another client
// comes; the slot goes to the newcomer next, not to the flood's second request.
TEST(CompileGateTest, AClientWhoseCompileRunsWaitsBehindANewcomer) {
  CompileGate gate(1);
  const uint64_t running = gate.Join("flood");
  ASSERT_TRUE(gate.MayTake(running));
  gate.Take(running);
  const uint64_t second = gate.Join("flood"), third = gate.Join("flood");
  const uint64_t user = gate.Join("user");
  EXPECT_FALSE(gate.MayTake(user));  // the slot is taken
  gate.Release("flood");
  EXPECT_FALSE(gate.MayTake(second));
  EXPECT_TRUE(gate.MayTake(user));
  gate.Take(user);
  gate.Release("user");
  EXPECT_TRUE(gate.MayTake(second));
  gate.Take(second);
  gate.Release("flood");
  EXPECT_TRUE(gate.MayTake(third));
}

TEST(CompileGateTest, NoMoreCompilesThanSlotsRunAtOnce) {
  CompileGate gate(2);
  const uint64_t a = gate.Join("a"), b = gate.Join("b"), c = gate.Join("c");
  ASSERT_TRUE(gate.MayTake(a));
  gate.Take(a);
  EXPECT_FALSE(gate.MayTake(c));  // b came first
  ASSERT_TRUE(gate.MayTake(b));
  gate.Take(b);
  EXPECT_EQ(gate.running(), 2);
  EXPECT_FALSE(gate.MayTake(c));  // every slot is taken
  gate.Release("a");
  EXPECT_TRUE(gate.MayTake(c));
}

TEST(CompileGateTest, AWaiterThatLeavesPassesTheTurnOn) {
  CompileGate gate(1);
  const uint64_t running = gate.Join("a");
  gate.Take(running);
  const uint64_t first = gate.Join("b"), second = gate.Join("b"), other = gate.Join("c");
  gate.Release("a");
  EXPECT_TRUE(gate.MayTake(first));
  gate.Leave(first);
  EXPECT_TRUE(gate.MayTake(second));  // the same client's next waiter
  gate.Leave(second);
  EXPECT_TRUE(gate.MayTake(other));
  gate.Take(other);
  EXPECT_EQ(gate.running(), 1);
  gate.Release("c");
  // Nobody waits or compiles any more: a client takes the free slot as it comes.
  const uint64_t late = gate.Join("a");
  EXPECT_TRUE(gate.MayTake(late));
}

}  // namespace
}  // namespace tinyserve::structured
