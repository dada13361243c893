// libFuzzer target: GgufFile::Open on arbitrary bytes, then every accessor over what it parsed.
// Malformed files must give a Status, never a crash, hang or out-of-bounds read.
#include <cstddef>
#include <cstdint>

#include "formats/gguf.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tinyserve::fuzz::MemFile file;
  file.Write(data, size);
  auto gguf = tinyserve::GgufFile::Open(file.path());
  if (!gguf.ok()) return 0;
  for (const auto& [key, value] : gguf->metadata()) {
    (void)gguf->GetString(key);
    (void)gguf->GetUint(key);
    (void)gguf->GetFloat(key);
    (void)gguf->GetBool(key);
  }
  volatile uint8_t sink = 0;
  for (const tinyserve::TensorView& t : gguf->tensors()) {
    (void)gguf->FindTensor(t.name);
    // The reader promises every tensor's bytes lie inside the mapping: touch both ends.
    const auto* bytes = static_cast<const uint8_t*>(t.data);
    if (t.num_bytes > 0) sink = sink ^ bytes[0] ^ bytes[t.num_bytes - 1];
    (void)t.NumRows();
  }
  return 0;
}
