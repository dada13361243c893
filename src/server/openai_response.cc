#include "server/openai_response.h"

#include <fmt/format.h>

#include <random>

#include "tokenizer/tokenizer.h"

namespace tinyserve {
namespace {

using Json = nlohmann::ordered_json;

std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Json Bytes(std::string_view bytes) {
  Json list = Json::array();
  for (unsigned char c : bytes) list.push_back(int(c));
  return list;
}

// Appends each array of `more` to the same key's array of `*into` (completion logprobs).
void AppendLogprobs(Json more, Json* into) {
  if (more.is_null()) return;
  if (into->is_null()) {
    *into = std::move(more);
    return;
  }
  for (auto& [key, value] : more.items())
    for (auto& item : value) (*into)[key].push_back(std::move(item));
}

}  // namespace

std::string SseEvent(const std::string& payload) { return "data: " + payload + "\n\n"; }

ResponseBuilder::ResponseBuilder(const ParsedRequest& request, const Tokenizer* tokenizer,
                                 std::string id, int64_t created)
    : request_(request), tokenizer_(tokenizer), id_(std::move(id)), created_(created) {
  const size_t num_prompts = request.prompts.size();
  choices_.resize(num_prompts * request.base.n);
  cached_tokens_.assign(num_prompts, 0);
  for (size_t p = 0; p < num_prompts; ++p) {
    prompt_tokens_ += static_cast<int32_t>(request.prompts[p].size());
    if (request.echo) {
      for (int32_t i = 0; i < request.base.n; ++i)
        choices_[p * request.base.n + i].text = request.prompt_texts[p];
    }
  }
}

Json ResponseBuilder::FinishReasonJson(FinishReason reason, bool called_tools) {
  if (reason == FinishReason::kNone) return nullptr;
  // A choice that ended naturally after calling tools reports "tool_calls" (OpenAI, vLLM).
  if (called_tools && reason == FinishReason::kStop) return "tool_calls";
  return std::string(FinishReasonName(reason));
}

Json ResponseBuilder::ToolCallsJson(const std::vector<structured::ToolCall>& calls) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  Json list = Json::array();
  for (const structured::ToolCall& call : calls) {
    list.push_back({{"index", call.index},
                    {"id", fmt::format("call_{:016x}{:08x}", rng(), uint32_t(rng()))},
                    {"type", "function"},
                    {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
  }
  return list;
}

Json ResponseBuilder::EventLogprobs(const RequestEvent& event, Choice* choice) const {
  if (event.logprobs.empty()) return nullptr;
  auto token_str = [&](int32_t id) {
    const int32_t ids[1] = {id};
    return tokenizer_->Decode(ids);
  };
  if (request_.endpoint == Endpoint::kChat) {
    Json content = Json::array();
    for (const TokenLogprobs& lp : event.logprobs) {
      Json top = Json::array();
      for (const TokenLogprob& alt : lp.top) {
        top.push_back({{"token", token_str(alt.token_id)},
                       {"logprob", alt.logprob},
                       {"bytes", Bytes(tokenizer_->TokenBytes(alt.token_id))}});
      }
      content.push_back({{"token", token_str(lp.chosen.token_id)},
                         {"logprob", lp.chosen.logprob},
                         {"bytes", Bytes(tokenizer_->TokenBytes(lp.chosen.token_id))},
                         {"top_logprobs", std::move(top)}});
    }
    return Json{{"content", std::move(content)}};
  }
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(),
       offsets = Json::array();
  for (const TokenLogprobs& lp : event.logprobs) {
    std::string tok = token_str(lp.chosen.token_id);
    tokens.push_back(tok);
    token_logprobs.push_back(lp.chosen.logprob);
    Json alts = Json::object();
    for (const TokenLogprob& alt : lp.top) alts[token_str(alt.token_id)] = alt.logprob;
    top.push_back(std::move(alts));
    offsets.push_back(choice->text_offset);
    choice->text_offset += static_cast<int64_t>(tok.size());
  }
  return Json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

bool ResponseBuilder::EchoesLogprobs() const {
  return request_.endpoint == Endpoint::kCompletions && request_.echo &&
         request_.completion_logprobs >= 0;
}

Json ResponseBuilder::EchoLogprobs(int32_t prompt_idx, const std::vector<TokenLogprobs>& lps,
                                   Choice* choice) const {
  const std::vector<int32_t>& prompt = request_.prompts[prompt_idx];
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(),
       offsets = Json::array();
  for (size_t i = 0; i < prompt.size(); ++i) {
    const int32_t ids[1] = {prompt[i]};
    std::string tok = tokenizer_->Decode(ids);
    if (i == 0 || i - 1 >= lps.size()) {
      token_logprobs.push_back(nullptr);
      top.push_back(nullptr);
    } else {
      const TokenLogprobs& lp = lps[i - 1];
      token_logprobs.push_back(lp.chosen.logprob);
      // OpenAI: the top alternatives plus the token itself.
      Json alts = Json::object();
      for (const TokenLogprob& alt : lp.top) {
        const int32_t alt_ids[1] = {alt.token_id};
        alts[tokenizer_->Decode(alt_ids)] = alt.logprob;
      }
      alts[tok] = lp.chosen.logprob;
      top.push_back(std::move(alts));
    }
    offsets.push_back(choice->text_offset);
    choice->text_offset += static_cast<int64_t>(tok.size());
    tokens.push_back(std::move(tok));
  }
  return Json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

Json ResponseBuilder::VllmPromptLogprobs(const std::vector<TokenLogprobs>& lps) const {
  auto decoded = [&](int32_t id) {
    const int32_t ids[1] = {id};
    return tokenizer_->Decode(ids);
  };
  Json list = Json::array();
  list.push_back(nullptr);
  for (const TokenLogprobs& lp : lps) {
    Json entry = Json::object();
    entry[std::to_string(lp.chosen.token_id)] = {{"logprob", lp.chosen.logprob},
                                                 {"rank", lp.rank},
                                                 {"decoded_token", decoded(lp.chosen.token_id)}};
    for (size_t r = 0; r < lp.top.size(); ++r) {
      const TokenLogprob& alt = lp.top[r];
      entry[std::to_string(alt.token_id)] = {{"logprob", alt.logprob},
                                             {"rank", static_cast<int32_t>(r) + 1},
                                             {"decoded_token", decoded(alt.token_id)}};
    }
    list.push_back(std::move(entry));
  }
  return list;
}

Json ResponseBuilder::TakePromptPart(int32_t prompt_idx, const RequestEvent& event, Choice* c) {
  if (!request_.base.prompt_logprobs || c->prompt_part_done) return nullptr;
  c->prompt_part_done = true;
  c->prompt_logprobs = VllmPromptLogprobs(event.prompt_logprobs);
  return EchoesLogprobs() ? EchoLogprobs(prompt_idx, event.prompt_logprobs, c) : Json(nullptr);
}

void ResponseBuilder::Add(int32_t prompt_idx, const RequestEvent& event) {
  Choice& c = choices_[prompt_idx * request_.base.n + event.index];
  if (!request_.echo_only) {
    c.text += event.text;
    completion_tokens_ += static_cast<int32_t>(event.token_ids.size());
    if (request_.return_token_ids)
      c.token_ids.insert(c.token_ids.end(), event.token_ids.begin(), event.token_ids.end());
  }
  AppendLogprobs(TakePromptPart(prompt_idx, event, &c), &c.logprobs);
  if (!request_.echo_only) AppendLogprobs(EventLogprobs(event, &c), &c.logprobs);
  if (event.finish_reason == FinishReason::kError && failure_.ok()) failure_ = event.error;
  if (event.finish_reason != FinishReason::kNone) {
    c.finish = event.finish_reason;
    c.stop_reason = event.stop_reason;
    if (event.index == 0 && event.usage)
      cached_tokens_[prompt_idx] = event.usage->cached_prompt_tokens;
  }
}

Json ResponseBuilder::Usage() const {
  int32_t cached = 0;
  for (int32_t c : cached_tokens_) cached += c;
  return Json{{"prompt_tokens", prompt_tokens_},
              {"completion_tokens", completion_tokens_},
              {"total_tokens", prompt_tokens_ + completion_tokens_},
              {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

std::string ResponseBuilder::FinalBody() {
  const bool chat = request_.endpoint == Endpoint::kChat;
  Json choices = Json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    Json choice = {{"index", i}};
    bool called_tools = false;
    if (chat && request_.parse_tool_calls) {
      structured::ParsedToolCalls parsed = structured::ParseToolCalls(c.text);
      called_tools = !parsed.calls.empty();
      const std::string content = request_.chat_echo + parsed.content;
      choice["message"] = {{"role", "assistant"}, {"content", content}};
      if (called_tools) {
        if (content.empty()) choice["message"]["content"] = nullptr;
        choice["message"]["tool_calls"] = ToolCallsJson(parsed.calls);
      }
    } else if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", request_.chat_echo + c.text}};
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = std::move(c.logprobs);
    choice["finish_reason"] = FinishReasonJson(c.finish, called_tools);
    choice["stop_reason"] = c.stop_reason.empty() ? Json(nullptr) : Json(c.stop_reason);
    if (request_.return_token_ids) choice["token_ids"] = c.token_ids;
    if (!chat && !c.prompt_logprobs.is_null())
      choice["prompt_logprobs"] = std::move(c.prompt_logprobs);
    if (!chat && request_.return_token_ids)
      choice["prompt_token_ids"] = request_.prompts[i / request_.base.n];
    choices.push_back(std::move(choice));
  }
  Json body = {{"id", id_},
               {"object", chat ? "chat.completion" : "text_completion"},
               {"created", created_},
               {"model", request_.model},
               {"choices", std::move(choices)},
               {"usage", Usage()}};
  // vLLM puts a chat prompt's list beside the choices (they share the one prompt).
  if (chat && !choices_.empty() && !choices_[0].prompt_logprobs.is_null())
    body["prompt_logprobs"] = std::move(choices_[0].prompt_logprobs);
  if (chat && request_.return_token_ids) body["prompt_token_ids"] = request_.prompts[0];
  return Dump(body);
}

Json ResponseBuilder::ChunkEnvelope() const {
  const bool chat = request_.endpoint == Endpoint::kChat;
  Json j = {{"id", id_},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", request_.model},
            {"choices", Json::array()}};
  if (request_.include_usage) j["usage"] = request_.continuous_usage ? Usage() : Json(nullptr);
  return j;
}

void ResponseBuilder::AddPromptIds(int32_t prompt_idx, Choice* c, Json* chunk, Json* choice) {
  if (!request_.return_token_ids) return;
  if (request_.endpoint == Endpoint::kChat) {
    if (chat_prompt_ids_sent_) return;
    (*chunk)["prompt_token_ids"] = request_.prompts[prompt_idx];
    chat_prompt_ids_sent_ = true;
  } else if (!c->prompt_ids_sent) {
    (*choice)["prompt_token_ids"] = request_.prompts[prompt_idx];
    c->prompt_ids_sent = true;
  }
}

std::vector<std::string> ResponseBuilder::StreamChunks(int32_t prompt_idx,
                                                       const RequestEvent& event) {
  const bool chat = request_.endpoint == Endpoint::kChat;
  const int32_t index = prompt_idx * request_.base.n + event.index;
  Choice& c = choices_[index];
  std::vector<std::string> out;
  if (chat && !c.role_sent) {
    Json j = ChunkEnvelope();
    j["choices"].push_back({{"index", index},
                            {"delta", {{"role", "assistant"}, {"content", ""}}},
                            {"logprobs", nullptr},
                            {"finish_reason", nullptr}});
    AddPromptIds(prompt_idx, &c, &j, nullptr);
    out.push_back(Dump(j));
    c.role_sent = true;
    if (!request_.chat_echo.empty()) {  // the echoed message, in a chunk of its own (vLLM)
      Json e = ChunkEnvelope();
      e["choices"].push_back({{"index", index},
                              {"delta", {{"content", request_.chat_echo}}},
                              {"logprobs", nullptr},
                              {"finish_reason", nullptr}});
      out.push_back(Dump(e));
    }
  }
  std::string text = request_.echo_only ? std::string() : event.text;
  if (!chat && request_.echo && c.text_offset == 0 && !c.role_sent) {
    text = request_.prompt_texts[prompt_idx] + text;  // echo rides on the first chunk
    c.role_sent = true;
  }
  if (!request_.echo_only) completion_tokens_ += static_cast<int32_t>(event.token_ids.size());
  std::vector<structured::ToolCall> calls;
  if (chat && request_.parse_tool_calls) {
    structured::ToolCallStreamParser::Delta d = c.tool_parser.Feed(text);
    if (event.finish_reason != FinishReason::kNone) {
      structured::ToolCallStreamParser::Delta rest = c.tool_parser.Finish();
      d.content += rest.content;
      d.calls.insert(d.calls.end(), rest.calls.begin(), rest.calls.end());
    }
    text = std::move(d.content);
    calls = std::move(d.calls);
  }
  Json lp = TakePromptPart(prompt_idx, event, &c);
  if (!request_.echo_only) AppendLogprobs(EventLogprobs(event, &c), &lp);
  // With return_token_ids every event's tokens go out, in a chunk of their own if they show no
  // text yet (held back by a stop string or a tool call being parsed).
  const bool ids = request_.return_token_ids && !request_.echo_only && !event.token_ids.empty();
  if (!text.empty() || !lp.is_null() || ids) {
    Json j = ChunkEnvelope();
    Json choice = {{"index", index}};
    if (chat) {
      choice["delta"] = {{"content", text}};
    } else {
      choice["text"] = text;
    }
    choice["logprobs"] = std::move(lp);
    choice["finish_reason"] = nullptr;
    if (request_.return_token_ids) {
      choice["token_ids"] = request_.echo_only ? std::vector<int32_t>{} : event.token_ids;
    }
    AddPromptIds(prompt_idx, &c, &j, &choice);
    j["choices"].push_back(std::move(choice));
    out.push_back(Dump(j));
  }
  if (!calls.empty()) {
    Json j = ChunkEnvelope();
    j["choices"].push_back({{"index", index},
                            {"delta", {{"tool_calls", ToolCallsJson(calls)}}},
                            {"logprobs", nullptr},
                            {"finish_reason", nullptr}});
    out.push_back(Dump(j));
  }
  if (event.finish_reason != FinishReason::kNone) {
    c.finish = event.finish_reason;
    if (event.index == 0 && event.usage)
      cached_tokens_[prompt_idx] = event.usage->cached_prompt_tokens;
    Json j = ChunkEnvelope();
    Json choice = {{"index", index}};
    if (chat) {
      choice["delta"] = Json::object();
    } else {
      choice["text"] = "";
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = FinishReasonJson(event.finish_reason, c.tool_parser.num_calls() > 0);
    choice["stop_reason"] = event.stop_reason.empty() ? Json(nullptr) : Json(event.stop_reason);
    AddPromptIds(prompt_idx, &c, &j, &choice);
    j["choices"].push_back(std::move(choice));
    out.push_back(Dump(j));
  }
  if (event.finish_reason == FinishReason::kError) {
    // vLLM's stream names the failure in a chunk of its own, {"error": {...}}: the SDKs raise it.
    if (failure_.ok()) failure_ = event.error;
    out.push_back(ApiErrorFromStatus(event.error).Body());
  }
  return out;
}

std::optional<ApiError> ResponseBuilder::Failure() const {
  if (failure_.ok()) return std::nullopt;
  return ApiErrorFromStatus(failure_);
}

std::string ResponseBuilder::UsageChunk() const {
  Json j = ChunkEnvelope();
  j["usage"] = Usage();
  return Dump(j);
}

}  // namespace tinyserve
