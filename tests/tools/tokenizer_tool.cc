// Drives the tokenizer for tests/node/tokenizer_hf.test.mjs and benchmarks/tokenizer_bench.sh.
//   tokenizer_tool dump-qwen25 NPM_DIR OUT_DIR  Qwen2.5 tokenizer.json + tokenizer_config.json
//   tokenizer_tool batch SPEC IN OUT          IN: JSON lines {"hex": bytes, "allow_special": b}
//       OUT: {"ids", "decoded_hex", "decoded_skip_hex", "stream_ok", "stream_error"}
//   tokenizer_tool vocab SPEC OUT             per id: {"decoded_hex", "bytes_hex", "special"}
//   tokenizer_tool chat SPEC IN OUT           IN: {"cases": [{messages, tools?, ...}]}
//   tokenizer_tool bench SPEC IN [SECONDS]    IN: JSON lines {"name", "hex"}; prints MB/s of
//       encode (cached, uncached) and of pre-tokenization (scanner vs PCRE2) as JSON
// SPEC: qwen25-npm:DIR (Qwen2.5 from the npm files), dir:DIR, gguf:PATH.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/pretokenizer_pcre2.h"
#include "tokenizer/qwen25_files.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/paths.h"

namespace tinyserve {
namespace {

using Json = nlohmann::ordered_json;

std::string Hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    out.push_back(kDigits[static_cast<uint8_t>(c) >> 4]);
    out.push_back(kDigits[static_cast<uint8_t>(c) & 15]);
  }
  return out;
}

std::string Unhex(std::string_view hex) {
  std::string out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
  }
  return out;
}

StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& spec) {
  if (spec.starts_with("qwen25-npm:")) return Tokenizer::Qwen25FromNpmDir(spec.substr(11));
  if (spec.starts_with("dir:")) return Tokenizer::FromDir(spec.substr(4));
  if (spec.starts_with("gguf:")) return Tokenizer::FromGgufPath(spec.substr(5));
  return InvalidArgumentError("unknown tokenizer spec '{}'", spec);
}

// Streams `ids` through the incremental detokenizer and checks, at every prefix length k, that
// what was emitted so far plus a flush equals the full decode of ids[0, k).
std::string CheckStreaming(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  IncrementalDetokenizer stream(tok, skip);
  std::string emitted;
  std::string prefix_bytes;
  for (size_t k = 0; k < ids.size(); ++k) {
    emitted += stream.Push(ids[k]);
    if (!(skip && tok.IsSpecial(ids[k]))) prefix_bytes += tok.TokenBytes(ids[k]);
    IncrementalDetokenizer copy = stream;
    const std::string flushed = emitted + copy.Flush();
    if (flushed != RepairUtf8(prefix_bytes)) return fmt::format("prefix {} differs", k + 1);
  }
  emitted += stream.Flush();
  if (emitted != tok.Decode(ids, skip)) return "full stream differs from Decode";
  return "";
}

int Batch(const Tokenizer& tok, const std::string& in_path, const std::string& out_path) {
  std::ifstream in(in_path);
  std::ofstream out(out_path);
  std::string line;
  while (std::getline(in, line)) {
    const Json c = Json::parse(line);
    const std::string text = Unhex(c["hex"].get<std::string>());
    const std::vector<int32_t> ids = tok.Encode(text, c.value("allow_special", true));
    std::string error = CheckStreaming(tok, ids, false);
    if (error.empty()) error = CheckStreaming(tok, ids, true);
    Json r;
    r["ids"] = ids;
    r["decoded_hex"] = Hex(tok.Decode(ids));
    r["decoded_skip_hex"] = Hex(tok.Decode(ids, /*skip_special=*/true));
    r["stream_ok"] = error.empty();
    r["stream_error"] = error;
    out << r.dump() << std::endl;
  }
  return 0;
}

int Vocab(const Tokenizer& tok, const std::string& out_path) {
  std::ofstream out(out_path);
  for (int32_t id = 0; id < tok.num_tokens(); ++id) {
    const int32_t one[] = {id};
    Json r;
    r["decoded_hex"] = Hex(tok.Decode(one));
    r["bytes_hex"] = Hex(tok.TokenBytes(id));
    r["piece"] = tok.IdToPiece(id);
    r["special"] = tok.IsSpecial(id);
    out << r.dump() << "\n";
  }
  return 0;
}

