// Hands a fixed number of grammar compile slots to waiting requests, client by client: a free
// slot goes to the waiting client served longest ago (a client never served first), and within
// a client to its oldest waiter. First come, first served let one client queueing a burst of
// slow grammars (each may take the 2 s time limit plus the precompute budget) keep every other
// client's compile waiting behind the whole burst, past GrammarCache's wait limit; here another
// client waits for the compiles already running and no more (behind eight 1.5-2 s compiles of
// one address: 1.1-1.9 s, where its place among the waiters was the draw of a lock).
// Memory is bounded by the waiters and running compiles (at most one per HTTP worker). Not
// thread-safe: GrammarCache calls it under its mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tinyserve::structured {

class CompileGate {
 public:
  explicit CompileGate(int32_t slots) : slots_(slots) {}

  // A new waiter of `client` ("" is a client too: requests without an address share it).
  // Returns its ticket.
  uint64_t Join(std::string_view client);
  // Whether `ticket` may take a slot now: one is free and the ticket is next (see above).
  bool MayTake(uint64_t ticket) const;
  // Takes the slot MayTake allowed.
  void Take(uint64_t ticket);
  // A waiter that gives up (its wait limit passed).
  void Leave(uint64_t ticket);
  // A compile of `client` ended: its slot is free.
  void Release(std::string_view client);
  int32_t running() const { return running_; }

 private:
  struct Client {
    std::deque<uint64_t> waiting;  // tickets, oldest first
    int32_t running = 0;
    uint64_t last_grant = 0;  // when it last took a slot, in grants; 0: never
  };
  // The ticket a free slot goes to, or 0 when nobody waits.
  uint64_t Next() const;
  // Drops the client's entry once it neither waits nor compiles.
  void ForgetIfIdle(const std::string& name);

  int32_t slots_;
  int32_t running_ = 0;
  uint64_t next_ticket_ = 1;
  uint64_t grants_ = 0;
  std::unordered_map<std::string, Client> clients_;    // those waiting or compiling
  std::unordered_map<uint64_t, std::string> waiting_;  // ticket -> client
};

}  // namespace tinyserve::structured
