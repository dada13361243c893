#include "kernels/ref/matmul_ref.h"

#include <vector>

#include "kernels/quant_formats.h"

namespace tinyserve::kernels {

void MatMulReference(const TensorView& w, const float* x, int64_t num_rows, const float* bias,
                     float* out) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const uint64_t row_bytes = *RowBytes(w.dtype, cols);
  std::vector<float> row(cols);
  for (int64_t n = 0; n < rows; ++n) {
    DequantizeRow(w.dtype, static_cast<const uint8_t*>(w.data) + n * row_bytes, row.data(), cols);
    for (int64_t m = 0; m < num_rows; ++m) {
      double acc = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < cols; ++k) acc += double{row[k]} * x[m * cols + k];
      out[m * rows + n] = static_cast<float>(acc);
    }
  }
}

}  // namespace tinyserve::kernels
