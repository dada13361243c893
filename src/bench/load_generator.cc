#include "bench/load_generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <thread>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace tinyserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Counts requests in flight and integrates the count over the measured window.
class InFlightMeter {
 public:
  InFlightMeter(double window_start, double window_end)
      : window_start_(window_start), window_end_(window_end) {}

  int Change(double t, int delta) {
    MutexLock lock(&mu_);
    Advance(t);
    count_ += delta;
    max_ = std::max(max_, count_);
    return count_;
  }
  int count() {
    MutexLock lock(&mu_);
    return count_;
  }
  int max() {
    MutexLock lock(&mu_);
    return max_;
  }
  double MeanOverWindow(double t_end) {
    MutexLock lock(&mu_);
    Advance(t_end);
    return integral_ / (window_end_ - window_start_);
  }

 private:
  void Advance(double t) REQUIRES(mu_) {
    double lo = std::max(last_t_, window_start_);
    double hi = std::min(t, window_end_);
    if (hi > lo) integral_ += count_ * (hi - lo);
    last_t_ = std::max(last_t_, t);
  }

  Mutex mu_;
  const double window_start_;
  const double window_end_;
  int count_ GUARDED_BY(mu_) = 0;
  int max_ GUARDED_BY(mu_) = 0;
  double last_t_ GUARDED_BY(mu_) = 0;
  double integral_ GUARDED_BY(mu_) = 0;
};

// Shared by the threads of one level.
struct LevelContext {
  const Workload& workload;
  const LoadOptions& options;
  const LoadLevel& level;
  Clock::time_point t0;
  double issue_end_s;
  InFlightMeter meter;
  std::atomic<int64_t> started{0};
  std::atomic<int64_t> completed{0};
  std::atomic<int64_t> failed{0};

  double Now() const { return std::chrono::duration<double>(Clock::now() - t0).count(); }
  void SleepUntil(double t) const {
    std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<int64_t>(t * 1e6)));
  }
  // Claims one request slot; false once the level's bound is reached.
  bool Claim() { return started.fetch_add(1) < options.max_requests; }
};

RequestRecord Execute(LevelContext& ctx, OpenAIClient& client, SampleRef ref) {
  RequestRecord r;
  r.task_idx = ref.task_idx;
  r.sample_idx = ref.sample_idx;
  const TaskType& task = ctx.workload.tasks[ref.task_idx];
  r.start_s = ctx.Now();
  r.scheduled_s = r.start_s;
  r.warmup = r.start_s < ctx.level.warmup_s;
  ctx.meter.Change(r.start_s, +1);
  r.outcome = client.Send(task, task.samples[ref.sample_idx]);
  r.end_s = ctx.Now();
  ctx.meter.Change(r.end_s, -1);
  if (r.outcome.text.size() > 200) r.outcome.text.resize(200);
  (r.outcome.ok() ? ctx.completed : ctx.failed).fetch_add(1);
  return r;
}

void ClosedLoopUser(LevelContext& ctx, OpenAIClient& client, int user,
                    std::vector<RequestRecord>* out) {
  WorkloadSampler sampler(ctx.workload, DeriveSeed(ctx.options.seed, 2 * user));
  Rng think_rng(DeriveSeed(ctx.options.seed, 2 * user + 1));
  for (int64_t seq = 0;; ++seq) {
    if (ctx.Now() >= ctx.issue_end_s || !ctx.Claim()) return;
    SampleRef ref = sampler.Next();
    // Drawn before the request so the sequence does not depend on timing.
    double think = ctx.options.think_max_s > 0
                       ? think_rng.Uniform(ctx.options.think_min_s, ctx.options.think_max_s)
                       : 0.0;
    RequestRecord r = Execute(ctx, client, ref);
    r.user = user;
    r.seq = seq;
    r.think_s = think;
    out->push_back(std::move(r));
    if (think > 0) ctx.SleepUntil(std::min(ctx.Now() + think, ctx.issue_end_s));
  }
}

// Arrivals queued by the dispatcher for the open loop's workers.
struct ArrivalQueue {
  Mutex mu;
  CondVar cv;
  std::deque<std::pair<double, SampleRef>> items GUARDED_BY(mu);  // (arrival time, sample)
  int64_t next_seq GUARDED_BY(mu) = 0;
  bool closed GUARDED_BY(mu) = false;
};

void OpenLoopDispatcher(LevelContext& ctx, ArrivalQueue* q) {
  WorkloadSampler sampler(ctx.workload, DeriveSeed(ctx.options.seed, 0x5eed0000));
  Rng arrivals(DeriveSeed(ctx.options.seed, 0x5eed0001));
  double t = 0;
  for (;;) {
    t += arrivals.Exponential(ctx.level.request_rate);
    if (t >= ctx.issue_end_s || !ctx.Claim()) break;
    SampleRef ref = sampler.Next();
    ctx.SleepUntil(t);
    {
      MutexLock lock(&q->mu);
      q->items.emplace_back(t, ref);
    }
    q->cv.NotifyOne();
  }
  {
    MutexLock lock(&q->mu);
    q->closed = true;
  }
  q->cv.NotifyAll();
}

