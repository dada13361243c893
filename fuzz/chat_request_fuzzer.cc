// libFuzzer target: an untrusted request body through the OpenAI request parser (chat and
// completions: JSON, validation, chat template render, tokenization), through the /v1/responses
// and /v1/messages translations into a chat body (each then parsed as one), and, separately, the
// chat conversation reader and renderer. Every input must give a request or an ApiError/Status.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "server/anthropic_messages.h"
#include "server/openai_api.h"
#include "server/openai_responses.h"
#include "structured/json_limits.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace {

tinyserve::ApiContext context;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  auto t = tinyserve::Tokenizer::Qwen25FromNpmDir(tinyserve::QwenTokenizerDir());
  if (!t.ok()) {
    std::fprintf(stderr, "chat_request_fuzzer: %s (run scripts/setup.sh)\n",
                 t.status().ToString().c_str());
    std::abort();
  }
  context.tokenizer = t->release();
  context.served_model_name = "tiny";
  context.vocab_size = context.tokenizer->num_tokens();
  context.max_model_len = 2048;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)tinyserve::ParseRequest(tinyserve::Endpoint::kChat, body, context);
  (void)tinyserve::ParseRequest(tinyserve::Endpoint::kCompletions, body, context);
  // The template renderer on its own, for conversations the request parser would reject early.
  // Nesting is checked first as the server does before building values from a body.
  if (!tinyserve::structured::CheckJsonNesting(body, "body").ok()) return 0;
  const auto j = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  for (auto chat : {tinyserve::ResponsesToChatBody(j), tinyserve::MessagesToChatBody(j)}) {
    if (const auto* chat_body = std::get_if<nlohmann::ordered_json>(&chat))
      (void)tinyserve::ParseRequest(tinyserve::Endpoint::kChat, chat_body->dump(), context);
  }
  auto conversation = tinyserve::ChatConversationFromJson(j);
  if (conversation.ok()) (void)tinyserve::RenderQwen25Chat(*conversation);
  return 0;
}
