// libFuzzer target: SafetensorsFile::Open on arbitrary bytes (JSON header + data), then every
// accessor. Malformed files must give a Status, never a crash or out-of-bounds read.
#include <cstddef>
#include <cstdint>

#include "formats/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tinyserve::fuzz::MemFile file;
  file.Write(data, size);
  auto st = tinyserve::SafetensorsFile::Open(file.path());
  if (!st.ok()) return 0;
  volatile uint8_t sink = 0;
  for (const tinyserve::TensorView& t : st->tensors()) {
    (void)st->FindTensor(t.name);
    const auto* bytes = static_cast<const uint8_t*>(t.data);
    if (t.num_bytes > 0) sink = sink ^ bytes[0] ^ bytes[t.num_bytes - 1];
    (void)t.NumRows();
  }
  for (const auto& [key, value] : st->metadata()) sink = sink ^ static_cast<uint8_t>(value.size());
  return 0;
}
