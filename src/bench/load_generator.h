// The load generator: runs one load level against an OpenAI-compatible server and records every
// request. Closed loop: N users, each sends a request, waits for the whole answer, thinks for a
// uniform random time, repeats. Open loop: Poisson arrivals at a fixed rate, served by a bounded
// pool. A level issues requests for warmup + duration seconds, then waits for those in flight
// (each bounded by the client timeout), so it always ends by itself. RunLevel blocks its caller
// and uses its own threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/client.h"
#include "bench/workload.h"
#include "util/status.h"

namespace tinyserve::bench {

struct LoadLevel {
  int users = 1;            // Closed loop: concurrent users.
  double request_rate = 0;  // > 0 selects the open loop: mean arrivals per second.
  double duration_s = 30;   // Measured part of the level.
  double warmup_s = 0;      // Requests started before this are sent but not measured.
};

struct LoadOptions {
  ClientConfig client;
  double think_min_s = 0;  // Closed loop: think time after each answer, uniform in [min, max].
  double think_max_s = 0;
  uint64_t seed = 0;               // Fixes each user's sequence of samples and think times.
  int open_loop_concurrency = 64;  // Open loop: at most this many requests in flight.
  int64_t max_requests = 1000000;  // Per level, a hard bound on requests sent.
};

struct RequestRecord {
  int user = 0;     // Closed loop: user index; open loop: worker index.
  int64_t seq = 0;  // Closed loop: the user's n-th request; open loop: arrival number.
  int task_idx = 0;
  int sample_idx = 0;
  bool warmup = false;     // Started before the measured window.
  double scheduled_s = 0;  // Open loop arrival time (else = start_s); seconds since level start.
  double start_s = 0;
  double end_s = 0;
  double think_s = 0;      // Closed loop: think time drawn after this request.
  RequestOutcome outcome;  // Its text is cut to the first 200 bytes.
};

struct LevelResult {
  LoadLevel level;
  double window_start_s = 0;           // = warmup_s
  double window_end_s = 0;             // = warmup_s + duration_s: no request starts after it.
  double wall_s = 0;                   // Level start to the end of the last request.
  std::vector<RequestRecord> records;  // Sorted by start time.
  int max_in_flight = 0;               // Over the whole level.
  double mean_in_flight = 0;           // Time-weighted over the measured window.
};

struct LevelProgress {
  double elapsed_s = 0;
  int64_t completed = 0;
  int64_t failed = 0;
  int in_flight = 0;
};
using ProgressFn = std::function<void(const LevelProgress&)>;

// Runs one level. `progress` (may be empty) is called about once a second from the calling
// thread. Fails only on bad options (e.g. a bad base URL), never because requests fail.
[[nodiscard]] StatusOr<LevelResult> RunLevel(const Workload& workload, const LoadOptions& options,
                                             const LoadLevel& level, const ProgressFn& progress);

}  // namespace tinyserve::bench
