#include "structured/compiler.h"

#include <exception>
#include <new>
#include <nlohmann/json.hpp>

#include "structured/gbnf.h"
#include "structured/json_limits.h"
#include "structured/json_schema.h"
#include "structured/regex.h"
#include "util/check.h"

namespace tinyserve::structured {
namespace {

using Json = nlohmann::ordered_json;

// Rewrites local "$ref": "#..." inside a schema moved to `prefix` (a JSON pointer).
void RebaseRefs(Json* s, const std::string& prefix) {
  if (s->is_object()) {
    for (auto& [key, value] : s->items()) {
      if (key == "$ref" && value.is_string()) {
        const std::string ref = value.get<std::string>();
        if (!ref.empty() && ref[0] == '#') value = "#" + prefix + ref.substr(1);
      } else {
        RebaseRefs(&value, prefix);
      }
    }
  } else if (s->is_array()) {
    for (auto& v : *s) RebaseRefs(&v, prefix);
  }
}

// {"functions": [{"name": ..., "parameters": {...}}, ...], "multiple": bool} -> a schema of one
// call {"name": ..., "arguments": ...} and the wrapper options.
StatusOr<std::string> ToolCallSchema(std::string_view text, JsonSchemaOptions* o) {
  TS_RETURN_IF_ERROR(CheckJsonNesting(text, "tool-call spec"));
  Json spec = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded() || !spec.is_object() || !spec.contains("functions") ||
      !spec["functions"].is_array() || spec["functions"].empty()) {
    return InvalidArgumentError("tool-call spec needs a non-empty 'functions' array");
  }
  Json any = Json::array();
  for (size_t i = 0; i < spec["functions"].size(); ++i) {
    const Json& f = spec["functions"][i];
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string()) {
      return InvalidArgumentError("tool {} has no name", i);
    }
    Json params = f.contains("parameters") ? f["parameters"] : Json{{"type", "object"}};
    RebaseRefs(&params, fmt::format("/anyOf/{}/properties/arguments", i));
    Json call = {{"type", "object"},
                 {"properties", {{"name", {{"const", f["name"]}}}, {"arguments", params}}},
                 {"required", {"name", "arguments"}}};
    any.push_back(std::move(call));
  }
  o->wrap_prefix = "<tool_call>\n";
  o->wrap_suffix = "\n</tool_call>";
  o->wrap_separator = "\n";
  o->wrap_max_count = spec.value("multiple", false) ? -1 : 1;
  return Json{{"anyOf", std::move(any)}}.dump();
}

}  // namespace

std::string_view GrammarKindName(GrammarKind kind) {
  switch (kind) {
    case GrammarKind::kJsonSchema:
      return "json_schema";
    case GrammarKind::kJsonObject:
      return "json_object";
    case GrammarKind::kRegex:
      return "regex";
    case GrammarKind::kChoice:
      return "choice";
    case GrammarKind::kGbnf:
      return "grammar";
    case GrammarKind::kToolCalls:
      return "tool_calls";
  }
  return "?";
}

