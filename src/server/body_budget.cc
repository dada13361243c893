#include "server/body_budget.h"

#include <algorithm>

namespace tinyserve {

BodyBudget::BodyBudget(uint64_t total, uint64_t max_body_bytes)
    : total_(std::max(total, max_body_bytes)),
      large_limit_(max_body_bytes > kSmallBodyBytes ? std::max(total_ - total_ / 8, max_body_bytes)
                                                    : total_),
      peer_limit_(std::max(total_ / 2, max_body_bytes)) {}

bool BodyBudget::Charge(const std::string& peer, uint64_t held, uint64_t more) {
  const uint64_t after = held + more;
  // A body that grows past the small size moves its whole charge into the large share.
  const uint64_t large_more = after <= kSmallBodyBytes ? 0 : held > kSmallBodyBytes ? more : after;
  MutexLock lock(&mu_);
  if (held_ + more > total_ || large_ + large_more > large_limit_) return false;
  if (!peer.empty()) {
    auto it = by_peer_.find(peer);
    const uint64_t of_peer = it == by_peer_.end() ? 0 : it->second;
    if (of_peer + more > peer_limit_) return false;
    if (it == by_peer_.end()) {
      by_peer_.emplace(peer, more);
    } else {
      it->second += more;
    }
  }
  held_ += more;
  large_ += large_more;
  return true;
}

void BodyBudget::Release(const std::string& peer, uint64_t held) {
  if (held == 0) return;
  MutexLock lock(&mu_);
  held_ -= held;
  if (held > kSmallBodyBytes) large_ -= held;
  if (!peer.empty()) {
    auto it = by_peer_.find(peer);
    if ((it->second -= held) == 0) by_peer_.erase(it);
  }
}

uint64_t BodyBudget::held() const {
  MutexLock lock(&mu_);
  return held_;
}

}  // namespace tinyserve
