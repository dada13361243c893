#include "tokenizer/tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/qwen25_files.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"
#include "util/read_file.h"

namespace tinyserve {
namespace {

using JsonDom = nlohmann::json;

// A special token given in tokenizer_config.json: a string, or {"content": ...}, or null.
std::optional<std::string> ConfigTokenText(const JsonDom& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const JsonDom& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return std::nullopt;
}

// doc[key], or null where doc is not an object or lacks key (a const operator[] on a missing key
// is undefined behaviour in nlohmann).
const JsonDom& Member(const JsonDom& doc, const char* key) {
  static const JsonDom kNull;
  if (!doc.is_object()) return kNull;
  const auto it = doc.find(key);
  return it == doc.end() ? kNull : *it;
}

// The string or boolean at doc[key]; "" / false for anything else (nlohmann's value() throws on
// a value of another type, and HF writes null for an unset option).
std::string StringAt(const JsonDom& doc, const char* key) {
  const JsonDom& v = Member(doc, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}
bool TrueAt(const JsonDom& doc, const char* key) {
  const JsonDom& v = Member(doc, key);
  return v.is_boolean() && v.get<bool>();
}
// Whether an option is given a value other than its default (absent, null, false or "").
bool OptionSet(const JsonDom& doc, const char* key) {
  const JsonDom& v = Member(doc, key);
  return !(v.is_null() || v == false || (v.is_string() && v.get_ref<const std::string&>().empty()));
}

// Checks that tokenizer.json describes what this tokenizer implements.
Status CheckPipeline(const JsonDom& doc) {
  const JsonDom& model = Member(doc, "model");
  if (!model.is_object() || StringAt(model, "type") != "BPE") {
    return UnimplementedError("tokenizer.json: only BPE models are supported");
  }
  const JsonDom& norm = Member(doc, "normalizer");
  if (!norm.is_null() && !(norm.is_object() && StringAt(norm, "type") == "NFC")) {
    return UnimplementedError("tokenizer.json: unsupported normalizer (only NFC)");
  }
  const JsonDom& pre = Member(doc, "pre_tokenizer");
  const std::string dump = pre.dump();
  // The Qwen2 split followed by byte-level mapping, as Qwen2/2.5/3 tokenizer.json files have.
  if (dump.find("\"type\":\"Split\"") == std::string::npos ||
      dump.find("\"type\":\"ByteLevel\"") == std::string::npos) {
    return UnimplementedError("tokenizer.json: pre-tokenizer is not the Qwen2 one");
  }
  const JsonDom& steps = Member(pre, "pretokenizers");
  for (const JsonDom& p : steps.is_array() ? steps : JsonDom::array()) {
    if (StringAt(p, "type") == "Split") {
      const std::string regex = StringAt(Member(p, "pattern"), "Regex");
      if (regex != kQwen2PretokenizerRegex) {
        return UnimplementedError("tokenizer.json: pre-tokenizer regex is not Qwen2's");
      }
    }
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDir(const std::string& dir) {
  TS_ASSIGN_OR_RETURN(std::string tokenizer_json, ReadFileToString(dir + "/tokenizer.json"));
  std::string config_json;
  if (auto config = ReadFileToString(dir + "/tokenizer_config.json"); config.ok()) {
    config_json = std::move(*config);
  }
  return FromJson(tokenizer_json, config_json);
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Qwen25FromNpmDir(const std::string& dir) {
  TS_ASSIGN_OR_RETURN(std::string tokenizer_json, Qwen25TokenizerJson(dir));
  return FromJson(tokenizer_json, Qwen25TokenizerConfigJson());
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                         std::string_view config_json) {
  TS_ASSIGN_OR_RETURN(TokenizerJsonParts file, ReadTokenizerJson(tokenizer_json));
  const JsonDom& doc = file.rest;
  if (!doc.is_object()) return InvalidArgumentError("tokenizer.json is not a JSON object");
  TS_RETURN_IF_ERROR(CheckPipeline(doc));
  const JsonDom& model = Member(doc, "model");
  if (!file.has_vocab || !file.has_merges) {
    return InvalidArgumentError("tokenizer.json: model lacks vocab or merges");
  }
  if (OptionSet(model, "byte_fallback") || OptionSet(model, "continuing_subword_prefix") ||
      OptionSet(model, "end_of_word_suffix") || OptionSet(model, "ignore_merges")) {
    return UnimplementedError("tokenizer.json: unsupported BPE options");
  }
  TokenizerParts parts;
  parts.vocab = std::move(file.vocab);
  parts.merges = std::move(file.merges);
  const JsonDom& added = Member(doc, "added_tokens");
  for (const JsonDom& a : added.is_array() ? added : JsonDom::array()) {
    const JsonDom& id = Member(a, "id");
    if (!id.is_number_integer() || !Member(a, "content").is_string()) {
      return InvalidArgumentError("tokenizer.json: bad added token");
    }
    if (id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) {
      return InvalidArgumentError("added token id {} out of range", id.dump());
    }
    if (OptionSet(a, "lstrip") || OptionSet(a, "rstrip") || OptionSet(a, "single_word") ||
        OptionSet(a, "normalized")) {
      return UnimplementedError("added token {}: lstrip/rstrip/single_word/normalized",
                                StringAt(a, "content"));
    }
    parts.added.push_back(
        {static_cast<int32_t>(id.get<int64_t>()), StringAt(a, "content"), TrueAt(a, "special")});
  }
  if (!config_json.empty()) {
    const JsonDom config = JsonDom::parse(config_json, nullptr, /*allow_exceptions=*/false);
    if (!config.is_object()) return InvalidArgumentError("tokenizer_config.json is not an object");
    auto id_of = [&](const char* key) -> std::optional<int32_t> {
      const auto text = ConfigTokenText(config, key);
      if (!text) return std::nullopt;
      for (const AddedToken& a : parts.added) {
        if (a.content == *text) return a.id;
      }
      return std::nullopt;
    };
    parts.bos_id = id_of("bos_token");
    parts.eos_id = id_of("eos_token");
    parts.pad_id = id_of("pad_token");
    if (config.contains("chat_template") && config["chat_template"].is_string()) {
      parts.chat_template = config["chat_template"].get<std::string>();
    }
  }
  return Build(std::move(parts));
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Build(TokenizerParts parts) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  size_t num_tokens = parts.vocab.size();
  for (const AddedToken& a : parts.added) {
    if (a.id < 0) return InvalidArgumentError("added token id {} < 0", a.id);
    if (a.content.empty()) return InvalidArgumentError("added token {} is empty", a.id);
    num_tokens = std::max(num_tokens, static_cast<size_t>(a.id) + 1);
  }
  t->token_bytes_.assign(num_tokens, std::string());
  t->kinds_.assign(num_tokens, kUnused);
  t->nfc_ = parts.nfc;
  t->vocab_ = std::move(parts.vocab);
  t->vocab_.resize(num_tokens);
  t->piece_to_id_.reserve(num_tokens);
  for (size_t id = 0; id < t->vocab_.size(); ++id) {
    if (t->vocab_[id].empty()) continue;
    auto bytes = ByteLevelDecode(t->vocab_[id]);
    if (!bytes) return InvalidArgumentError("token {} is not byte-level text", id);
    t->token_bytes_[id] = std::move(*bytes);
    t->kinds_[id] = kRegular;
    t->piece_to_id_.emplace(t->vocab_[id], static_cast<int32_t>(id));
  }
  for (const AddedToken& a : parts.added) {
    t->token_bytes_[a.id] = a.content;
    t->kinds_[a.id] = a.special ? kSpecial : kAdded;
    t->vocab_[a.id].clear();
    t->piece_to_id_[a.content] = a.id;
    t->first_byte_[static_cast<uint8_t>(a.content[0])] = true;
  }
  t->added_ = std::move(parts.added);
  t->added_trie_.assign(1, AddedTrieNode{});
  for (size_t i = 0; i < t->added_.size(); ++i) {
    int32_t node = 0;
    for (char c : t->added_[i].content) {
      const uint8_t byte = static_cast<uint8_t>(c);
      auto& next = t->added_trie_[node].next;
      auto it =
          std::find_if(next.begin(), next.end(), [&](const auto& e) { return e.first == byte; });
      if (it != next.end()) {
        node = it->second;
        continue;
      }
      const int32_t child = static_cast<int32_t>(t->added_trie_.size());
      t->added_trie_[node].next.emplace_back(byte, child);
      t->added_trie_.emplace_back();
      node = child;
    }
    if (t->added_trie_[node].added < 0) t->added_trie_[node].added = static_cast<int32_t>(i);
  }
  for (AddedTrieNode& n : t->added_trie_) std::sort(n.next.begin(), n.next.end());

  std::vector<BpeModel::Merge> merges;
  merges.reserve(parts.merges.size());
  for (size_t rank = 0; rank < parts.merges.size(); ++rank) {
    const auto& [left, right] = parts.merges[rank];
    auto l = t->piece_to_id_.find(left);
    auto r = t->piece_to_id_.find(right);
    auto m = t->piece_to_id_.find(left + right);
    if (l == t->piece_to_id_.end() || r == t->piece_to_id_.end() || m == t->piece_to_id_.end() ||
        t->kinds_[l->second] != kRegular || t->kinds_[r->second] != kRegular ||
        t->kinds_[m->second] != kRegular) {
      return InvalidArgumentError("merge {} ('{}' '{}') uses tokens not in the vocabulary", rank,
                                  left, right);
    }
    merges.push_back({l->second, r->second, m->second});
  }
  TS_ASSIGN_OR_RETURN(t->bpe_, BpeModel::Create(t->token_bytes_, merges));
  for (auto* id : {&parts.bos_id, &parts.eos_id, &parts.pad_id}) {
    if (*id && (**id < 0 || static_cast<size_t>(**id) >= num_tokens)) {
      return InvalidArgumentError("special token id {} out of range", **id);
    }
  }
  t->bos_id_ = parts.bos_id;
  t->eos_id_ = parts.eos_id;
  t->pad_id_ = parts.pad_id;
  t->chat_template_ = std::move(parts.chat_template);
  return t;
}

size_t Tokenizer::FindAdded(std::string_view text, size_t from, bool allow_special,
                            size_t* which) const {
  // A trie walk per position: the cost is text length x the longest added token, whatever the
  // number of added tokens (a hostile text of '<' against hundreds of them stays linear).
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) continue;
    int32_t node = 0, best = -1;
    for (size_t k = pos; k < text.size(); ++k) {
      const auto& next = added_trie_[node].next;
      const uint8_t byte = static_cast<uint8_t>(text[k]);
      auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(byte, int32_t{-1}));
      if (it == next.end() || it->first != byte) break;
      node = it->second;
      const int32_t a = added_trie_[node].added;
      if (a >= 0 && (allow_special || !added_[a].special)) best = a;  // longest wins
    }
    if (best >= 0) {
      *which = static_cast<size_t>(best);
      return pos;
    }
  }
  return std::string_view::npos;
}

void Tokenizer::EncodeOrdinary(std::string_view text, std::vector<int32_t>* ids) const {
  if (text.empty()) return;
  // NFC changes nothing when every code point is below U+0300 (lead bytes below 0xCC).
  std::string normalized;
  const bool needs_nfc = nfc_ && std::any_of(text.begin(), text.end(), [](char c) {
                           return static_cast<uint8_t>(c) >= 0xCC;
                         });
  if (needs_nfc) {
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                     static_cast<utf8proc_ssize_t>(text.size()), &out,
                     static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n >= 0) {
      normalized.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
      text = normalized;
    }
    std::free(out);
  }
  std::vector<std::string_view> pieces;
  pieces.reserve(text.size() / 3 + 1);
  Qwen2Pretokenize(text, &pieces);
  for (std::string_view piece : pieces) bpe_->Encode(piece, ids);
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool allow_special) const {
  std::string repaired;
  if (!IsValidUtf8(text)) {
    repaired = RepairUtf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t which = 0;
    const size_t found =
        added_.empty() ? std::string_view::npos : FindAdded(text, pos, allow_special, &which);
    if (found == std::string_view::npos) {
      EncodeOrdinary(text.substr(pos), &ids);
      break;
    }
    EncodeOrdinary(text.substr(pos, found - pos), &ids);
    ids.push_back(added_[which].id);
    pos = found + added_[which].content.size();
  }
  return ids;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= num_tokens()) continue;
    if (skip_special && kinds_[id] == kSpecial) continue;
    bytes += token_bytes_[id];
  }
  return IsValidUtf8(bytes) ? bytes : RepairUtf8(bytes);
}

std::string_view Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= num_tokens()) return {};
  return token_bytes_[id];
}

std::string Tokenizer::IdToPiece(int32_t id) const {
  if (id < 0 || id >= num_tokens()) return {};
  return kinds_[id] == kRegular ? vocab_[id] : token_bytes_[id];
}

std::optional<int32_t> Tokenizer::PieceToId(std::string_view piece) const {
  auto it = piece_to_id_.find(std::string(piece));
  if (it == piece_to_id_.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < num_tokens() && kinds_[id] == kSpecial;
}

bool Tokenizer::IsAdded(int32_t id) const {
  return id >= 0 && id < num_tokens() && (kinds_[id] == kSpecial || kinds_[id] == kAdded);
}

}  // namespace tinyserve