int Chat(const Tokenizer& tok, const std::string& in_path, const std::string& out_path) {
  std::ifstream in(in_path);
  const Json doc = Json::parse(in);
  std::ofstream out(out_path);
  for (const Json& c : doc["cases"]) {
    Json r;
    auto conversation = ChatConversationFromJson(c);
    if (!conversation.ok()) {
      r["error"] = conversation.status().ToString();
    } else {
      auto prompt = RenderQwen25Chat(*conversation);
      if (!prompt.ok()) {
        r["error"] = prompt.status().ToString();
      } else {
        r["prompt"] = *prompt;
        r["ids"] = tok.Encode(*prompt);
      }
    }
    out << r.dump() << "\n";
  }
  return 0;
}

// MB/s of `fn(text)` run for at least `seconds` (after one warm-up call).
template <typename Fn>
double Throughput(const std::string& text, double seconds, Fn fn) {
  fn(text);
  size_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    fn(text);
    bytes += text.size();
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  return bytes / elapsed / 1e6;
}

int Bench(const Tokenizer& tok, const std::string& in_path, double seconds) {
  auto pcre = Pcre2Pretokenizer::Create();
  if (!pcre.ok()) return 1;
  auto uncached = Tokenizer::Qwen25FromNpmDir(QwenTokenizerDir());
  std::ifstream in(in_path);
  std::string line;
  Json results = Json::object();
  while (std::getline(in, line)) {
    const Json c = Json::parse(line);
    const std::string text = Unhex(c["hex"].get<std::string>());
    Json r;
    r["bytes"] = text.size();
    r["tokens"] = tok.Encode(text).size();
    r["encode_mb_per_s"] = Throughput(text, seconds, [&](const std::string& t) { tok.Encode(t); });
    if (uncached.ok()) {
      (*uncached)->set_cache_capacity(0);
      r["encode_no_cache_mb_per_s"] =
          Throughput(text, seconds, [&](const std::string& t) { (*uncached)->Encode(t); });
    }
    std::vector<std::string_view> pieces;
    r["pretokenize_scanner_mb_per_s"] = Throughput(text, seconds, [&](const std::string& t) {
      pieces.clear();
      Qwen2Pretokenize(t, &pieces);
    });
    r["pretokenize_pcre2_mb_per_s"] = Throughput(text, seconds, [&](const std::string& t) {
      pieces.clear();
      (*pcre)->Split(t, &pieces);
    });
    results[c["name"].get<std::string>()] = r;
  }
  std::cout << results.dump() << "\n";
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: see the header of tests/tools/tokenizer_tool.cc\n";
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "dump-qwen25") {
    if (argc != 4) return 2;
    std::filesystem::create_directories(argv[3]);
    auto json = Qwen25TokenizerJson(argv[2]);
    if (!json.ok()) {
      std::cerr << json.status().ToString() << "\n";
      return 1;
    }
    std::ofstream(std::string(argv[3]) + "/tokenizer.json") << *json;
    std::ofstream(std::string(argv[3]) + "/tokenizer_config.json") << Qwen25TokenizerConfigJson();
    return 0;
  }
  auto tok = Load(argv[2]);
  if (!tok.ok()) {
    std::cerr << tok.status().ToString() << "\n";
    return 1;
  }
  if (mode == "batch" && argc == 5) return Batch(**tok, argv[3], argv[4]);
  if (mode == "vocab" && argc == 4) return Vocab(**tok, argv[3]);
  if (mode == "chat" && argc == 5) return Chat(**tok, argv[3], argv[4]);
  if (mode == "bench" && argc >= 4)
    return Bench(**tok, argv[3], argc > 4 ? std::stod(argv[4]) : 1.0);
  std::cerr << "bad arguments\n";
  return 2;
}

}  // namespace
}  // namespace tinyserve

int main(int argc, char** argv) { return tinyserve::Main(argc, argv); }
