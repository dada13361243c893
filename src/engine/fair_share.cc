#include "engine/fair_share.h"

#include <algorithm>

namespace tinyserve {

double FairShare::PeekTag(const std::string& client) const {
  auto it = clients_.find(client);
  return it == clients_.end() ? virtual_time_ : std::max(virtual_time_, it->second.finish_tag);
}

void FairShare::Commit(const std::string& client, double tag, double work_s) {
  Client& c = clients_[client];
  c.finish_tag = std::max(c.finish_tag, tag + std::max(0.0, work_s));
  ++c.live;
}

void FairShare::OnStarted(double tag) { virtual_time_ = std::max(virtual_time_, tag); }

void FairShare::OnDone(const std::string& client) {
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  // A client that comes back later starts from the virtual time of then, not from an old tag.
  if (--it->second.live <= 0) clients_.erase(it);
}

}  // namespace tinyserve
