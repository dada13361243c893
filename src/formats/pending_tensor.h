// A tensor a file writer (GgufWriter, SafetensorsWriter) holds until Write: its bytes copied
// (AddTensor) or borrowed from the caller, who keeps them alive until Write returns
// (AddTensorRef, for large weights that should not be copied).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "formats/dtype.h"

namespace tinyserve {

struct PendingTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> owned;         // the copy, when owns
  std::span<const uint8_t> borrowed;  // the caller's bytes, when !owns
  bool owns = false;

  static PendingTensor Copy(std::string name, DType dtype, std::vector<int64_t> shape,
                            std::span<const uint8_t> bytes) {
    PendingTensor t{std::move(name), dtype, std::move(shape), {}, {}, true};
    t.owned.assign(bytes.begin(), bytes.end());
    return t;
  }
  static PendingTensor Borrow(std::string name, DType dtype, std::vector<int64_t> shape,
                              std::span<const uint8_t> bytes) {
    return PendingTensor{std::move(name), dtype, std::move(shape), {}, bytes, false};
  }
  std::span<const uint8_t> bytes() const {
    return owns ? std::span<const uint8_t>(owned) : borrowed;
  }
};

}  // namespace tinyserve
