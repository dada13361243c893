// The memory bound on the request bodies the HTTP I/O thread holds (still arriving, or complete
// and queued for a worker), divided so that no one client can spend it all: a client stalling
// large bodies could otherwise make every other client's POST fail with 503 until
// --read-timeout. Thread-safe: the I/O thread charges; it and the workers release.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace tinyserve {

class BodyBudget {
 public:
  // A body this large or smaller is "small": what almost every chat or completion request is.
  static constexpr uint64_t kSmallBodyBytes = 64 << 10;

  // `total`: bytes all bodies may hold together; at least `max_body_bytes` (the largest body
  // accepted), so that a lone body of any accepted size is always received. Two shares of it:
  // - A reserve that only small bodies may use, total / 8 (none where no accepted body is
  //   large, or where the total holds one largest body and no more): large bodies from any
  //   number of addresses cannot keep a small request out.
  // - A per-client share, half of the total (at least one largest body): one address stalling
  //   bodies leaves the other half to everyone else. A reverse proxy is one address for all its
  //   clients, so it should be in --trusted-proxies (exempt, peer ""); an unlisted one still
  //   passes, since proxies such as nginx buffer each body and forward it at local speed: its
  //   bodies hold the budget for milliseconds, not for a client's upload.
  BodyBudget(uint64_t total, uint64_t max_body_bytes);
  BodyBudget(const BodyBudget&) = delete;
  BodyBudget& operator=(const BodyBudget&) = delete;

  // Grows one body's charge from `held` to `held + more` bytes. `peer`: its client's address, ""
  // when exempt from per-client limits. False, charging nothing, when that would pass the
  // total, the share of large bodies or the peer's share.
  [[nodiscard]] bool Charge(const std::string& peer, uint64_t held, uint64_t more);
  // Gives back one body's whole charge (`held`, as last charged).
  void Release(const std::string& peer, uint64_t held);

  uint64_t held() const;  // bytes charged now
  uint64_t total() const { return total_; }
  uint64_t large_limit() const { return large_limit_; }
  uint64_t peer_limit() const { return peer_limit_; }

 private:
  const uint64_t total_;
  const uint64_t large_limit_;  // total_ less the small bodies' reserve
  const uint64_t peer_limit_;
  mutable Mutex mu_;
  uint64_t held_ GUARDED_BY(mu_) = 0;
  uint64_t large_ GUARDED_BY(mu_) = 0;  // of held_, the bytes of bodies past kSmallBodyBytes
  std::unordered_map<std::string, uint64_t> by_peer_ GUARDED_BY(mu_);  // nonzero entries only
};

}  // namespace tinyserve
