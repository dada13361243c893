// The KV cache's writes (attention.h): WriteKv stores rows into their slots, converting to the
// cache type (int8: quantized per slot and KV head, kv_quant.h); RopeStoreKv fuses the rotary
// embedding of q and k with that store, one parallel pass over the tokens.
#include <cstring>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/cpu_kernels.h"
#include "util/check.h"

namespace tinyserve::kernels {
namespace {

// WriteKv with the rows converted (f16, bf16) or quantized (int8) by `kern`: the same bytes on
// every ISA.
void StoreRows(const cpu::CpuKernels& kern, const PagedKvLayer& layer, const float* k,
               const float* v, const int64_t* slot_mapping, int64_t num_tokens) {
  const int64_t row = int64_t{layer.num_kv_heads} * layer.head_dim;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t slot = slot_mapping[t];
    if (slot < 0) continue;
    TS_CHECK(slot < layer.num_blocks * layer.block_size);
    const float* ks = k + t * row;
    const float* vs = v + t * row;
    switch (layer.dtype) {
      case DType::kF32:
        std::memcpy(static_cast<float*>(layer.k) + slot * row, ks, row * sizeof(float));
        std::memcpy(static_cast<float*>(layer.v) + slot * row, vs, row * sizeof(float));
        break;
      case DType::kF16:
      case DType::kBF16:
        kern.from_f32(layer.dtype, ks, static_cast<uint16_t*>(layer.k) + slot * row, row);
        kern.from_f32(layer.dtype, vs, static_cast<uint16_t*>(layer.v) + slot * row, row);
        break;
      case DType::kI8: {
        const int64_t hd = layer.head_dim;
        for (int64_t h = 0; h < layer.num_kv_heads; ++h) {
          const int64_t r = slot * layer.num_kv_heads + h;
          const int64_t si = KvScaleIndex(layer, slot, h);
          layer.k_scale[si] =
              kern.quantize_kv(ks + h * hd, hd, static_cast<int8_t*>(layer.k) + r * hd);
          layer.v_scale[si] =
              kern.quantize_kv(vs + h * hd, hd, static_cast<int8_t*>(layer.v) + r * hd);
        }
        break;
      }
      default:
        TS_CHECK(false && "cache dtype must be f32, f16, bf16 or i8");
    }
  }
}

}  // namespace

void WriteKv(const PagedKvLayer& layer, const float* k, const float* v, const int64_t* slot_mapping,
             int64_t num_tokens) {
  StoreRows(cpu::KernelsFor(BestIsa()), layer, k, v, slot_mapping, num_tokens);
}

void RopeStoreKv(Isa isa, const float* q, const float* k, const float* v, int64_t q_stride,
                 int64_t kv_stride, int64_t num_tokens, int32_t num_heads, const float* cos_sin,
                 const PagedKvLayer& layer, const int64_t* slot_mapping, float* q_out,
                 ThreadPool* pool) {
  const cpu::CpuKernels& kern = cpu::KernelsFor(isa);
  const int64_t hd = layer.head_dim;
  const int64_t q_dim = num_heads * hd, kv_dim = int64_t{layer.num_kv_heads} * hd;
  auto run = [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> k_row;
    if (static_cast<int64_t>(k_row.size()) < kv_dim) k_row.resize(kv_dim);
    for (int64_t t = begin; t < end; ++t) {
      const float* cs = cos_sin + t * hd;
      float* qo = q_out + t * q_dim;
      if (qo != q + t * q_stride) std::memcpy(qo, q + t * q_stride, q_dim * sizeof(float));
      kern.rope_neox(qo, cs, 1, num_heads, hd);
      if (slot_mapping[t] < 0) continue;
      std::memcpy(k_row.data(), k + t * kv_stride, kv_dim * sizeof(float));
      kern.rope_neox(k_row.data(), cs, 1, layer.num_kv_heads, hd);
      StoreRows(kern, layer, k_row.data(), v + t * kv_stride, slot_mapping + t, 1);
    }
  };
  // A few tokens per thread at least: below that the fork-join costs more than the work.
  constexpr int64_t kMinTokens = 4;
  if (pool == nullptr || pool->num_threads() == 1 || num_tokens < 2 * kMinTokens) {
    run(0, num_tokens);
    return;
  }
  pool->ParallelFor(num_tokens, kMinTokens, [&](int64_t b, int64_t e, int) { run(b, e); });
}

void RopeStoreKv(const float* q, const float* k, const float* v, int64_t q_stride,
                 int64_t kv_stride, int64_t num_tokens, int32_t num_heads, const float* cos_sin,
                 const PagedKvLayer& layer, const int64_t* slot_mapping, float* q_out,
                 ThreadPool* pool) {
  RopeStoreKv(BestIsa(), q, k, v, q_stride, kv_stride, num_tokens, num_heads, cos_sin, layer,
              slot_mapping, q_out, pool);
}

}  // namespace tinyserve::kernels