StatusOr<Grammar> CompileToGrammar(GrammarKind kind, std::string_view text,
                                   const CompileOptions& options) {
  if (text.size() > options.max_text_bytes) {
    return InvalidArgumentError("{} is larger than {} bytes", GrammarKindName(kind),
                                options.max_text_bytes);
  }
  // The deadline travels in the limits so every long loop of the builder checks it while
  // compiling (a check after the fact would let one request hold a thread for minutes).
  GrammarLimits limits = options.limits;
  limits.deadline =
      std::min(limits.deadline, std::chrono::steady_clock::now() + options.time_limit);
  JsonSchemaOptions jo;
  jo.limits = limits;
  jo.max_depth = options.max_schema_depth;
  jo.deadline = limits.deadline;
  switch (kind) {
    case GrammarKind::kJsonSchema:
      return CompileJsonSchema(text, jo);
    case GrammarKind::kJsonObject:
      return CompileAnyJsonObject(jo);
    case GrammarKind::kToolCalls: {
      TS_ASSIGN_OR_RETURN(std::string schema, ToolCallSchema(text, &jo));
      return CompileJsonSchema(schema, jo);
    }
    case GrammarKind::kRegex: {
      RegexOptions ro;
      ro.max_repeat = options.limits.max_repeat;
      TS_ASSIGN_OR_RETURN(Expr e, ParseRegex(text, ro));
      GrammarBuilder b(limits);
      TS_ASSIGN_OR_RETURN(int32_t root, b.AddRule("root", e));
      return b.Finish(root);
    }
    case GrammarKind::kChoice: {
      TS_RETURN_IF_ERROR(CheckJsonNesting(text, "choice"));
      Json list = Json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (list.is_discarded() || !list.is_array() || list.empty()) {
        return InvalidArgumentError("choice must be a non-empty JSON array of strings");
      }
      std::vector<Expr> alts;
      for (const Json& c : list) {
        if (!c.is_string()) return InvalidArgumentError("choice must contain only strings");
        alts.push_back(Expr::Literal(c.get<std::string>()));
      }
      GrammarBuilder b(limits);
      TS_ASSIGN_OR_RETURN(int32_t root, b.AddRule("root", Expr::Alt(std::move(alts))));
      return b.Finish(root);
    }
    case GrammarKind::kGbnf:
      return CompileGbnf(text, limits);
  }
  return InvalidArgumentError("unknown grammar kind");
}

StatusOr<std::shared_ptr<const CompiledGrammar>> CompileGrammar(
    GrammarKind kind, std::string_view text, std::shared_ptr<const Vocabulary> vocab,
    const CompileOptions& options) {
  TS_ASSIGN_OR_RETURN(Grammar g, CompileToGrammar(kind, text, options));
  auto compiled = std::make_shared<CompiledGrammar>(std::move(g), std::move(vocab));
  if (!options.precompute) return std::shared_ptr<const CompiledGrammar>(std::move(compiled));
  const Status warm = compiled->Warm(std::chrono::steady_clock::now() + options.warm_time,
                                     options.max_grammar_bytes, options.max_precompute_work);
  if (!warm.ok()) return warm.WithPrefix(GrammarKindName(kind));
  return std::shared_ptr<const CompiledGrammar>(std::move(compiled));
}

GrammarCache::GrammarCache(std::shared_ptr<const Vocabulary> vocab, size_t capacity,
                           CompileOptions options, size_t max_bytes, GrammarCacheLimits limits)
    : vocab_(std::move(vocab)),
      capacity_(std::max<size_t>(capacity, 1)),
      max_bytes_(max_bytes),
      options_(options),
      limits_(limits),
      gate_(std::max(limits.max_concurrent_compiles, 1)) {
  limits_.max_concurrent_compiles = std::max(limits_.max_concurrent_compiles, 1);
}

void GrammarCache::EvictLocked() {
  // The newest entry stays even when alone over max_bytes: its request is using it anyway, and
  // CompileOptions::max_grammar_bytes bounds it.
  while (lru_.size() > capacity_ || (bytes_ > max_bytes_ && lru_.size() > 1)) {
    bytes_ -= lru_.back().bytes;
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  while (failures_.size() > limits_.max_failures || failure_bytes_ > limits_.max_failure_bytes) {
    failure_bytes_ -= failures_.back().bytes;
    failure_index_.erase(failures_.back().key);
    failures_.pop_back();
  }
}

std::optional<GrammarCache::Result> GrammarCache::LookupLocked(const std::string& key) {
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    ++stats_.hits;
    return it->second->grammar;
  }
  if (auto it = failure_index_.find(key); it != failure_index_.end()) {
    failures_.splice(failures_.begin(), failures_, it->second);
    ++stats_.failure_hits;
    return it->second->status;
  }
  auto it = flights_.find(key);
  if (it == flights_.end()) return std::nullopt;
  ++stats_.shared;
  // The flight outlives its map entry: the compiling request erases it when it finishes.
  const std::shared_ptr<Flight> flight = it->second;
  while (!flight->result) cv_.Wait(&mu_);
  return flight->result;
}

