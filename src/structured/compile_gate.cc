#include "structured/compile_gate.h"

#include <algorithm>

#include "util/check.h"

namespace tinyserve::structured {

uint64_t CompileGate::Join(std::string_view client) {
  const uint64_t ticket = next_ticket_++;
  std::string name(client);
  clients_[name].waiting.push_back(ticket);
  waiting_.emplace(ticket, std::move(name));
  return ticket;
}

uint64_t CompileGate::Next() const {
  // A linear scan: there are at most as many clients as HTTP workers.
  const Client* best = nullptr;
  for (const auto& [name, client] : clients_) {
    if (client.waiting.empty()) continue;
    if (best == nullptr || client.last_grant < best->last_grant ||
        (client.last_grant == best->last_grant && client.waiting.front() < best->waiting.front()))
      best = &client;
  }
  return best == nullptr ? 0 : best->waiting.front();
}

bool CompileGate::MayTake(uint64_t ticket) const { return running_ < slots_ && Next() == ticket; }

void CompileGate::Take(uint64_t ticket) {
  TS_CHECK(MayTake(ticket));
  auto found = waiting_.find(ticket);
  Client& client = clients_.at(found->second);
  client.waiting.pop_front();  // Next() is the client's oldest
  ++client.running;
  client.last_grant = ++grants_;
  ++running_;
  waiting_.erase(found);
}

void CompileGate::Leave(uint64_t ticket) {
  auto found = waiting_.find(ticket);
  TS_CHECK(found != waiting_.end());
  Client& client = clients_.at(found->second);
  client.waiting.erase(std::find(client.waiting.begin(), client.waiting.end(), ticket));
  const std::string name = std::move(found->second);
  waiting_.erase(found);
  ForgetIfIdle(name);
}

void CompileGate::Release(std::string_view client_name) {
  const std::string name(client_name);
  Client& client = clients_.at(name);
  TS_CHECK(client.running > 0 && running_ > 0);
  --client.running;
  --running_;
  ForgetIfIdle(name);
}

void CompileGate::ForgetIfIdle(const std::string& name) {
  auto found = clients_.find(name);
  if (found != clients_.end() && found->second.waiting.empty() && found->second.running == 0)
    clients_.erase(found);
}

}  // namespace tinyserve::structured
