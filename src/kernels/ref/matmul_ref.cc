#include "kernels/ref/matmul_ref.h"

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/convert.h"
#include "kernels/quant_formats.h"

namespace tinyserve::kernels {
namespace {

// Denormals (and -0) read as +-0, as the bf16 instructions read their inputs.
float DenormalsAsZero(float v) {
  return std::fabs(v) < std::numeric_limits<float>::min() ? std::copysign(0.0f, v) : v;
}

float Bf16Operand(uint16_t h) { return DenormalsAsZero(Bf16ToF32(h)); }

// acc + a * b with a * b exact (bf16 operands: 8 x 8 significant bits), rounded once to f32
// (nearest even), a denormal result flushed to zero.
float DotStep(float acc, float a, float b) { return DenormalsAsZero(std::fma(a, b, acc)); }

}  // namespace

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

uint16_t RoundActivationToBf16(float x) { return F32ToBf16(DenormalsAsZero(x)); }

void MatMulReferenceBf16Acts(const TensorView& w, const float* x, int64_t num_rows,
                             const float* bias, float* out) {
  const int64_t cols = w.shape[1];
  std::vector<float> rounded(num_rows * cols);
  for (int64_t i = 0; i < num_rows * cols; ++i) rounded[i] = Bf16ToF32(RoundActivationToBf16(x[i]));
  MatMulReference(w, rounded.data(), num_rows, bias, out);
}

void MatMulBf16DotModel(const TensorView& w, const float* x, int64_t num_rows, const float* bias,
                        float* out) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const int64_t padded = (cols + 1) / 2 * 2;
  std::vector<float> xb(num_rows * padded, 0.0f), wb(padded, 0.0f);
  for (int64_t m = 0; m < num_rows; ++m)
    for (int64_t k = 0; k < cols; ++k)
      xb[m * padded + k] = Bf16Operand(RoundActivationToBf16(x[m * cols + k]));
  const auto* wbits = static_cast<const uint16_t*>(w.data);
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t k = 0; k < cols; ++k) wb[k] = Bf16Operand(wbits[n * cols + k]);
    for (int64_t m = 0; m < num_rows; ++m) {
      const float* xr = xb.data() + m * padded;
      float acc = 0.0f;
      for (int64_t k = 0; k < padded; k += 2) {
        acc = DotStep(acc, wb[k + 1], xr[k + 1]);
        acc = DotStep(acc, wb[k], xr[k]);
      }
      out[m * rows + n] = bias ? acc + bias[n] : acc;
    }
  }
}

}  // namespace tinyserve::kernels