Status GrammarCache::AcquireSlotLocked(std::string_view client) {
  const uint64_t ticket = gate_.Join(client);
  if (!gate_.MayTake(ticket)) {
    ++stats_.gate_waits;
    const auto deadline = std::chrono::steady_clock::now() + limits_.max_compile_wait;
    while (!gate_.MayTake(ticket)) {
      // On timeout the turn is checked once more: it may have come meanwhile.
      if (!cv_.WaitUntil(&mu_, deadline) && !gate_.MayTake(ticket)) {
        gate_.Leave(ticket);
        cv_.NotifyAll();  // the turn may now be another waiter's
        ++stats_.gate_refusals;
        return UnavailableError(
            "too many grammar compilations are in progress: none of the {} compile slots came "
            "free within {} ms; retry later",
            limits_.max_concurrent_compiles, limits_.max_compile_wait.count());
      }
    }
  }
  gate_.Take(ticket);
  cv_.NotifyAll();  // another slot may be free for the next turn's waiter
  stats_.peak_compiles = std::max(stats_.peak_compiles, gate_.running());
  return OkStatus();
}

void GrammarCache::StoreLocked(std::string key, const Result& result) {
  // Only the request that compiled `key` stores it (single flight), so it is in neither list.
  TS_DCHECK(index_.count(key) == 0 && failure_index_.count(key) == 0);
  if (result.ok()) {
    // The key is held twice (list entry and index).
    const size_t entry_bytes = (*result)->memory_bytes() + 2 * key.size() + 128;
    lru_.push_front({key, *result, entry_bytes});
    bytes_ += entry_bytes;
    index_[std::move(key)] = lru_.begin();
  } else if (result.status().code() == StatusCode::kInvalidArgument &&
             !IsTimeLimitError(result.status())) {
    // A time-limit failure is not kept: the same text may compile in time on a quieter machine.
    const size_t entry_bytes = result.status().message().size() + 2 * key.size() + 128;
    failures_.push_front({key, result.status(), entry_bytes});
    failure_bytes_ += entry_bytes;
    failure_index_[std::move(key)] = failures_.begin();
  }
  EvictLocked();
}

GrammarCache::Result GrammarCache::Compile(GrammarKind kind, std::string_view text) {
  return CompileGrammar(kind, text, vocab_, options_);
}

GrammarCache::Result GrammarCache::Get(GrammarKind kind, std::string_view text,
                                       std::string_view client) {
  std::string key;
  key.push_back(static_cast<char>('0' + static_cast<int>(kind)));
  key.append(text);
  std::shared_ptr<Flight> flight;
  {
    MutexLock lock(&mu_);
    if (auto found = LookupLocked(key)) return *std::move(found);
    // This request compiles the key; later ones for it wait on the flight (single flight), also
    // while this one waits for a slot.
    flight = flights_.emplace(key, std::make_shared<Flight>()).first->second;
    if (Status slot = AcquireSlotLocked(client); !slot.ok()) {
      flight->result = slot;
      flights_.erase(key);
      cv_.NotifyAll();
      return slot;
    }
  }
  // Compile outside the lock so hits and other keys are not held up. An exception (bad_alloc)
  // becomes an error here: escaping, it would keep the slot and leave the flight's waiters
  // blocked for good.
  const auto start = std::chrono::steady_clock::now();
  const auto compile = [&]() -> Result {
    try {
      return Compile(kind, text);
    } catch (const std::bad_alloc&) {
      return ResourceExhaustedError("out of memory compiling the grammar");
    } catch (const std::exception& e) {
      return InternalError("grammar compilation failed: {}", e.what());
    }
  };
  Result compiled = compile();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MutexLock lock(&mu_);
  gate_.Release(client);
  ++stats_.misses;
  stats_.compile_seconds += seconds;
  if (!compiled.ok()) ++stats_.errors;
  flights_.erase(key);
  flight->result = compiled;
  StoreLocked(std::move(key), compiled);
  cv_.NotifyAll();
  return compiled;
}

GrammarCache::Stats GrammarCache::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

size_t GrammarCache::bytes() const {
  MutexLock lock(&mu_);
  return bytes_;
}

size_t GrammarCache::size() const {
  MutexLock lock(&mu_);
  return lru_.size();
}

}  // namespace tinyserve::structured
