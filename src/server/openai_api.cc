#include "server/openai_api.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "server/openai_constraints.h"
#include "server/openai_fields.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/chat_template_json.h"
#include "tokenizer/tokenizer.h"

namespace tinyserve {
namespace {

using openai_parse::Fail;
using openai_parse::Field;
using openai_parse::GetBool;
using openai_parse::GetInt;
using openai_parse::GetNumber;
using openai_parse::GetString;
using openai_parse::Invalid;
using openai_parse::Json;
using openai_parse::ParseConstraints;
using openai_parse::ParseTools;
using openai_parse::TokenIds;

void ParsePrompts(const Json& body, const ApiContext& ctx, ParsedRequest* out) {
  const Json* p = Field(body, "prompt");
  if (p == nullptr) Fail("prompt", "'prompt' is required");
  auto add_text = [&](const std::string& text) {
    if (text.empty()) Fail("prompt", "'prompt' must not be empty");
    out->prompts.push_back(ctx.tokenizer->Encode(text, /*allow_special=*/true));
    out->prompt_texts.push_back(text);
  };
  auto add_ids = [&](const Json& list) {
    if (list.empty()) Fail("prompt", "'prompt' must not be empty");
    out->prompts.push_back(TokenIds(list, "prompt", ctx.vocab_size));
    out->prompt_texts.push_back(ctx.tokenizer->Decode(out->prompts.back()));
  };
  if (p->is_string()) {
    add_text(p->get<std::string>());
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
    add_ids(*p);
  } else if (p->is_array() && !p->empty()) {
    if (p->size() > 64) Fail("prompt", "at most 64 prompts per request");
    for (const Json& item : *p) {
      if (item.is_string()) {
        add_text(item.get<std::string>());
      } else if (item.is_array()) {
        add_ids(item);
      } else {
        Fail("prompt", "'prompt' entries must be strings or lists of token ids");
      }
    }
  } else {
    Fail("prompt", "'prompt' must be a string, a list of strings or a list of token ids");
  }
}

void ParseMessages(const Json& body, const ApiContext& ctx, ParsedRequest* out) {
  // vLLM refuses a template sent with the request unless started with
  // --trust-request-chat-template; here there is one template, the model's.
  const Json* kwargs = Field(body, "chat_template_kwargs");
  if (Field(body, "chat_template") ||
      (kwargs != nullptr && kwargs->is_object() && Field(*kwargs, "chat_template")))
    Fail("chat_template",
         "a chat template sent with the request is not supported: the server renders the "
         "model's own (Qwen2.5 ChatML)");
  const Json* m = Field(body, "messages");
  if (m == nullptr || !m->is_array() || m->empty())
    Fail("messages", "'messages' must be a non-empty list");
  for (const Json& msg : *m) {
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
      Fail("messages", "each message must be an object with a string 'role'");
    const std::string role = msg["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "tool" &&
        role != "developer")
      Fail("messages", fmt::format("unknown message role '{}'", role));
    if (msg.contains("content") && !msg["content"].is_null() && !msg["content"].is_string() &&
        !msg["content"].is_array())
      Fail("messages", "message 'content' must be a string or a list of parts");
  }
  Json conv = {{"messages", *m}};
  // ParseTools has checked the tools (and dropped them for tool_choice "none").
  if (const Json* tools = Field(body, "tools"); tools != nullptr && !tools->empty())
    conv["tools"] = *tools;
  conv["add_generation_prompt"] = GetBool(body, "add_generation_prompt", true);
  conv["continue_final_message"] = GetBool(body, "continue_final_message", false);
  auto parsed = ChatConversationFromJson(conv);
  if (!parsed.ok()) Fail("messages", parsed.status().message());
  for (ChatMessage& msg : parsed->messages)
    if (msg.role == "developer") msg.role = "system";
  if (GetBool(body, "echo", false) && parsed->messages.back().role == "assistant")
    out->chat_echo = parsed->messages.back().content;
  auto prompt = RenderQwen25ChatWithControls(*parsed);
  if (!prompt.ok()) Fail("messages", prompt.status().message());
  out->prompts.push_back(EncodeChatPrompt(*prompt, *ctx.tokenizer));
  out->prompt_texts.push_back(std::move(prompt->text));
}

// vLLM's `truncate_prompt_tokens: k`: each prompt keeps its last k tokens (-1: the context
// length), before the length checks; an echoed prompt is the kept part.
void TruncatePrompts(const Json& body, const ApiContext& ctx, ParsedRequest* out) {
  auto k = GetInt(body, "truncate_prompt_tokens", -1, ctx.max_model_len);
  if (!k) return;
  if (*k == 0) Fail("truncate_prompt_tokens", "'truncate_prompt_tokens' must be -1 or at least 1");
  const size_t keep = *k == -1 ? static_cast<size_t>(ctx.max_model_len) : static_cast<size_t>(*k);
  for (size_t i = 0; i < out->prompts.size(); ++i) {
    std::vector<int32_t>& prompt = out->prompts[i];
    if (prompt.size() <= keep) continue;
    prompt.erase(prompt.begin(), prompt.end() - static_cast<std::ptrdiff_t>(keep));
    out->prompt_texts[i] = ctx.tokenizer->Decode(prompt);
  }
}

void ParseStop(const Json& body, const ApiContext& ctx, StopConditions* stop) {
  if (const Json* s = Field(body, "stop")) {
    std::vector<std::string> list;
    if (s->is_string()) {
      list.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      for (const Json& item : *s) {
        if (!item.is_string()) Fail("stop", "'stop' entries must be strings");
        list.push_back(item.get<std::string>());
      }
    } else {
      Fail("stop", "'stop' must be a string or a list of strings");
    }
    if (static_cast<int32_t>(list.size()) > ctx.max_stop_strings)
      Fail("stop", fmt::format("at most {} stop strings", ctx.max_stop_strings));
    for (const std::string& x : list) {
      if (x.empty()) Fail("stop", "stop strings must not be empty");
      if (static_cast<int32_t>(x.size()) > ctx.max_stop_string_bytes)
        Fail("stop",
             fmt::format("stop strings are limited to {} bytes", ctx.max_stop_string_bytes));
    }
    stop->stop = std::move(list);
  }
  if (const Json* ids = Field(body, "stop_token_ids")) {
    if (!ids->is_array()) Fail("stop_token_ids", "'stop_token_ids' must be a list of token ids");
    if (ids->size() > 64) Fail("stop_token_ids", "at most 64 stop token ids");
    stop->stop_token_ids = TokenIds(*ids, "stop_token_ids", ctx.vocab_size);
  }
  stop->include_stop_str_in_output = GetBool(body, "include_stop_str_in_output", false);
  stop->ignore_eos = GetBool(body, "ignore_eos", false);
}

void ParseSampling(const Json& body, const ApiContext& ctx, SamplingParams* s) {
  if (auto t = GetNumber(body, "temperature", 0.0, 2.0)) s->temperature = float(*t);
  if (auto p = GetNumber(body, "top_p", 0.0, 1.0)) {
    if (*p <= 0.0) Fail("top_p", "'top_p' must be in (0, 1]");
    s->top_p = float(*p);
  }
  if (auto k = GetInt(body, "top_k", -1, ctx.vocab_size)) s->top_k = int32_t(*k);
  if (auto m = GetNumber(body, "min_p", 0.0, 1.0)) s->min_p = float(*m);
  if (auto r = GetNumber(body, "repetition_penalty", 0.0, 2.0)) {
    if (*r <= 0.0) Fail("repetition_penalty", "'repetition_penalty' must be in (0, 2]");
    s->repetition_penalty = float(*r);
  }
  s->presence_penalty = float(GetNumber(body, "presence_penalty", -2.0, 2.0).value_or(0.0));
  s->frequency_penalty = float(GetNumber(body, "frequency_penalty", -2.0, 2.0).value_or(0.0));
  if (const Json* seed = Field(body, "seed")) {
    if (!seed->is_number_integer()) Fail("seed", "'seed' must be an integer");
    s->seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                         : static_cast<uint64_t>(seed->get<int64_t>());
  }
  if (const Json* bias = Field(body, "logit_bias")) {
    if (!bias->is_object()) Fail("logit_bias", "'logit_bias' must map token ids to numbers");
    if (bias->size() > 1024) Fail("logit_bias", "at most 1024 logit_bias entries");
    // Token id -> its entry: keys that name one id twice (" 5" and "5", which Python's int()
    // also reads as 5) keep the last value, as vLLM's dict of int keys does.
    std::unordered_map<int32_t, size_t> entry_of;
    for (const auto& [key, value] : bias->items()) {
      char* end = nullptr;
      const long long id = std::strtoll(key.c_str(), &end, 10);
      // end past every byte: a key's NUL ("5\u0000x") ends the C string, not the key.
      if (key.empty() || end != key.c_str() + key.size() || id < 0 || id >= ctx.vocab_size)
        Fail("logit_bias", fmt::format("logit_bias key '{}' is not a token id in [0, {})",
                                       key.substr(0, 64), ctx.vocab_size));
      if (!value.is_number() || value.get<double>() < -100 || value.get<double>() > 100)
        Fail("logit_bias", "logit_bias values must be numbers in [-100, 100]");
      const auto [it, added] = entry_of.emplace(int32_t(id), s->logit_bias.size());
      if (added) {
        s->logit_bias.emplace_back(int32_t(id), value.get<float>());
      } else {
        s->logit_bias[it->second].second = value.get<float>();
      }
    }
  }
}

void ParseLimits(const Json& body, const ApiContext& ctx, ParsedRequest* out) {
  std::optional<int64_t> max_tokens = GetInt(body, "max_tokens", 0, INT32_MAX);
  if (max_tokens == 0) {
    // OpenAI's legacy completions and vLLM: `echo` with max_tokens 0 returns the prompt alone
    // (with `logprobs`, the prompt scored). The engine still draws one token; the response
    // leaves it out.
    if (out->endpoint != Endpoint::kCompletions || !out->echo)
      Fail("max_tokens",
           "'max_tokens' must be at least 1 (0 only with 'echo', which returns the prompt alone)");
    out->echo_only = true;
    max_tokens = 1;
  }
  if (auto mct = GetInt(body, "max_completion_tokens", 1, INT32_MAX)) max_tokens = mct;
  const int64_t min_tokens = GetInt(body, "min_tokens", 0, ctx.max_model_len).value_or(0);
  if (max_tokens && min_tokens > *max_tokens)
    Fail("min_tokens", "'min_tokens' must not exceed 'max_tokens'");
  out->base.stop.min_tokens = int32_t(min_tokens);
  for (const auto& prompt : out->prompts) {
    const int64_t len = static_cast<int64_t>(prompt.size());
    const int64_t least = std::max<int64_t>(1, min_tokens);
    if (max_tokens && ctx.cap_max_tokens_at_context && len + least <= ctx.max_model_len)
      max_tokens = std::min(*max_tokens, ctx.max_model_len - len);  // still >= least
    const int64_t want = std::max<int64_t>(max_tokens.value_or(1), least);
    if (len + want > ctx.max_model_len) {
      Fail(out->endpoint == Endpoint::kChat ? "messages" : "prompt",
           fmt::format("This model's maximum context length is {} tokens. However, you requested "
                       "{} tokens ({} in the prompt, {} for the completion). Please reduce the "
                       "length of the prompt or of max_tokens.",
                       ctx.max_model_len, len + want, len, want));
    }
  }
  // Completions default to 16 tokens (OpenAI); chat to the rest of the context (vLLM).
  if (max_tokens) {
    out->base.stop.max_tokens = int32_t(*max_tokens);
  } else if (out->endpoint == Endpoint::kCompletions) {
    out->base.stop.max_tokens = 16;
  }
}

void ParseLogprobs(const Json& body, const ApiContext& ctx, ParsedRequest* out) {
  SamplingParams& s = out->base.sampling;
  // vLLM: `prompt_logprobs: k` returns the prompt tokens' log-probabilities (each choice's
  // "prompt_logprobs" on completions, the response's on chat). A stream has no place for them:
  // k > 0 is refused there as vLLM refuses it, and 0 (accepted) computes nothing.
  if (auto k = GetInt(body, "prompt_logprobs", 0, 20)) {
    if (out->stream && *k > 0)
      Fail("prompt_logprobs", "`prompt_logprobs` are not available when `stream=True`");
    if (!out->stream) out->base.prompt_logprobs = int32_t(*k);
  }
  if (out->endpoint == Endpoint::kCompletions) {
    if (auto k = GetInt(body, "logprobs", 0, 20)) {
      out->completion_logprobs = int32_t(*k);
      s.logprobs = true;
      s.top_logprobs = int32_t(*k);
    }
    // `echo` with `logprobs` puts the prompt's in `logprobs` ahead of the completion's, as
    // OpenAI's legacy API did (what log-likelihood scorers such as lm-evaluation-harness read),
    // streamed or not.
    if (out->echo && out->completion_logprobs >= 0) {
      out->base.prompt_logprobs =
          std::max(out->base.prompt_logprobs.value_or(0), out->completion_logprobs);
    }
    return;
  }
  out->chat_logprobs = GetBool(body, "logprobs", false);
  const int64_t top = GetInt(body, "top_logprobs", 0, 20).value_or(0);
  if (top > 0 && !out->chat_logprobs)
    Fail("top_logprobs", "'top_logprobs' requires 'logprobs': true");
  s.logprobs = out->chat_logprobs;
  s.top_logprobs = int32_t(top);
}

// Asks this server cannot honour, refused rather than quietly answered another way (vLLM refuses
// `suffix` too; a fill-in-the-middle client then falls back to plain continuation).
void ParseUnsupported(const Json& body, const ParsedRequest& out) {
  if (out.endpoint == Endpoint::kCompletions && Field(body, "suffix"))
    Fail("suffix", "'suffix' (fill-in-the-middle) is not supported");
  for (const char* name : {"allowed_token_ids", "bad_words", "prompt_embeds"}) {
    const Json* v = Field(body, name);
    if (v != nullptr && !(v->is_array() && v->empty()))
      Fail(name, fmt::format("'{}' is not supported", name));
  }
  if (GetBool(body, "return_tokens_as_token_ids", false))
    Fail("return_tokens_as_token_ids", "'return_tokens_as_token_ids' is not supported");
  if (GetBool(body, "use_beam_search", false))
    Fail("use_beam_search", "beam search is not supported");
  if (auto best_of = GetInt(body, "best_of", 1, INT32_MAX); best_of && *best_of > out.base.n)
    Fail("best_of",
         "'best_of' greater than 'n' is not supported (every choice generated is returned)");
}

// What the request would cost as a whole: sequences, KV blocks if its n choices all run at
// once, and the size of a response built in memory.
void CheckCapacity(const ApiContext& ctx, ParsedRequest* out) {
  const int64_t n = out->base.n;
  const int64_t choices = n * static_cast<int64_t>(out->prompts.size());
  if (choices > ctx.max_choices)
    Fail("n", fmt::format("{} prompts x n={} is {} choices; at most {} per request",
                          out->prompts.size(), n, choices, ctx.max_choices));
  int64_t longest = 0;
  for (const auto& prompt : out->prompts) {
    const int64_t len = static_cast<int64_t>(prompt.size());
    const int64_t max_len = std::min<int64_t>(
        ctx.max_model_len, len + out->base.stop.max_tokens.value_or(ctx.max_model_len));
    longest = std::max(longest, max_len - len);
    if (ctx.num_kv_blocks > 0 && ctx.block_size > 0) {
      // Siblings share the prompt's full blocks; each needs its own blocks after that.
      const int64_t shared = len / ctx.block_size;
      const int64_t each = (max_len + ctx.block_size - 1) / ctx.block_size - shared;
      if (shared + n * each > ctx.num_kv_blocks)
        Fail("n", fmt::format("n={} choices of up to {} tokens need {} KV blocks; the KV cache "
                              "has {}; lower n or max_tokens",
                              n, max_len, shared + n * each, ctx.num_kv_blocks));
    }
  }
  if (out->base.prompt_logprobs) {
    const bool echoed = out->echo && out->completion_logprobs >= 0;
    int64_t entries = 0;
    for (const auto& prompt : out->prompts) entries += static_cast<int64_t>(prompt.size());
    entries *= n * (*out->base.prompt_logprobs + 1) * (echoed ? 2 : 1);
    if (entries > ctx.max_prompt_logprob_entries)
      Fail("prompt_logprobs",
           fmt::format("choices x prompt tokens x (prompt_logprobs + 1){} is {}, over {}; ask for "
                       "less",
                       echoed ? " x 2 (echo with logprobs)" : "", entries,
                       ctx.max_prompt_logprob_entries));
  }
  const SamplingParams& s = out->base.sampling;
  if (!out->stream && s.logprobs &&
      choices * longest * (s.top_logprobs + 1) > ctx.max_logprob_entries)
    Fail("logprobs", fmt::format("choices x max_tokens x (top_logprobs + 1) exceeds {} for a "
                                 "non-streamed response; stream it or ask for less",
                                 ctx.max_logprob_entries));
}

Json ParseBody(std::string_view text) {
  std::string where;
  auto parsed = ParseUntrustedJson(text, kMaxJsonDepth, &where);
  if (!parsed.ok()) {
    Fail(where, where.empty()
                    ? "the request body is not acceptable JSON: " + parsed.status().message()
                    : fmt::format("'{}': {}", where, parsed.status().message()));
  }
  if (!parsed->is_object()) Fail("", "the request body must be a JSON object");
  return std::move(*parsed);
}

ParsedRequest Parse(Endpoint endpoint, std::string_view text, const ApiContext& ctx) {
  Json body = ParseBody(text);
  ParsedRequest out;
  out.endpoint = endpoint;
  out.model = GetString(body, "model", 1024);
  if (!out.model.empty() && out.model != ctx.served_model_name) {
    throw Invalid{ApiError{404, fmt::format("The model '{}' does not exist.", out.model),
                           "NotFoundError", "model", "model_not_found"}};
  }
  out.model = ctx.served_model_name;
  out.stream = GetBool(body, "stream", false);
  if (const Json* so = Field(body, "stream_options")) {
    if (!so->is_object()) Fail("stream_options", "'stream_options' must be an object");
    if (!out.stream) Fail("stream_options", "'stream_options' requires 'stream': true");
    out.include_usage = GetBool(*so, "include_usage", false);
    out.continuous_usage = out.include_usage && GetBool(*so, "continuous_usage_stats", false);
  }
  ParseConstraints(body, &out);  // before the messages: tool_choice "none" drops the tools
  if (endpoint == Endpoint::kCompletions) {
    out.echo = GetBool(body, "echo", false);
    ParsePrompts(body, ctx, &out);
  } else {
    ParseMessages(body, ctx, &out);
  }
  TruncatePrompts(body, ctx, &out);
  ParseSampling(body, ctx, &out.base.sampling);
  ParseLogprobs(body, ctx, &out);
  ParseStop(body, ctx, &out.base.stop);
  ParseLimits(body, ctx, &out);
  out.base.n = int32_t(GetInt(body, "n", 1, ctx.max_n).value_or(1));
  ParseUnsupported(body, out);
  out.base.priority = int32_t(GetInt(body, "priority", -1000000, 1000000).value_or(0));
  if (out.base.priority != 0 && !ctx.allow_priority)
    Fail("priority",
         "'priority' is honoured only when the server runs with "
         "--scheduling-policy priority");
  CheckCapacity(ctx, &out);
  out.base.cache_salt = GetString(body, "cache_salt", 1024);
  out.base.skip_special_tokens = GetBool(body, "skip_special_tokens", true);
  out.return_token_ids = GetBool(body, "return_token_ids", false);
  GetString(body, "user", 4096);  // accepted for compatibility; type-checked only
  return out;
}

}  // namespace

std::vector<int32_t> EncodeChatPrompt(const RenderedChat& rendered, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  const std::string_view text = rendered.text;
  size_t pos = 0;
  auto append = [&](std::string_view part, bool special) {
    const std::vector<int32_t> part_ids = tokenizer.Encode(part, special);
    ids.insert(ids.end(), part_ids.begin(), part_ids.end());
  };
  for (const auto& [at, len] : rendered.control) {
    append(text.substr(pos, at - pos), /*special=*/false);
    append(text.substr(at, len), /*special=*/true);
    pos = at + len;
  }
  append(text.substr(pos), /*special=*/false);
  return ids;
}

namespace {

// parse() as a value or the error an Invalid (or a type check missed) stands for.
template <class T, class Parser>
std::variant<T, ApiError> Guarded(Parser parse) {
  try {
    return parse();
  } catch (const Invalid& e) {
    return e.error;
  } catch (const nlohmann::json::exception&) {
    // A type check missed above: the library's text names its internals, not the field.
    return BadRequest("malformed request: a field has the wrong type");
  }
}

}  // namespace

std::variant<ParsedRequest, ApiError> ParseRequest(Endpoint endpoint, std::string_view body,
                                                   const ApiContext& context) {
  return Guarded<ParsedRequest>([&] { return Parse(endpoint, body, context); });
}

std::variant<std::vector<int32_t>, ApiError> ParseChatPrompt(Json body, const ApiContext& context) {
  return Guarded<std::vector<int32_t>>([&] {
    ParsedRequest out;
    out.endpoint = Endpoint::kChat;
    ParseTools(body, &out);  // checks the tools; tool_choice "none" leaves them out
    ParseMessages(body, context, &out);
    return std::move(out.prompts[0]);
  });
}

}  // namespace tinyserve
