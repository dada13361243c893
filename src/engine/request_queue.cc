#include "engine/request_queue.h"

#include <utility>

namespace tinyserve {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kError:
      return "error";
  }
  return "";
}

std::optional<Outbox::Item> Outbox::Next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(&mu_);
  while (items_.empty() && choices_open_ > 0) {
    if (!cv_.WaitUntil(&mu_, deadline)) break;
  }
  return PopLocked();
}

std::optional<Outbox::Item> Outbox::Next() {
  MutexLock lock(&mu_);
  while (items_.empty() && choices_open_ > 0) cv_.Wait(&mu_);
  return PopLocked();
}

std::optional<Outbox::Item> Outbox::TryNext() {
  MutexLock lock(&mu_);
  return PopLocked();
}

std::optional<Outbox::Item> Outbox::PopLocked() {
  if (items_.empty()) return std::nullopt;
  Item item = std::move(items_.front());
  items_.pop_front();
  return item;
}

bool Outbox::done() const {
  MutexLock lock(&mu_);
  return choices_open_ == 0 && items_.empty();
}

void Outbox::Open(int32_t num_choices) {
  MutexLock lock(&mu_);
  choices_open_ += num_choices;
}

void Outbox::Close(int32_t num_choices) {
  {
    MutexLock lock(&mu_);
    choices_open_ -= num_choices;
  }
  cv_.NotifyAll();
}

bool Outbox::Post(int32_t tag, RequestEvent event) {
  bool within = true;
  {
    MutexLock lock(&mu_);
    if (event.finish_reason != FinishReason::kNone) --choices_open_;
    items_.push_back(Item{tag, std::move(event)});
    within = max_pending_ == 0 || static_cast<int64_t>(items_.size()) <= max_pending_;
  }
  cv_.NotifyAll();
  return within;
}

RequestStream::RequestStream(std::string request_id, int32_t n, std::shared_ptr<Outbox> outbox,
                             int32_t tag)
    : request_id_(std::move(request_id)),
      n_(n),
      outbox_(outbox ? std::move(outbox) : std::make_shared<Outbox>()),
      tag_(tag),
      choices_open_(n) {
  outbox_->Open(n);
}

RequestStream::~RequestStream() {
  if (choices_open_ > 0) outbox_->Close(choices_open_);
}

std::optional<RequestEvent> RequestStream::Next(std::chrono::milliseconds timeout) {
  auto item = outbox_->Next(timeout);
  if (!item) return std::nullopt;
  return std::move(item->event);
}

std::optional<RequestEvent> RequestStream::Next() {
  auto item = outbox_->Next();
  if (!item) return std::nullopt;
  return std::move(item->event);
}

std::optional<RequestEvent> RequestStream::TryNext() {
  auto item = outbox_->TryNext();
  if (!item) return std::nullopt;
  return std::move(item->event);
}

bool RequestStream::Push(RequestEvent event) {
  if (event.finish_reason != FinishReason::kNone) --choices_open_;
  return outbox_->Post(tag_, std::move(event));
}

RequestQueue::RequestQueue(int32_t max_queue_len) : max_queue_len_(max_queue_len) {}

Status RequestQueue::Push(PendingRequest request) {
  {
    MutexLock lock(&mu_);
    if (stopped_) return UnavailableError("the engine is shutting down");
    if (live_ids_.contains(request.request.request_id)) {
      return InvalidArgumentError("request id '{}' is already in use", request.request.request_id);
    }
    const int64_t queued = static_cast<int64_t>(requests_.size()) + engine_waiting_;
    if (queued >= max_queue_len_) {
      return UnavailableError("the request queue is full ({} requests waiting); retry later",
                              queued);
    }
    live_ids_.insert(request.request.request_id);
    requests_.push_back(std::move(request));
  }
  cv_.NotifyAll();
  return OkStatus();
}

void RequestQueue::Abort(std::string request_id) {
  {
    MutexLock lock(&mu_);
    aborts_.push_back(std::move(request_id));
  }
  cv_.NotifyAll();
}

void RequestQueue::Take(bool block, std::vector<PendingRequest>* requests,
                        std::vector<std::string>* aborts) {
  MutexLock lock(&mu_);
  while (block && !stopped_ && requests_.empty() && aborts_.empty()) cv_.Wait(&mu_);
  for (auto& r : requests_) requests->push_back(std::move(r));
  requests_.clear();
  for (auto& a : aborts_) aborts->push_back(std::move(a));
  aborts_.clear();
  // Requests just taken count as waiting until the engine publishes its own count.
  engine_waiting_ += static_cast<int64_t>(requests->size());
}

void RequestQueue::Release(const std::string& request_id) {
  MutexLock lock(&mu_);
  live_ids_.erase(request_id);
}

void RequestQueue::SetEngineWaiting(int64_t num_waiting) {
  MutexLock lock(&mu_);
  engine_waiting_ = num_waiting;
}

void RequestQueue::Stop() {
  {
    MutexLock lock(&mu_);
    stopped_ = true;
  }
  cv_.NotifyAll();
}

bool RequestQueue::stopped() const {
  MutexLock lock(&mu_);
  return stopped_;
}

}  // namespace tinyserve