void OpenLoopWorker(LevelContext& ctx, OpenAIClient& client, int worker, ArrivalQueue* q,
                    std::vector<RequestRecord>* out) {
  for (;;) {
    std::pair<double, SampleRef> item;
    int64_t seq = 0;
    {
      MutexLock lock(&q->mu);
      while (!q->closed && q->items.empty()) q->cv.Wait(&q->mu);
      if (q->items.empty()) return;
      item = q->items.front();
      q->items.pop_front();
      seq = q->next_seq++;
    }
    RequestRecord r;
    if (double now = ctx.Now(); now - item.first >= ctx.options.client.timeout_s) {
      // It waited in the queue for a free worker for the whole timeout: a client-side overload,
      // failed without being sent so the level still ends on time.
      r.task_idx = item.second.task_idx;
      r.sample_idx = item.second.sample_idx;
      r.start_s = r.end_s = now;
      r.outcome.cause = kCauseTimeout;
      r.outcome.detail = "queued in the client for the whole timeout";
      ctx.failed.fetch_add(1);
    } else {
      r = Execute(ctx, client, item.second);
    }
    r.user = worker;
    r.seq = seq;
    r.scheduled_s = item.first;
    r.warmup = r.scheduled_s < ctx.level.warmup_s;
    out->push_back(std::move(r));
  }
}

}  // namespace

StatusOr<LevelResult> RunLevel(const Workload& workload, const LoadOptions& options,
                               const LoadLevel& level, const ProgressFn& progress) {
  if (level.duration_s <= 0 || level.warmup_s < 0) {
    return InvalidArgumentError("level duration must be > 0 and warmup >= 0");
  }
  const bool open_loop = level.request_rate > 0;
  if (!open_loop && level.users < 1) return InvalidArgumentError("users must be >= 1");
  if (options.think_min_s < 0 || options.think_max_s < options.think_min_s) {
    return InvalidArgumentError("think time must satisfy 0 <= min <= max");
  }
  const int num_threads = open_loop ? std::max(1, options.open_loop_concurrency) : level.users;
  std::vector<std::unique_ptr<OpenAIClient>> clients;
  clients.reserve(num_threads);
  for (int i = 0; i < num_threads; ++i) {
    TS_ASSIGN_OR_RETURN(std::unique_ptr<OpenAIClient> c, OpenAIClient::Create(options.client));
    clients.push_back(std::move(c));
  }

  const double issue_end = level.warmup_s + level.duration_s;
  LevelContext ctx{workload,     options,   level,
                   Clock::now(), issue_end, InFlightMeter(level.warmup_s, issue_end)};
  std::vector<std::vector<RequestRecord>> per_thread(num_threads);
  std::vector<std::thread> threads;
  threads.reserve(num_threads);
  ArrivalQueue queue;
  for (int i = 0; i < num_threads; ++i) {
    threads.emplace_back([&, i] {
      if (open_loop) {
        OpenLoopWorker(ctx, *clients[i], i, &queue, &per_thread[i]);
      } else {
        ClosedLoopUser(ctx, *clients[i], i, &per_thread[i]);
      }
    });
  }
  std::thread dispatcher;
  if (open_loop) dispatcher = std::thread([&] { OpenLoopDispatcher(ctx, &queue); });

  // Report progress until every thread has returned.
  std::atomic<int> running{num_threads};
  std::vector<std::thread> joiners;
  // `running` is atomic; done_mu only orders its decrement before the wake-up, so a wait that
  // starts after the last decrement cannot miss it.
  Mutex done_mu;
  CondVar done_cv;
  joiners.reserve(threads.size());
  for (auto& t : threads) {
    joiners.emplace_back([&t, &running, &done_mu, &done_cv] {
      t.join();
      {
        MutexLock lock(&done_mu);
        running.fetch_sub(1);
      }
      done_cv.NotifyAll();
    });
  }
  for (;;) {
    {
      MutexLock lock(&done_mu);
      if (running.load() == 0) break;
      done_cv.WaitUntil(&done_mu, Clock::now() + std::chrono::seconds(1));
      if (running.load() == 0) break;
    }
    if (progress) {
      progress({ctx.Now(), ctx.completed.load(), ctx.failed.load(), ctx.meter.count()});
    }
  }
  for (auto& j : joiners) j.join();
  if (dispatcher.joinable()) dispatcher.join();

  LevelResult result;
  result.level = level;
  result.window_start_s = level.warmup_s;
  result.window_end_s = issue_end;
  result.wall_s = ctx.Now();
  result.max_in_flight = ctx.meter.max();
  result.mean_in_flight = ctx.meter.MeanOverWindow(result.wall_s);
  for (auto& v : per_thread) {
    for (auto& r : v) result.records.push_back(std::move(r));
  }
  std::sort(result.records.begin(), result.records.end(),
            [](const RequestRecord& a, const RequestRecord& b) { return a.start_s < b.start_s; });
  if (progress) {
    progress({result.wall_s, ctx.completed.load(), ctx.failed.load(), 0});
  }
  return result;
}

}  // namespace tinyserve::bench
