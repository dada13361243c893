// The only place where the engine thread and other threads (HTTP workers, the CLI) meet: the
// inbox of submitted requests and abort orders, each request's outbox of events, and the
// published stats snapshot. Every mutex they share lives in this file. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "engine/request.h"
#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace tinyserve {

// One request's outbox. The engine thread pushes; any one reader thread pops.
class RequestStream {
 public:
  RequestStream(std::string request_id, int32_t n);
  RequestStream(const RequestStream&) = delete;
  RequestStream& operator=(const RequestStream&) = delete;

  const std::string& request_id() const { return request_id_; }
  int32_t n() const { return n_; }

  // The next event, waiting at most `timeout`. nullopt on timeout or once done().
  std::optional<RequestEvent> Next(std::chrono::milliseconds timeout);
  // The next event, waiting as long as it takes; nullopt only once done().
  std::optional<RequestEvent> Next();
  // Every choice has finished and all events were taken.
  bool done() const;

  // Engine side: appends an event and wakes the reader.
  void Push(RequestEvent event);

 private:
  const std::string request_id_;
  const int32_t n_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<RequestEvent> events_ GUARDED_BY(mu_);
  int32_t choices_open_ GUARDED_BY(mu_);  // choices whose final event is not pushed
};

// A submitted request on its way to the engine thread.
struct PendingRequest {
  GenerateRequest request;
  std::shared_ptr<RequestStream> stream;
  std::chrono::steady_clock::time_point arrival;
};

// The inbox. HTTP threads Push and Abort; the engine thread Takes.
class RequestQueue {
 public:
  // `max_queue_len`: requests submitted but not yet admitted (inbox + engine's waiting queue)
  // beyond which Push fails at once.
  explicit RequestQueue(int32_t max_queue_len);

  // Fails with Unavailable when the queue is full or the engine stopped, InvalidArgument when
  // a live request already has this id. Never blocks long.
  [[nodiscard]] Status Push(PendingRequest request);
  // Engine thread: the request finished; its id may be used again.
  void Release(const std::string& request_id);
  void Abort(std::string request_id);
  // Engine thread: takes everything submitted or aborted since the last call. Blocks until
  // there is something, Stop() is called, or `block` is false.
  void Take(bool block, std::vector<PendingRequest>* requests, std::vector<std::string>* aborts);
  // Engine thread: how many requests it holds in its waiting queue (for the Push limit).
  void SetEngineWaiting(int64_t num_waiting);
  // Wakes Take; later Pushes fail.
  void Stop();
  bool stopped() const;

 private:
  const int32_t max_queue_len_;
  mutable Mutex mu_;
  CondVar cv_;
  std::vector<PendingRequest> requests_ GUARDED_BY(mu_);
  std::vector<std::string> aborts_ GUARDED_BY(mu_);
  int64_t engine_waiting_ GUARDED_BY(mu_) = 0;
  std::unordered_set<std::string> live_ids_ GUARDED_BY(mu_);
  bool stopped_ GUARDED_BY(mu_) = false;
};

// A value published by the engine thread and read by others (the stats snapshot).
template <typename T>
class Published {
 public:
  void Set(T value) {
    MutexLock lock(&mu_);
    value_ = std::move(value);
  }
  T Get() const {
    MutexLock lock(&mu_);
    return value_;
  }

 private:
  mutable Mutex mu_;
  T value_ GUARDED_BY(mu_){};
};

}  // namespace tinyserve
