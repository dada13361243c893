// libFuzzer target: the Qwen2.5 tokenizer on arbitrary text. Encode must not crash on any bytes;
// for valid UTF-8, decoding the ids and encoding again is a fixed point (text is NFC-normalised
// once, so a second round trip changes nothing), and text encoded with allow_special=false never
// yields a special token (user text must not become control tokens).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/paths.h"

namespace {

const tinyserve::Tokenizer* tokenizer = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  auto t = tinyserve::Tokenizer::Qwen25FromNpmDir(tinyserve::QwenTokenizerDir());
  if (!t.ok()) {
    std::fprintf(stderr, "tokenizer_fuzzer: %s (run scripts/setup.sh)\n",
                 t.status().ToString().c_str());
    std::abort();
  }
  tokenizer = t->release();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)tokenizer->Encode(text, /*allow_special=*/true);
  const std::vector<int32_t> ids = tokenizer->Encode(text, /*allow_special=*/false);
  for (int32_t id : ids) {
    if (tokenizer->IsSpecial(id)) {
      std::fprintf(stderr, "ordinary text produced special token %d\n", id);
      std::abort();
    }
  }
  const std::string once = tokenizer->Decode(ids);
  if (!tinyserve::IsValidUtf8(text)) return 0;
  const std::string twice = tokenizer->Decode(tokenizer->Encode(once, /*allow_special=*/false));
  if (twice != once) {
    std::fprintf(stderr, "round trip changed the text: %zu bytes -> %zu bytes\n", once.size(),
                 twice.size());
    std::abort();
  }
  return 0;
}
