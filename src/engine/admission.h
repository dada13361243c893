// Deadline-aware admission: predicts when a new request would start and finish from the
// measured step time (engine/step_time_model.h) and the work already admitted and queued, by
// replaying the scheduler's policy (decodes first, prefill chunks in service order, at most
// max_num_seqs sequences) over that work. A request that cannot finish before its deadline (or
// wait longer than its queue-delay limit) is refused at once; queued work that can no longer
// make its deadline is shed before it runs; queued work is ordered by per-client fair share
// (engine/fair_share.h), and a refusal caused by the client's own backlog says so (429).
// Also the step-time budget: how many prefill tokens a step with running decodes may take.
// Thread-safe: HTTP threads Admit/Register/Cancel, the engine thread reports steps and asks
// for sheds and limits; one mutex guards everything.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/fair_share.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "engine/step_time_model.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace tinyserve {

struct AdmissionOptions {
  int32_t max_num_seqs = 64;  // the scheduler's limits, replayed by the predictor
  int32_t max_num_batched_tokens = 1024;
  // Steps with running decodes take at most this long (prefill chunks shrink to fit); 0: no
  // time budget, only max_num_batched_tokens.
  double max_step_s = 0.2;
  // A request is admitted only when its predicted finish, and that of every request admitted
  // before it, leaves this fraction of the request's time unused: predictions are estimates
  // and the clients' clocks run from send. The slack in use starts here and adapts: it grows
  // by slack_step each time an admitted request finishes late or with less than 2% of its
  // time left, up to max_deadline_slack, and shrinks back by a fifth of a step per request
  // finished with room to spare. (Shedding queued work is the predictor working, not a miss.)
  double deadline_slack = 0.1;
  double max_deadline_slack = 0.5;
  double slack_step = 0.05;
  // The smallest prefill chunk under the time budget, so prompts progress even when decodes
  // alone fill a step.
  int32_t min_prefill_chunk = 32;
  // Prompt blocks (kPrefixBlockTokens each) remembered as computed, most recent first; a new
  // prompt's leading blocks among them are predicted as prefix-cache hits. 0: no prefix cache.
  int64_t prefix_cache_blocks = 0;
};

// The granularity of WorkRequest::prompt_blocks.
inline constexpr int32_t kPrefixBlockTokens = 16;

// Chained hashes of the full kPrefixBlockTokens-token blocks of `tokens` (each covers the whole
// prefix up to its end, and `salt`: requests with different cache salts share nothing).
std::vector<uint64_t> PromptBlockHashes(std::span<const int32_t> tokens, std::string_view salt);

// The work of one admission unit: one API call, i.e. every prompt times n choices.
struct WorkRequest {
  using Clock = std::chrono::steady_clock;
  std::string client;                // API key or `user`; "" = anonymous
  std::vector<int32_t> prompt_lens;  // tokens, one entry per prompt
  int32_t n = 1;                     // choices per prompt (they share the prompt's prefill)
  // PromptBlockHashes of the prompt when there is one prompt (else empty: predicted uncached).
  std::vector<uint64_t> prompt_blocks;
  int32_t max_tokens = 1;  // per choice
  int32_t priority = 0;    // lower first, as the scheduler
  Clock::time_point deadline = Clock::time_point::max();
  double max_queue_delay_s = 0;  // > 0: refuse when the predicted wait is longer
};

// The work of one engine request (its prompt, n choices, max_tokens or what max_model_len
// leaves), anonymous and without a deadline.
WorkRequest WorkOfRequest(const GenerateRequest& request, int32_t max_model_len);

enum class AdmissionVerdict { kAdmit, kRefuseDeadline, kRefuseQueueDelay, kRefuseClientShare };
// "admit", "deadline", "queue_delay", "client_share".
std::string_view AdmissionVerdictName(AdmissionVerdict verdict);

struct AdmissionDecision {
  AdmissionVerdict verdict = AdmissionVerdict::kAdmit;
  int64_t ticket = 0;             // admitted: names the work until every choice ends
  double predicted_wait_s = 0;    // until its first step (infinity: beyond the horizon)
  double predicted_finish_s = 0;  // until its last token
  double retry_after_s = 0;       // refused: when the queue ahead should have drained
  // Refused by an idle engine on estimates older than kStaleEstimateS: the caller should start
  // a calibration batch (engine/engine_warmup.h) so that the retry is judged on fresh ones.
  bool recalibrate = false;
  bool admitted() const { return verdict == AdmissionVerdict::kAdmit; }
};

