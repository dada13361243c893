// `tinyserve tokenize`: prints the token ids and pieces of a text, or renders a chat
// conversation (JSON: messages, optional tools) with the Qwen2.5 template and tokenizes it.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace tinyserve::cli {
namespace {

struct TokenizeOptions {
  std::string model = "dummy:qwen2.5-0.5b";
  std::string text;
  std::string chat_file;
  bool plain_special = false;
};

StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::string& model) {
  if (model.starts_with("dummy:")) return Tokenizer::Qwen25FromNpmDir(QwenTokenizerDir());
  if (std::filesystem::is_directory(model)) return Tokenizer::FromDir(model);
  if (std::filesystem::is_regular_file(model)) return Tokenizer::FromGgufPath(model);
  return NotFoundError("no model directory or GGUF file at '{}'", model);
}

Status Run(const TokenizeOptions& o) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, LoadTokenizerFor(o.model));
  if (!tok->chat_template().empty() && !IsQwen25ChatTemplate(tok->chat_template())) {
    fmt::print(stderr, "warning: the model ships a different chat template; using Qwen2.5's\n");
  }
  std::string text = o.text;
  if (!o.chat_file.empty()) {
    std::ifstream in(o.chat_file);
    if (!in) return NotFoundError("cannot open {}", o.chat_file);
    std::stringstream buffer;
    buffer << in.rdbuf();
    const auto doc = nlohmann::ordered_json::parse(buffer.str(), nullptr, false);
    if (doc.is_discarded()) return InvalidArgumentError("{} is not JSON", o.chat_file);
    TS_ASSIGN_OR_RETURN(ChatConversation conv, ChatConversationFromJson(doc));
    TS_ASSIGN_OR_RETURN(text, RenderQwen25Chat(conv));
    fmt::print("prompt:\n{}\n---\n", text);
  }
  const std::vector<int32_t> ids = tok->Encode(text, /*allow_special=*/!o.plain_special);
  fmt::print("ids ({}): [{}]\n", ids.size(), fmt::join(ids, ", "));
  for (int32_t id : ids) {
    fmt::print("{:>7}  {}\n", id, nlohmann::json(tok->IdToPiece(id)).dump());
  }
  return OkStatus();
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "print token ids and pieces of a text or chat");
  cmd->add_option("--model", opts->model, "model directory, GGUF file or dummy:NAME");
  cmd->add_option("--chat", opts->chat_file, "JSON file {messages, tools?}: render and tokenize");
  cmd->add_flag("--plain-special", opts->plain_special, "encode special-token text as plain text");
  cmd->add_option("text", opts->text, "text to tokenize");
  cmd->callback([opts, exit_code] {
    if (opts->text.empty() == opts->chat_file.empty() && !opts->text.empty()) {
      fmt::print(stderr, "give either TEXT or --chat, not both\n");
      *exit_code = 2;
      return;
    }
    const Status s = Run(*opts);
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace tinyserve::cli
