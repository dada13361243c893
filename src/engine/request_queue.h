// The only place where the engine thread and other threads (HTTP workers, the CLI) meet: the
// inbox of submitted requests and abort orders, the outboxes of events (one per request, or
// one per HTTP call shared by its requests), and the published stats snapshot. Every mutex of
// the engine shared between threads lives in this file. Thread-safe.
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

// Where the engine thread posts the events of one or more request streams and one reader
// waits for them: a call with several prompts (or a caller that wants the events of many
// requests in order of arrival) waits on one condition variable, not on each stream in turn.
class Outbox {
 public:
  struct Item {
    int32_t tag = 0;  // the tag of the stream that posted (e.g. the prompt index)
    RequestEvent event;
  };

  // `max_pending`: items waiting for the reader beyond which Post reports a backlog (0: no
  // limit). A server's reader blocks on a client that stops reading its stream while the engine
  // keeps posting; without a limit such clients could hold every token of every request they
  // opened in memory (and the engine would keep computing them).
  explicit Outbox(int64_t max_pending = 0) : max_pending_(max_pending) {}
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // The next item, waiting at most `timeout`. nullopt on timeout or once done().
  std::optional<Item> Next(std::chrono::milliseconds timeout);
  // The next item, waiting as long as it takes; nullopt only once done().
  std::optional<Item> Next();
  // The next item if one is there; never waits.
  std::optional<Item> TryNext();
  // Every choice of every stream opened here has finished and all items were taken.
  bool done() const;

  // Stream side: `num_choices` more choices will post here (Open) or never will (Close).
  void Open(int32_t num_choices);
  void Close(int32_t num_choices);
  // Engine side: appends an item and wakes the reader. A final event (finish_reason set)
  // closes its choice. False when more than max_pending items now wait (the item is kept): the
  // poster should end the streams that post here.
  [[nodiscard]] bool Post(int32_t tag, RequestEvent event);

 private:
  std::optional<Item> PopLocked() REQUIRES(mu_);

  const int64_t max_pending_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Item> items_ GUARDED_BY(mu_);
  // Opened choices whose final event is not posted.
  int64_t choices_open_ GUARDED_BY(mu_) = 0;
};

// One request's stream of events. It posts into an Outbox: its own (then read it through
// Next / TryNext), or one shared with other streams (then read the outbox; the tag tells the
// streams apart). The engine thread pushes; one reader at a time reads.
class RequestStream {
 public:
  // No `outbox`: the stream makes its own.
  RequestStream(std::string request_id, int32_t n, std::shared_ptr<Outbox> outbox = nullptr,
                int32_t tag = 0);
  RequestStream(const RequestStream&) = delete;
  RequestStream& operator=(const RequestStream&) = delete;
  // A stream dropped before all its choices finished (a submission that failed) closes them.
  ~RequestStream();

  const std::string& request_id() const { return request_id_; }
  int32_t n() const { return n_; }
  const std::shared_ptr<Outbox>& outbox() const { return outbox_; }

  // Reading a stream with its own outbox (see Outbox::Next, TryNext and done).
  std::optional<RequestEvent> Next(std::chrono::milliseconds timeout);
  std::optional<RequestEvent> Next();
  std::optional<RequestEvent> TryNext();
  bool done() const { return outbox_->done(); }

  // Engine side: posts an event to the outbox; false when the outbox reports a backlog (Post).
  [[nodiscard]] bool Push(RequestEvent event);

 private:
  const std::string request_id_;
  const int32_t n_;
  const std::shared_ptr<Outbox> outbox_;
  const int32_t tag_;
  // Choices whose final event is not pushed; written by Push (engine thread) and read by the
  // destructor, which runs after the engine dropped its reference.
  int32_t choices_open_;
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
