// ApiServer's token-counting routes: /tokenize and /detokenize (vLLM's fields, and llama-server's
// spellings of them), the token ids the generation routes would use for a text or chat and back;
// /v1/messages/count_tokens, Anthropic's count of a Messages request's prompt.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/anthropic_messages.h"
#include "server/http_server.h"
#include "server/json_replies.h"
#include "tokenizer/chat_template_json.h"  // ParseUntrustedJson
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace tinyserve {
namespace {
using Json = nlohmann::ordered_json;
}  // namespace

void ApiServer::HandleTokenize(HttpRequest& req, HttpResponder& res) {
  auto parsed_body = ParseUntrustedJson(req.body);
  std::string().swap(req.body);
  if (!parsed_body.ok())
    return SendError(res, BadRequest("the request body is not acceptable JSON: " +
                                     parsed_body.status().message()));
  const Json& j = *parsed_body;
  if (!j.is_object()) return SendError(res, BadRequest("the request body must be a JSON object"));
  auto flag = [&](const char* name, bool fallback) -> std::optional<bool> {
    if (!j.contains(name) || j[name].is_null()) return fallback;
    if (!j[name].is_boolean()) return std::nullopt;
    return j[name].get<bool>();
  };
  const auto return_strs = flag("return_token_strs", false);
  if (!return_strs)
    return SendError(res, BadRequest("'return_token_strs' must be a boolean", "return_token_strs"));
  // llama-server's spellings too: the text as 'content', special-token text parsed unless
  // 'parse_special' is false, and 'with_pieces' (tokens as {id, piece} objects).
  const auto parse_special = flag("parse_special", true);
  const auto with_pieces = flag("with_pieces", false);
  if (!parse_special || !with_pieces)
    return SendError(res, BadRequest("'parse_special' and 'with_pieces' must be booleans"));
  const char* text_key = j.contains("prompt") ? "prompt" : "content";
  std::vector<int32_t> ids;
  if (j.contains(text_key) && j[text_key].is_string()) {
    ids = tokenizer_->Encode(j[text_key].get<std::string>(), *parse_special);
  } else if (j.contains("messages")) {
    // The prompt the chat endpoint would build (tools, developer role and all).
    auto prompt = ParseChatPrompt(std::move(*parsed_body), api_context_);  // j's last use
    if (auto* err = std::get_if<ApiError>(&prompt)) return SendError(res, *err);
    ids = std::move(std::get<std::vector<int32_t>>(prompt));
  } else {
    return SendError(res, BadRequest("'prompt' (a string; llama-server's 'content') or "
                                     "'messages' is required",
                                     "prompt"));
  }
  // The answer is bounded by the context, not by the body: nothing longer can be served.
  if (static_cast<int64_t>(ids.size()) > api_context_.max_model_len)
    return SendError(res, BadRequest(fmt::format("the input has {} tokens, more than the maximum "
                                                 "model length of {}",
                                                 ids.size(), api_context_.max_model_len),
                                     "prompt"));
  Json out = {
      {"count", ids.size()}, {"max_model_len", api_context_.max_model_len}, {"tokens", ids}};
  if (*with_pieces) {
    // As llama-server: a token's text, or its bytes as numbers when they are not UTF-8 alone.
    Json tokens = Json::array();
    for (int32_t id : ids) {
      const std::string_view bytes = tokenizer_->TokenBytes(id);
      Json piece = std::string(bytes);
      if (!IsValidUtf8(bytes)) {
        piece = Json::array();
        for (char c : bytes) piece.push_back(static_cast<uint8_t>(c));
      }
      tokens.push_back({{"id", id}, {"piece", std::move(piece)}});
    }
    out["tokens"] = std::move(tokens);
  }
  if (*return_strs) {
    Json strs = Json::array();
    for (int32_t id : ids) strs.push_back(tokenizer_->IdToPiece(id));
    out["token_strs"] = std::move(strs);
  }
  SendJson(res, out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void ApiServer::HandleDetokenize(HttpRequest& req, HttpResponder& res) {
  auto parsed_body = ParseUntrustedJson(req.body);
  std::string().swap(req.body);
  if (!parsed_body.ok() || !parsed_body->is_object() || !parsed_body->contains("tokens") ||
      !(*parsed_body)["tokens"].is_array())
    return SendError(res, BadRequest("'tokens' (a list of token ids) is required", "tokens"));
  const Json& tokens = (*parsed_body)["tokens"];
  if (static_cast<int64_t>(tokens.size()) > api_context_.max_model_len)
    return SendError(res, BadRequest("'tokens' is longer than the maximum model length", "tokens"));
  std::vector<int32_t> ids;
  for (const Json& t : tokens) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() >= tokenizer_->num_tokens())
      return SendError(res, BadRequest("'tokens' holds an id outside the vocabulary", "tokens"));
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  // 'prompt' as vLLM answers, 'content' as llama-server does.
  const std::string text = tokenizer_->Decode(ids);
  SendJson(res, Json{{"prompt", text}, {"content", text}}.dump(
                    -1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void ApiServer::HandleCountTokens(HttpRequest& req, HttpResponder& res) {
  auto fail = [&](const ApiError& error) { SendError(res, error, {}, ErrorShape::kAnthropic); };
  auto body = ParseUntrustedJson(req.body);
  std::string().swap(req.body);
  if (!body.ok())
    return fail(BadRequest("the request body is not acceptable JSON: " + body.status().message()));
  auto chat = MessagesToChatBody(*body, /*count_only=*/true);
  if (auto* error = std::get_if<ApiError>(&chat)) return fail(*error);
  // The prompt /v1/messages would build (system, tools and all), counted.
  auto prompt = ParseChatPrompt(std::move(std::get<Json>(chat)), api_context_);
  if (auto* error = std::get_if<ApiError>(&prompt)) return fail(MessagesError(*error));
  SendJson(res, Json{{"input_tokens", std::get<std::vector<int32_t>>(prompt).size()}}.dump());
}

}  // namespace tinyserve