struct AdmissionStats {
  int64_t admitted = 0;
  int64_t refused_deadline = 0;
  int64_t refused_queue_delay = 0;
  int64_t refused_client_share = 0;
  int64_t shed = 0;             // admitted, then dropped before running
  double predicted_wait_s = 0;  // the latest prediction for an arriving request
  double deadline_slack = 0;    // the adaptive slack in use (AdmissionOptions)
  int64_t late_finishes = 0;    // admitted requests that ended late or within 2% of their time
  double budget_overrun = 0;    // measured / predicted time of budgeted steps (moving)
  // Over admitted requests that started: predicted and measured waits, for comparison.
  double predicted_wait_sum_s = 0;
  double actual_wait_sum_s = 0;
  int64_t num_waits = 0;
  double prefill_tokens_per_s = 0;  // estimates (0 until measured)
  double decode_step_s = 0;         // a decode-only step at the current batch
  int32_t num_decodes = 0;          // in the latest step
  int32_t prefill_token_limit = 0;  // at the current batch; 0 = no time budget
  int32_t num_clients = 0;          // with admitted work
  int64_t num_tickets = 0;          // admitted work items not yet finished
  // Steps with decodes and a prefill chunk (the chunk sized to max_step_s), and those of them
  // that took longer than max_step_s: how well the step-time model sizes chunks.
  int64_t budgeted_steps = 0, budgeted_steps_over = 0;
};

class AdmissionController {
 public:
  using Clock = std::chrono::steady_clock;

  explicit AdmissionController(const AdmissionOptions& options);
  AdmissionController(const AdmissionController&) = delete;
  AdmissionController& operator=(const AdmissionController&) = delete;

  // Any thread. Predicts and decides; an admitted request holds its ticket until each of its
  // prompt_lens.size() * n choices has finished (OnChoiceFinished) or Cancel.
  AdmissionDecision Admit(const WorkRequest& work, Clock::time_point now);
  // Any thread. Records work without judging it (requests submitted without a ticket).
  int64_t Register(const WorkRequest& work, Clock::time_point now);
  // Any thread. Forgets a ticket whose requests were not (all) handed to the engine.
  void Cancel(int64_t ticket);
  // Any thread. The ticket's place in the waiting queue (the scheduler's arrival key): its
  // fair-share start tag in microseconds of engine time. nullopt once the ticket is gone
  // (shed or cancelled).
  std::optional<int64_t> OrderKey(int64_t ticket) const;

  // Engine thread: what one step did for the ticket's sequences (ProgressOf builds it).
  struct Progress {
    int64_t ticket = 0;
    int32_t prefill_tokens = 0;  // prompt tokens passed, those found in the prefix cache included
    int32_t sampled = 0;         // tokens drawn
  };
  // The progress of one scheduled sequence, before the step's OnStepComputed and before the
  // engine marks it scheduled_once. `first_choice`: it is choice 0 of its call, the one that
  // computes the shared prompt (its siblings then find it cached).
  static Progress ProgressOf(int64_t ticket, const ScheduledSequence& s, bool first_choice);
  void OnStep(const StepObservation& step, std::span<const Progress> progress,
              Clock::time_point now);
  // Engine thread: one choice ended after `generated` tokens at `now`; `natural` when by stop
  // or length (such endings teach the predictor how much of max_tokens requests use). The
  // last choice of an admitted ticket adapts the deadline slack.
  void OnChoiceFinished(int64_t ticket, int32_t generated, bool natural, Clock::time_point now);
  // Engine thread: tickets not yet started whose predicted finish passes their deadline. They
  // are dropped here and counted as shed; the engine ends their requests.
  std::vector<int64_t> TakeShed(Clock::time_point now);
  // Engine thread: prefill tokens a step with `num_decodes` decodes may take within
  // max_step_s (INT32_MAX when unlimited: no decodes, no budget, or no prefill measured yet).
  int32_t PrefillTokenLimit(int32_t num_decodes) const;

  AdmissionStats Stats() const;

