// A non-owning view of one stored tensor: bytes (usually inside a memory-mapped file), element
// type and shape. Shapes are row-major, outermost dimension first ([rows, cols] for a weight
// matrix of shape [out_features, in_features]), whatever order the file format lists them in.
// The owner of the bytes (a GgufFile, SafetensorsFile or Model) must outlive the view.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/dtype.h"

namespace tinyserve {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // outermost first
  const void* data = nullptr;
  uint64_t num_bytes = 0;

  int64_t NumElements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  // Elements per row (the innermost dimension); 1 for a scalar.
  int64_t RowLength() const { return shape.empty() ? 1 : shape.back(); }
  int64_t NumRows() const { return RowLength() == 0 ? 0 : NumElements() / RowLength(); }
};

}  // namespace tinyserve
