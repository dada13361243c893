#include "tokenizer/qwen25_files.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "util/read_file.h"

namespace tinyserve {

// Copied character for character from Qwen/Qwen2.5-0.5B-Instruct tokenizer_config.json.
constexpr char kTemplateText[] = R"tmpl({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)tmpl";
const std::string_view kQwen25ChatTemplate(kTemplateText, sizeof(kTemplateText) - 1);

namespace {

constexpr int kFirstQwen3OnlyId = 151665;

struct Qwen25AddedToken {
  int id;
  const char* content;
  bool special;
};

// Qwen2.5's added tokens: control tokens are "special" (skipped by skip_special_tokens); the tool
// and FIM markers are added tokens the model writes as text.
constexpr Qwen25AddedToken kQwen25AddedTokens[] = {
    {151643, "<|endoftext|>", true},      {151644, "<|im_start|>", true},
    {151645, "<|im_end|>", true},         {151646, "<|object_ref_start|>", true},
    {151647, "<|object_ref_end|>", true}, {151648, "<|box_start|>", true},
    {151649, "<|box_end|>", true},        {151650, "<|quad_start|>", true},
    {151651, "<|quad_end|>", true},       {151652, "<|vision_start|>", true},
    {151653, "<|vision_end|>", true},     {151654, "<|vision_pad|>", true},
    {151655, "<|image_pad|>", true},      {151656, "<|video_pad|>", true},
    {151657, "<tool_call>", false},       {151658, "</tool_call>", false},
    {151659, "<|fim_prefix|>", false},    {151660, "<|fim_middle|>", false},
    {151661, "<|fim_suffix|>", false},    {151662, "<|fim_pad|>", false},
    {151663, "<|repo_name|>", false},     {151664, "<|file_sep|>", false},
};

// Returns the index one past the JSON value (object or string) that starts at `pos`, or npos.
size_t SkipJsonValue(std::string_view text, size_t pos) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = pos; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return i + 1;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

bool IsJsonSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

StatusOr<std::string> Qwen25TokenizerJson(const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  TS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));

  // Edit the text in place (rather than re-serialising 11 MB of JSON) so every other byte stays.
  const size_t key = text.find("\"added_tokens\"");
  if (key == std::string::npos) return InvalidArgumentError("{}: no added_tokens", path);
  size_t pos = text.find('[', key);
  if (pos == std::string::npos) return InvalidArgumentError("{}: bad added_tokens", path);
  ++pos;
  struct Span {
    size_t begin, end;
    bool drop;
  };
  std::vector<Span> spans;
  while (true) {
    while (pos < text.size() && (IsJsonSpace(text[pos]) || text[pos] == ',')) ++pos;
    if (pos >= text.size()) return InvalidArgumentError("{}: truncated added_tokens", path);
    if (text[pos] == ']') break;
    if (text[pos] != '{') return InvalidArgumentError("{}: bad added_tokens entry", path);
    const size_t end = SkipJsonValue(text, pos);
    if (end == std::string_view::npos) return InvalidArgumentError("{}: truncated JSON", path);
    const auto entry =
        nlohmann::json::parse(text.begin() + pos, text.begin() + end, nullptr, false);
    if (entry.is_discarded() || !entry.contains("id") || !entry["id"].is_number_integer()) {
      return InvalidArgumentError("{}: added token without an integer id", path);
    }
    spans.push_back({pos, end, entry["id"].get<int64_t>() >= kFirstQwen3OnlyId});
    pos = end;
  }
  for (size_t i = spans.size(); i-- > 0;) {
    if (!spans[i].drop) continue;
    // Take the separator before the entry (or after it, for the first one) with it.
    if (i > 0) {
      text.erase(spans[i - 1].end, spans[i].end - spans[i - 1].end);
    } else if (spans.size() > 1) {
      text.erase(spans[0].begin, spans[1].begin - spans[0].begin);
    } else {
      text.erase(spans[0].begin, spans[0].end - spans[0].begin);
    }
  }
  return text;
}

std::string Qwen25TokenizerConfigJson() {
  using Json = nlohmann::ordered_json;
  Json decoder = Json::object();
  Json additional = Json::array();
  for (const Qwen25AddedToken& token : kQwen25AddedTokens) {
    decoder[std::to_string(token.id)] =
        Json{{"content", token.content}, {"lstrip", false},      {"normalized", false},
             {"rstrip", false},          {"single_word", false}, {"special", token.special}};
    if (token.special && token.id != 151643) additional.push_back(token.content);
  }
  Json config = Json::object();
  config["add_bos_token"] = false;
  config["add_prefix_space"] = false;
  config["added_tokens_decoder"] = std::move(decoder);
  config["additional_special_tokens"] = std::move(additional);
  config["bos_token"] = nullptr;
  config["chat_template"] = std::string(kQwen25ChatTemplate);
  config["clean_up_tokenization_spaces"] = false;
  config["eos_token"] = "<|im_end|>";
  config["errors"] = "replace";
  config["model_max_length"] = 131072;
  config["pad_token"] = "<|endoftext|>";
  config["split_special_tokens"] = false;
  config["tokenizer_class"] = "Qwen2Tokenizer";
  config["unk_token"] = nullptr;
  return config.dump(2) + "\n";
}

}  // namespace tinyserve
