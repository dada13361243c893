#include "engine/admission.h"

#include <algorithm>
#include <cmath>

#include "util/logging.h"

namespace tinyserve {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Predictions stop this far ahead: nothing waits longer for an answer.
constexpr double kMaxHorizonS = 3600;
// Weight of one finished choice in the moving output/max_tokens ratio.
constexpr double kRatioAlpha = 0.05;
// A request that ends with less than this share of its time left counts as a miss for the
// slack (the client's clock started earlier, and its last bytes still have to travel). Half
// the slack was too eager: at 64 users every admission runs at the limit, a few percent of
// prediction error made near misses common, and the slack ratcheted to 0.47.
constexpr double kNearMiss = 0.02;
// Weight of one budgeted step in the moving measured/predicted step time.
constexpr double kOverrunAlpha = 0.1;

// An idle engine whose last step is older than this refuses on estimates that may be out of
// date (measured while another process held the cores): it asks for a calibration batch, so
// that refusing on old, pessimistic estimates cannot go on forever. (Admitting the client's
// request as a probe instead made that request time out whenever the machine was slow.)
constexpr double kStaleEstimateS = 10;

double SecondsBetween(std::chrono::steady_clock::time_point a,
                      std::chrono::steady_clock::time_point b) {
  if (b == std::chrono::steady_clock::time_point::max()) return kInf;
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

std::string_view AdmissionVerdictName(AdmissionVerdict verdict) {
  switch (verdict) {
    case AdmissionVerdict::kAdmit:
      return "admit";
    case AdmissionVerdict::kRefuseDeadline:
      return "deadline";
    case AdmissionVerdict::kRefuseQueueDelay:
      return "queue_delay";
    case AdmissionVerdict::kRefuseClientShare:
      return "client_share";
  }
  return "";
}

WorkRequest WorkOfRequest(const GenerateRequest& request, int32_t max_model_len) {
  WorkRequest w;
  const int32_t prompt_len = static_cast<int32_t>(request.prompt_token_ids.size());
  w.prompt_lens = {prompt_len};
  w.n = request.n;
  w.max_tokens = std::max(
      1, std::min(max_model_len - prompt_len, request.stop.max_tokens.value_or(max_model_len)));
  w.priority = request.priority;
  return w;
}

std::vector<uint64_t> PromptBlockHashes(std::span<const int32_t> tokens, std::string_view salt) {
  // FNV-1a over the salt, then each block folded into the previous block's hash.
  uint64_t h = 14695981039346656037ull;
  for (char c : salt) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  std::vector<uint64_t> out;
  out.reserve(tokens.size() / kPrefixBlockTokens);
  for (size_t b = 0; b + kPrefixBlockTokens <= tokens.size(); b += kPrefixBlockTokens) {
    for (size_t i = b; i < b + kPrefixBlockTokens; ++i)
      h = (h ^ static_cast<uint32_t>(tokens[i])) * 1099511628211ull;
    out.push_back(h);
  }
  return out;
}

AdmissionController::AdmissionController(const AdmissionOptions& options)
    : options_(options), slack_(options.deadline_slack) {}

AdmissionController::Group AdmissionController::MakeGroup(const WorkRequest& work,
                                                          Clock::time_point now) const {
  Group g;
  g.client = work.client;
  g.priority = work.priority;
  g.seqs = static_cast<int32_t>(work.prompt_lens.size()) * std::max(1, work.n);
  for (int32_t len : work.prompt_lens) g.prefill_left += std::max(0, len);
  if (options_.prefix_cache_blocks > 0) g.prompt_blocks = work.prompt_blocks;
  g.max_tokens = std::max(1, work.max_tokens);
  g.arrival = now;
  g.deadline = work.deadline;
  g.tag = fair_.PeekTag(g.client);
  return g;
}

double AdmissionController::DecodeLeft(const Group& g, double output_ratio) const {
  const double expected = std::max(1.0, std::ceil(g.max_tokens * output_ratio));
  const double done = g.seqs > 0 ? double(g.generated_open) / g.seqs : 0;
  return std::max(1.0, expected - done);
}

double AdmissionController::WorkSeconds(const Group& g) const {
  if (!model_.ready()) return 1e-3 * g.prefill_left + 4e-3 * g.seqs * DecodeLeft(g, output_ratio_);
  const int32_t batch = std::max(1, last_decodes_);
  const double per_decode = model_.StepSeconds(batch, 0) / batch;
  return model_.StepSeconds(0, static_cast<int32_t>(g.prefill_left)) +
         g.seqs * DecodeLeft(g, output_ratio_) * per_decode;
}

double AdmissionController::FinishLimit(const Group& g, Clock::time_point now) const {
  const double left = SecondsBetween(now, g.deadline);
  if (!std::isfinite(left)) return kInf;
  return left - slack_ * SecondsBetween(g.arrival, g.deadline);
}

// Additive increase on a near miss, slow decrease otherwise: one late request costs a client
// its answer, a slack too wide only some admissions, and the machine's speed can swing by 2x
// within a minute (other processes, thermal limits).
void AdmissionController::AdaptSlack(const Group& g, Clock::time_point now) {
  const double whole = SecondsBetween(g.arrival, g.deadline);
  if (!std::isfinite(whole) || g.predicted_wait_s < 0) return;  // no deadline, or registered
  if (SecondsBetween(now, g.deadline) < kNearMiss * whole) {
    ++stats_.late_finishes;
    slack_ = std::min(options_.max_deadline_slack, slack_ + options_.slack_step);
  } else {
    slack_ = std::max(options_.deadline_slack, slack_ - 0.2 * options_.slack_step);
  }
}

void AdmissionController::ObserveOutputRatio(double ratio) {
  output_ratio_ += kRatioAlpha * (ratio - output_ratio_);
  if (ratios_.size() < kRatioWindow) {
    ratios_.push_back(static_cast<float>(ratio));
  } else {
    ratios_[next_ratio_] = static_cast<float>(ratio);
    next_ratio_ = (next_ratio_ + 1) % kRatioWindow;
  }
  std::vector<float> sorted = ratios_;
  const size_t at = sorted.size() * 9 / 10;
  std::nth_element(sorted.begin(), sorted.begin() + at, sorted.end());
  upper_output_ratio_ = sorted[at];
}

int64_t AdmissionController::CachedPrefixTokens(const std::vector<uint64_t>& blocks) {
  int64_t hits = 0;
  for (uint64_t b : blocks) {
    auto it = computed_.find(b);
    if (it == computed_.end()) break;
    computed_lru_.splice(computed_lru_.begin(), computed_lru_, it->second);
    ++hits;
  }
  return hits * kPrefixBlockTokens;
}

// Called when a prompt has been computed (not when admitted: a twin admitted while the first
// copy is still computing must not be predicted cached).
void AdmissionController::RememberComputed(const std::vector<uint64_t>& blocks) {
  for (uint64_t b : blocks) {
    if (auto it = computed_.find(b); it != computed_.end()) {
      computed_lru_.splice(computed_lru_.begin(), computed_lru_, it->second);
      continue;
    }
    computed_lru_.push_front(b);
    computed_[b] = computed_lru_.begin();
  }
  while (static_cast<int64_t>(computed_lru_.size()) > options_.prefix_cache_blocks) {
    computed_.erase(computed_lru_.back());
    computed_lru_.pop_back();
  }
}

int64_t AdmissionController::AddGroup(Group group) {
  group.ticket = next_ticket_++;
  fair_.Commit(group.client, group.tag, WorkSeconds(group));
  const int64_t ticket = group.ticket;
  groups_.emplace(ticket, std::move(group));
  return ticket;
}

void AdmissionController::Drop(std::unordered_map<int64_t, Group>::iterator it) {
  fair_.OnDone(it->second.client);
  groups_.erase(it);
}

std::vector<const AdmissionController::Group*> AdmissionController::ServiceOrder(
    const Group* extra) const {
  std::vector<const Group*> order;
  order.reserve(groups_.size() + 1);
  for (const auto& [ticket, g] : groups_) order.push_back(&g);
  if (extra != nullptr) order.push_back(extra);
  std::sort(order.begin(), order.end(), [](const Group* a, const Group* b) {
    if (a->started != b->started) return a->started;
    if (a->started) return a->ticket < b->ticket;
    if (a->priority != b->priority) return a->priority < b->priority;
    if (a->tag != b->tag) return a->tag < b->tag;
    // A new group (ticket 0) is the latest arrival.
    return (a->ticket == 0 ? INT64_MAX : a->ticket) < (b->ticket == 0 ? INT64_MAX : b->ticket);
  });
  return order;
}

// The scheduler's policy over whole groups: each step runs one token of every decoding
// sequence, then a prefill chunk (the token budget left, capped by the step-time budget) taken
// from the prompts in service order; a queued group joins the batch when its sequences fit in
// max_num_seqs. Between events (a prompt done, a group done) steps repeat unchanged, so the
// replay jumps from event to event: O(groups^2) however long the prediction.
std::vector<AdmissionController::Prediction> AdmissionController::Predict(
    const std::vector<const Group*>& order, double horizon_s) const {
  struct Sim {
    int32_t seats;
    double prefill_left, decode_left;
    bool running, done;
  };
  const size_t n = order.size();
  std::vector<Sim> sim(n);
  std::vector<Prediction> out(n);
  int32_t seats_used = 0;
  for (size_t i = 0; i < n; ++i) {
    const Group& g = *order[i];
    sim[i] = {std::max(1, g.seqs), g.prefill_left, DecodeLeft(g, upper_output_ratio_), g.started,
              false};
    if (g.started) {
      seats_used += sim[i].seats;
      out[i].start_s = 0;
    }
  }
  double t = 0;
  for (int iteration = 0; iteration < 8 * static_cast<int>(n) + 8 && t <= horizon_s; ++iteration) {
    for (size_t i = 0; i < n; ++i) {  // queued groups join in order while seats last
      if (sim[i].done || sim[i].running) continue;
      if (seats_used > 0 && seats_used + sim[i].seats > options_.max_num_seqs) break;
      sim[i].running = true;
      seats_used += sim[i].seats;
    }
    int32_t decodes = 0;
    double min_decode = kInf;
    std::vector<size_t> prefill;
    for (size_t i = 0; i < n; ++i) {
      if (!sim[i].running || sim[i].done) continue;
      if (sim[i].prefill_left > 0) {
        prefill.push_back(i);
      } else {
        decodes += sim[i].seats;
        min_decode = std::min(min_decode, std::ceil(sim[i].decode_left));
      }
    }
    if (decodes == 0 && prefill.empty()) break;
    double chunk = 0;
    double steps = min_decode;  // steps until the next event
    double head_tokens = 0;     // per step from the first prompt alone (jump branch)
    double spread_tokens = 0;   // one step spread over several prompts
    if (!prefill.empty()) {
      chunk = std::max(
          1, std::min(options_.max_num_batched_tokens - decodes, PrefillTokenLimitLocked(decodes)));
      const double head_left = sim[prefill[0]].prefill_left;
      if (head_left > chunk) {
        head_tokens = chunk;
        steps = std::min(steps, std::floor(head_left / chunk));
      } else {
        steps = 1;
        for (size_t i : prefill) spread_tokens += sim[i].prefill_left;
        spread_tokens = std::min<double>(spread_tokens, chunk);
      }
    }
    const int32_t step_prefill = static_cast<int32_t>(head_tokens + spread_tokens);
    const double step_s = model_.StepSeconds(decodes, step_prefill);
    // Prompts that get tokens in these steps start now.
    if (head_tokens > 0) {
      out[prefill[0]].start_s = std::min(out[prefill[0]].start_s, t);
      sim[prefill[0]].prefill_left -= steps * head_tokens;
    } else {
      double left = spread_tokens;
      for (size_t i : prefill) {
        if (left <= 0) break;
        const double take = std::min(left, sim[i].prefill_left);
        out[i].start_s = std::min(out[i].start_s, t);
        sim[i].prefill_left -= take;
        left -= take;
      }
    }
    t += steps * step_s;
    for (size_t i = 0; i < n; ++i) {
      if (!sim[i].running || sim[i].done || sim[i].prefill_left > 0) continue;
      const bool was_decoding = std::find(prefill.begin(), prefill.end(), i) == prefill.end();
      if (!was_decoding) continue;  // prompt just completed: decodes from the next step
      sim[i].decode_left -= steps;
      if (sim[i].decode_left <= 0) {
        sim[i].done = true;
        seats_used -= sim[i].seats;
        out[i].finish_s = t;
      }
    }
  }
  return out;
}

int32_t AdmissionController::PrefillTokenLimitLocked(int32_t num_decodes) const {
  if (num_decodes == 0 || options_.max_step_s <= 0 || !model_.seen_prefill()) return INT32_MAX;
  return std::max(options_.min_prefill_chunk,
                  model_.PrefillTokensWithin(options_.max_step_s / std::max(1.0, budget_overrun_),
                                             num_decodes));
}

int32_t AdmissionController::PrefillTokenLimit(int32_t num_decodes) const {
  MutexLock lock(&mu_);
  return PrefillTokenLimitLocked(num_decodes);
}

AdmissionDecision AdmissionController::Admit(const WorkRequest& work, Clock::time_point now) {
  MutexLock lock(&mu_);
  Group candidate = MakeGroup(work, now);
  if (!candidate.prompt_blocks.empty()) {
    // The last prompt token is computed even on a full hit (its logits are needed).
    candidate.prefill_left =
        std::max(1.0, candidate.prefill_left - double(CachedPrefixTokens(candidate.prompt_blocks)));
  }
  AdmissionDecision d;
  const double time_left = SecondsBetween(now, work.deadline);
  if (!model_.ready()) {
    // Nothing measured yet: only an idle queue can promise anything.
    const bool queued = std::any_of(groups_.begin(), groups_.end(),
                                    [](const auto& kv) { return !kv.second.started; });
    if (queued) {
      d.verdict = AdmissionVerdict::kRefuseDeadline;
      d.predicted_wait_s = d.predicted_finish_s = kInf;
      d.retry_after_s = 1;
      ++stats_.refused_deadline;
      return d;
    }
  } else {
    const double horizon = std::min(kMaxHorizonS, std::max(time_left, 1.0) * 2);
    const std::vector<const Group*> order = ServiceOrder(&candidate);
    const std::vector<Prediction> with = Predict(order, horizon);
    const size_t self = std::find(order.begin(), order.end(), &candidate) - order.begin();
    d.predicted_wait_s = with[self].start_s;
    d.predicted_finish_s = with[self].finish_s;
    stats_.predicted_wait_s = d.predicted_wait_s;
    const double limit = FinishLimit(candidate, now);
    auto misses = [&](const Prediction& p) {
      if (p.finish_s > limit) return AdmissionVerdict::kRefuseDeadline;
      if (work.max_queue_delay_s > 0 && p.start_s > work.max_queue_delay_s)
        return AdmissionVerdict::kRefuseQueueDelay;
      return AdmissionVerdict::kAdmit;
    };
    d.verdict = misses(with[self]);
    if (d.verdict == AdmissionVerdict::kAdmit) {
      // Work served before this request must still finish within its own slack with it in the
      // batch; if this request delays work already predicted past it, that work needs the
      // seats more (admitting anyway is how every running request ends up timing out). Queued
      // work it overtakes by fair share yields (and is shed if it can no longer make it).
      const std::vector<const Group*> base = ServiceOrder(nullptr);
      const std::vector<Prediction> without = Predict(base, horizon);
      std::unordered_map<int64_t, double> finish_without;
      for (size_t i = 0; i < base.size(); ++i)
        finish_without[base[i]->ticket] = without[i].finish_s;
      for (size_t i = 0; i < self; ++i) {
        const double finish = with[i].finish_s;
        if (finish > FinishLimit(*order[i], now) && finish > finish_without[order[i]->ticket]) {
          d.verdict = AdmissionVerdict::kRefuseDeadline;
          break;
        }
      }
    } else if (!candidate.client.empty()) {
      // Would it fit without this client's own queued work ahead? Then its share is the cause.
      // (Anonymous requests are everyone without a `user` or key, not one client: 503.)
      std::vector<const Group*> others;
      for (const Group* g : order)
        if (g == &candidate || g->started || g->client != candidate.client) others.push_back(g);
      if (others.size() < order.size()) {
        const std::vector<Prediction> alone = Predict(others, horizon);
        const size_t at = std::find(others.begin(), others.end(), &candidate) - others.begin();
        if (misses(alone[at]) == AdmissionVerdict::kAdmit)
          d.verdict = AdmissionVerdict::kRefuseClientShare;
      }
    }
    if (!d.admitted())
      d.retry_after_s =
          std::clamp(std::isfinite(d.predicted_wait_s) ? d.predicted_wait_s : horizon, 1.0, 600.0);
    if (!d.admitted() && groups_.empty() && SecondsBetween(last_step_, now) > kStaleEstimateS &&
        SecondsBetween(last_calibration_, now) > kStaleEstimateS) {
      d.recalibrate = true;  // see kStaleEstimateS
      d.retry_after_s = 2;   // a calibration batch takes a second or two
      last_calibration_ = now;
      model_.Restart();
    }
  }
  const auto& c = model_.coefficients();
  TS_LOG_DEBUG(
      "admission: {} (prompt {:.0f}, max_tokens {}, judged at {:.0f}) wait {:.2f} s finish {:.2f} "
      "s of {:.2f} s (slack {:.2f}); {} tickets; step {:.4f} + {:.4f}/decode + {:.6f}/token",
      AdmissionVerdictName(d.verdict), candidate.prefill_left, candidate.max_tokens,
      DecodeLeft(candidate, upper_output_ratio_), d.predicted_wait_s, d.predicted_finish_s,
      time_left, slack_, groups_.size(), c[0], c[1], c[2]);
  switch (d.verdict) {
    case AdmissionVerdict::kAdmit:
      ++stats_.admitted;
      candidate.predicted_wait_s = std::isfinite(d.predicted_wait_s) ? d.predicted_wait_s : 0;
      candidate.predicted_finish_s = d.predicted_finish_s;
      d.ticket = AddGroup(std::move(candidate));
      break;
    case AdmissionVerdict::kRefuseDeadline:
      ++stats_.refused_deadline;
      break;
    case AdmissionVerdict::kRefuseQueueDelay:
      ++stats_.refused_queue_delay;
      break;
    case AdmissionVerdict::kRefuseClientShare:
      ++stats_.refused_client_share;
      break;
  }
  return d;
}

int64_t AdmissionController::Register(const WorkRequest& work, Clock::time_point now) {
  MutexLock lock(&mu_);
  return AddGroup(MakeGroup(work, now));
}

void AdmissionController::Cancel(int64_t ticket) {
  MutexLock lock(&mu_);
  if (auto it = groups_.find(ticket); it != groups_.end()) Drop(it);
}

std::optional<int64_t> AdmissionController::OrderKey(int64_t ticket) const {
  MutexLock lock(&mu_);
  auto it = groups_.find(ticket);
  if (it == groups_.end()) return std::nullopt;
  return std::llround(it->second.tag * 1e6);
}

void AdmissionController::OnStep(const StepObservation& step, std::span<const Progress> progress,
                                 Clock::time_point now) {
  MutexLock lock(&mu_);
  if (options_.max_step_s > 0 && step.num_decodes > 0 && step.num_prefill_tokens > 0) {
    ++stats_.budgeted_steps;
    stats_.budgeted_steps_over += step.seconds > options_.max_step_s;
    // How much longer such steps take than the model says (their chunk is small and often deep
    // in a long prompt, so it costs more per token than the average prefill token): the next
    // chunks are sized for a budget shrunk by it.
    const double predicted = model_.StepSeconds(step.num_decodes, step.num_prefill_tokens);
    if (model_.seen_prefill() && predicted > 0) {
      const double ratio = std::clamp(step.seconds / predicted, 0.5, 2.0);
      budget_overrun_ += kOverrunAlpha * (ratio - budget_overrun_);
    }
  }
  model_.Observe(step);
  last_decodes_ = step.num_decodes;
  last_step_ = now;
  for (const Progress& p : progress) {
    auto it = groups_.find(p.ticket);
    if (it == groups_.end()) continue;
    Group& g = it->second;
    if (!g.started) {
      g.started = true;
      fair_.OnStarted(g.tag);
      if (g.predicted_wait_s >= 0) {
        stats_.predicted_wait_sum_s += g.predicted_wait_s;
        // It started when the step did, `step.seconds` before it was reported.
        stats_.actual_wait_sum_s += std::max(0.0, SecondsBetween(g.arrival, now) - step.seconds);
        ++stats_.num_waits;
      }
    }
    g.prefill_left = std::max(0.0, g.prefill_left - p.prefill_tokens);
    g.generated_open += p.sampled;
    if (g.prefill_left == 0 && !g.prompt_blocks.empty()) {
      RememberComputed(g.prompt_blocks);
      std::vector<uint64_t>().swap(g.prompt_blocks);
    }
  }
}

AdmissionController::Progress AdmissionController::ProgressOf(int64_t ticket,
                                                              const ScheduledSequence& s,
                                                              bool first_choice) {
  const Sequence& seq = *s.seq;
  const bool first = first_choice && !seq.scheduled_once;
  const int32_t prompt = seq.num_prompt_tokens;
  // Choice 0's first schedule passes its cached prefix too (never reported otherwise); a
  // recompute after preemption passes the prompt again, which only clamps at 0.
  const int32_t from = first ? 0 : seq.num_computed_tokens;
  const int32_t to = seq.num_computed_tokens + s.num_new_tokens;
  Progress p;
  p.ticket = ticket;
  p.prefill_tokens = std::max(0, std::min(to, prompt) - std::min(from, prompt));
  p.sampled = s.sample ? 1 : 0;
  return p;
}

void AdmissionController::OnChoiceFinished(int64_t ticket, int32_t generated, bool natural,
                                           Clock::time_point now) {
  MutexLock lock(&mu_);
  auto it = groups_.find(ticket);
  if (it == groups_.end()) return;
  Group& g = it->second;
  if (natural) ObserveOutputRatio(std::min(1.0, double(generated) / g.max_tokens));
  g.generated_open = std::max<int64_t>(0, g.generated_open - generated);
  if (--g.seqs > 0) return;
  // A request cancelled before it ran says nothing; one registered without a prediction
  // (predicted_wait_s < 0) has nothing to compare.
  if (g.started && g.predicted_wait_s >= 0) {
    TS_LOG_DEBUG(
        "admission: ticket {} ended {:.2f} s after arrival, predicted {:.2f} s, {:.2f} s "
        "left of {:.2f} s",
        g.ticket, SecondsBetween(g.arrival, now), g.predicted_finish_s,
        SecondsBetween(now, g.deadline), SecondsBetween(g.arrival, g.deadline));
    AdaptSlack(g, now);
  }
  Drop(it);
}

std::vector<int64_t> AdmissionController::TakeShed(Clock::time_point now) {
  MutexLock lock(&mu_);
  std::vector<int64_t> shed;
  if (!model_.ready()) {
    // No prediction yet, but a deadline already passed needs none.
    for (const auto& [ticket, g] : groups_)
      if (!g.started && g.deadline <= now) shed.push_back(ticket);
    for (int64_t ticket : shed) Drop(groups_.find(ticket));
    stats_.shed += static_cast<int64_t>(shed.size());
    return shed;
  }
  bool any = false;
  double horizon = 0;
  for (const auto& [ticket, g] : groups_) {
    const double left = SecondsBetween(now, g.deadline);
    if (g.started || !std::isfinite(left)) continue;
    any = true;
    horizon = std::max(horizon, left);
  }
  if (!any) return shed;
  const std::vector<const Group*> order = ServiceOrder(nullptr);
  const std::vector<Prediction> p = Predict(order, std::min(horizon, kMaxHorizonS) + 1);
  for (size_t i = 0; i < order.size(); ++i) {
    const double left = SecondsBetween(now, order[i]->deadline);
    if (order[i]->started) continue;
    if (p[i].finish_s > left) shed.push_back(order[i]->ticket);
  }
  for (int64_t ticket : shed) Drop(groups_.find(ticket));
  stats_.shed += static_cast<int64_t>(shed.size());
  return shed;
}

AdmissionStats AdmissionController::Stats() const {
  MutexLock lock(&mu_);
  AdmissionStats s = stats_;
  s.prefill_tokens_per_s = model_.ready() ? model_.PrefillTokensPerSecond() : 0;
  s.decode_step_s = model_.ready() ? model_.StepSeconds(std::max(1, last_decodes_), 0) : 0;
  s.num_decodes = last_decodes_;
  s.deadline_slack = slack_;
  s.budget_overrun = budget_overrun_;
  const int32_t limit = PrefillTokenLimitLocked(last_decodes_);
  s.prefill_token_limit = limit == INT32_MAX ? 0 : limit;
  s.num_clients = fair_.num_clients();
  s.num_tickets = static_cast<int64_t>(groups_.size());
  return s;
}

}  // namespace tinyserve
