// Portable MatMul kernels (no ISA flags): the fallback for CPUs without AVX2, and the plain
// statement of the quantized algorithm of matmul_internal.h that the SIMD paths reproduce bit
// for bit (same integer dot products, same fused multiply-adds in the same order).
#include <cmath>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/matmul_internal.h"

namespace tinyserve::kernels {
namespace {

void QuantizeActsScalar(const float* x, int64_t ldx, int64_t row_begin, int64_t row_end,
                        int64_t col_begin, int64_t col_end, const QuantTraits& traits,
                        QuantizedActs* acts) {
  int8_t q[kActBlock];
  for (int64_t m = row_begin; m < row_end; ++m) {
    const float* xr = x + (m - row_begin) * ldx;
    int32_t sums[2] = {0, 0};  // per 16 values
    for (int64_t blk = col_begin / kActBlock; blk < col_end / kActBlock; ++blk) {
      const float* xb = xr + blk * kActBlock - col_begin;
      float amax = 0;
      for (int i = 0; i < kActBlock; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
      const float id = amax == 0 ? 0.0f : 127.0f / amax;
      const float sx = amax / 127.0f;
      acts->sx[acts->SxIndex(m, blk)] = sx;
      sums[0] = sums[1] = 0;
      for (int i = 0; i < kActBlock; ++i) {
        q[i] = static_cast<int8_t>(std::nearbyint(xb[i] * id));
        sums[i / 16] += q[i];
      }
      for (int c = 0; c < kActBlock / 4; ++c)
        std::memcpy(&acts->xq[acts->XqIndex(m, blk * 32 + c * 4)], q + c * 4, 4);
      StoreBlockSums(traits, sx, sums[0], sums[1], m, blk, acts);
    }
  }
}

void QuantKernelScalar(const PackedMatrix::Impl& w, const QuantizedActs& acts, int64_t g_begin,
                       int64_t g_end, int64_t m_begin, int64_t m_end, const float* bias,
                       OutTile out) {
  const int sub = w.traits.sub_block;
  for (int64_t g = g_begin; g < g_end; ++g) {
    const uint8_t* group = w.Group(g);
    for (int r = 0; r < kGroupRows; ++r) {
      const int64_t n = g * kGroupRows + r;
      if (n >= w.rows) break;
      for (int64_t m = m_begin; m < m_end; ++m) {
        float acc = 0;
        for (int64_t b = 0; b < w.num_sub; ++b) {
          const uint8_t* rec = group + b * w.record_bytes;
          int32_t dot = acts.init[acts.SubIndex(m, b)];
          for (int c = 0; c < sub / 4; ++c) {
            const int8_t* xq = &acts.xq[acts.XqIndex(m, b * sub + c * 4)];
            for (int i = 0; i < 4; ++i) dot += w.Quant(rec, r, c, i) * xq[i];
          }
          const float sx = acts.sx[acts.SxIndex(m, b * sub / kActBlock)];
          acc = std::fma(static_cast<float>(dot), w.Scale(g, b, r) * sx, acc);
          if (w.traits.has_min)
            acc = std::fma(w.Scale(g, b, kGroupRows + r), acts.xsum[acts.SubIndex(m, b)], acc);
        }
        *out.At(m, n) = bias ? acc + bias[n] : acc;
      }
    }
  }
}

float LoadWeight(DType type, const void* row, int64_t k) {
  switch (type) {
    case DType::kF16:
      return Fp16ToF32(static_cast<const uint16_t*>(row)[k]);
    case DType::kBF16:
      return Bf16ToF32(static_cast<const uint16_t*>(row)[k]);
    default:
      return static_cast<const float*>(row)[k];
  }
}

void FloatKernelScalar(const PackedMatrix::Impl& w, const float* x, int64_t n_begin, int64_t n_end,
                       int64_t m_begin, int64_t m_end, const float* bias, float* out) {
  const int64_t elem = w.dtype == DType::kF32 ? 4 : 2;
  for (int64_t n = n_begin; n < n_end; ++n) {
    const void* row = static_cast<const uint8_t*>(w.float_data) + n * w.cols * elem;
    for (int64_t m = m_begin; m < m_end; ++m) {
      const float* xr = x + m * w.cols;
      float acc = 0;
      for (int64_t k = 0; k < w.cols; ++k) acc += LoadWeight(w.dtype, row, k) * xr[k];
      out[m * w.rows + n] = bias ? acc + bias[n] : acc;
    }
  }
}

}  // namespace

MatMulKernels ScalarKernels() { return {QuantizeActsScalar, QuantKernelScalar, FloatKernelScalar}; }

}  // namespace tinyserve::kernels