 private:
  struct Group {
    int64_t ticket = 0;
    std::string client;
    int32_t priority = 0;
    double tag = 0;           // fair-share start tag (seconds of engine time)
    int32_t seqs = 0;         // choices still open
    double prefill_left = 0;  // prompt tokens not passed yet (cached or computed)
    int32_t max_tokens = 0;
    int64_t generated_open = 0;  // tokens drawn by the open choices
    Clock::time_point arrival{}, deadline{};
    double predicted_wait_s = -1;   // at admission; < 0 when registered
    double predicted_finish_s = 0;  // at admission, seconds after arrival
    bool started = false;
    std::vector<uint64_t> prompt_blocks;  // with a prefix cache, until its prompt is computed
  };
  struct Prediction {
    double start_s = std::numeric_limits<double>::infinity();
    double finish_s = std::numeric_limits<double>::infinity();
  };

  Group MakeGroup(const WorkRequest& work, Clock::time_point now) const REQUIRES(mu_);
  int64_t AddGroup(Group group) REQUIRES(mu_);
  // Groups in service order: started ones by ticket, then queued by (priority, tag, ticket).
  std::vector<const Group*> ServiceOrder(const Group* extra) const REQUIRES(mu_);
  // Replays the scheduler over `order` from now, each choice drawing upper_output_ratio_ of its
  // max_tokens; one prediction per group (seconds from now).
  std::vector<Prediction> Predict(const std::vector<const Group*>& order, double horizon_s) const
      REQUIRES(mu_);
  int32_t PrefillTokenLimitLocked(int32_t num_decodes) const REQUIRES(mu_);
  double WorkSeconds(const Group& g) const REQUIRES(mu_);
  // Seconds from `now` by which `g` must finish to keep the slack: its time left less the
  // slack's share of its whole time (infinite without a deadline).
  double FinishLimit(const Group& g, Clock::time_point now) const REQUIRES(mu_);
  void AdaptSlack(const Group& g, Clock::time_point now) REQUIRES(mu_);
  // Tokens each open choice of `g` still draws if choices use `output_ratio` of max_tokens.
  double DecodeLeft(const Group& g, double output_ratio) const REQUIRES(mu_);
  void ObserveOutputRatio(double ratio) REQUIRES(mu_);
  void Drop(std::unordered_map<int64_t, Group>::iterator it) REQUIRES(mu_);
  // Prompt tokens of `blocks` found at its start among the remembered blocks.
  int64_t CachedPrefixTokens(const std::vector<uint64_t>& blocks) REQUIRES(mu_);
  void RememberComputed(const std::vector<uint64_t>& blocks) REQUIRES(mu_);

  const AdmissionOptions options_;
  mutable Mutex mu_;
  StepTimeModel model_ GUARDED_BY(mu_);
  FairShare fair_ GUARDED_BY(mu_);
  std::unordered_map<int64_t, Group> groups_ GUARDED_BY(mu_);
  int64_t next_ticket_ GUARDED_BY(mu_) = 1;
  // generated / max_tokens of choices that ended by stop or length: the moving mean (how much
  // work queued requests bring) and the 90th percentile of the latest kRatioWindow (how long a
  // request may run: deadlines are judged on it, since a request that draws all its
  // max_tokens where the mean says 90% runs ~10% longer than predicted and misses).
  static constexpr size_t kRatioWindow = 200;
  double output_ratio_ GUARDED_BY(mu_) = 1.0;
  double upper_output_ratio_ GUARDED_BY(mu_) = 1.0;
  std::vector<float> ratios_ GUARDED_BY(mu_);  // ring of the latest kRatioWindow
  size_t next_ratio_ GUARDED_BY(mu_) = 0;
  double slack_ GUARDED_BY(mu_);  // AdmissionOptions::deadline_slack, adapted
  // Measured / predicted time of steps with decodes and a prefill chunk (moving).
  double budget_overrun_ GUARDED_BY(mu_) = 1.0;
  int32_t last_decodes_ GUARDED_BY(mu_) = 0;
  Clock::time_point last_step_ GUARDED_BY(mu_){};         // when the latest step was reported
  Clock::time_point last_calibration_ GUARDED_BY(mu_){};  // when one was last asked for
  AdmissionStats stats_ GUARDED_BY(mu_);                  // counters
  // Remembered prompt blocks: most recently computed or hit first (an LRU, as the cache's).
  std::list<uint64_t> computed_lru_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> computed_ GUARDED_BY(mu_);
};

}  // namespace tinyserve
