// Per-client fair share of the engine (start-time fair queueing): each client's work gets a
// start tag that grows with the work the client already has queued, so a client with a backlog
// is served after clients without one, and one client cannot fill the queue or the batch at the
// others' expense. Work is measured in predicted engine seconds, so a multi-prompt or n > 1
// request counts as all of its work. Not thread-safe: the admission controller guards it.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

namespace tinyserve {

class FairShare {
 public:
  // The start tag new work of `client` would get: max(virtual time, the client's last finish).
  double PeekTag(const std::string& client) const;
  // Records admitted work: the client's finish tag becomes `tag + work_s`.
  void Commit(const std::string& client, double tag, double work_s);
  // Work tagged `tag` started running: virtual time moves up to it.
  void OnStarted(double tag);
  // A client's work ended (finished, shed or cancelled); clients without work are forgotten.
  void OnDone(const std::string& client);
  // Clients with admitted work.
  int32_t num_clients() const { return static_cast<int32_t>(clients_.size()); }
  double virtual_time() const { return virtual_time_; }

 private:
  struct Client {
    double finish_tag = 0;
    int32_t live = 0;  // admitted work items not yet done
  };
  std::unordered_map<std::string, Client> clients_;
  double virtual_time_ = 0;
};

}  // namespace tinyserve
