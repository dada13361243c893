#include <cmath>
#include <vector>

#include "kernels/convert.h"
#include "kernels/kv_quant.h"
#include "kernels/ref/ref.h"
#include "util/check.h"

namespace tinyserve::kernels::ref {

float LoadCacheElement(DType dtype, const void* base, int64_t idx) {
  switch (dtype) {
    case DType::kF32:
      return static_cast<const float*>(base)[idx];
    case DType::kF16:
      return Fp16ToF32(static_cast<const uint16_t*>(base)[idx]);
    case DType::kBF16:
      return Bf16ToF32(static_cast<const uint16_t*>(base)[idx]);
    default:
      TS_CHECK(false && "cache dtype must be f32, f16 or bf16");
  }
  return 0;
}

float LoadKv(const PagedKvLayer& layer, bool value, int64_t slot, int64_t kv_head, int64_t d) {
  const int64_t row = slot * layer.num_kv_heads + kv_head;
  const void* base = value ? layer.v : layer.k;
  if (layer.dtype != DType::kI8)
    return LoadCacheElement(layer.dtype, base, row * layer.head_dim + d);
  const float scale =
      Fp16ToF32((value ? layer.v_scale : layer.k_scale)[KvScaleIndex(layer, slot, kv_head)]);
  return DequantizeKv(static_cast<const int8_t*>(base)[row * layer.head_dim + d], scale);
}

namespace {

void StoreCacheElement(DType dtype, void* base, int64_t idx, float value) {
  switch (dtype) {
    case DType::kF32:
      static_cast<float*>(base)[idx] = value;
      return;
    case DType::kF16:
      static_cast<uint16_t*>(base)[idx] = F32ToFp16(value);
      return;
    case DType::kBF16:
      static_cast<uint16_t*>(base)[idx] = F32ToBf16(value);
      return;
    default:
      TS_CHECK(false && "cache dtype must be f32, f16 or bf16");
  }
}

}  // namespace

void WriteKv(const PagedKvLayer& layer, const float* k, const float* v, const int64_t* slot_mapping,
             int64_t num_tokens) {
  const int64_t row = int64_t{layer.num_kv_heads} * layer.head_dim;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t slot = slot_mapping[t];
    if (slot < 0) continue;
    if (layer.dtype == DType::kI8) {
      for (int64_t h = 0; h < layer.num_kv_heads; ++h) {
        const int64_t r = slot * layer.num_kv_heads + h;
        const int64_t src = (t * layer.num_kv_heads + h) * layer.head_dim;
        const int64_t dst = r * layer.head_dim;
        layer.k_scale[KvScaleIndex(layer, slot, h)] =
            QuantizeKvRow(k + src, layer.head_dim, static_cast<int8_t*>(layer.k) + dst);
        layer.v_scale[KvScaleIndex(layer, slot, h)] =
            QuantizeKvRow(v + src, layer.head_dim, static_cast<int8_t*>(layer.v) + dst);
      }
      continue;
    }
    for (int64_t i = 0; i < row; ++i) {
      StoreCacheElement(layer.dtype, layer.k, slot * row + i, k[t * row + i]);
      StoreCacheElement(layer.dtype, layer.v, slot * row + i, v[t * row + i]);
    }
  }
}

void PagedAttention(const float* q, const PagedKvLayer& layer, const AttentionBatch& batch,
                    int32_t num_heads, float scale, float* out) {
  const int64_t hd = layer.head_dim;
  const int64_t nkv = layer.num_kv_heads;
  const int64_t group = num_heads / nkv;
  for (int32_t s = 0; s < batch.num_seqs; ++s) {
    const int64_t q_begin = batch.query_start[s];
    const int64_t q_len = batch.query_start[s + 1] - q_begin;
    const int64_t ctx = batch.seq_lens[s];
    const int32_t* table = batch.block_tables + int64_t{s} * batch.max_blocks_per_seq;
    std::vector<double> scores(ctx);
    for (int64_t j = 0; j < q_len; ++j) {
      const int64_t pos = ctx - q_len + j;
      for (int64_t h = 0; h < num_heads; ++h) {
        const float* qv = q + ((q_begin + j) * num_heads + h) * hd;
        // An int8 cache's queries are rounded to 16 bits (kv_quant.h).
        std::vector<float> q_rounded;
        if (layer.dtype == DType::kI8) {
          std::vector<int8_t> qi(2 * hd);
          int32_t qsum = 0;
          const float qs = QuantizeQueryRow(qv, hd, qi.data(), &qsum);
          for (int64_t d = 0; d < hd; ++d)
            q_rounded.push_back(DequantizeQuery(qi.data(), hd, d, qs));
          qv = q_rounded.data();
        }
        const int64_t kvh = h / group;
        double mx = -INFINITY;
        for (int64_t p = 0; p <= pos; ++p) {
          const int64_t slot =
              int64_t{table[p / layer.block_size]} * layer.block_size + p % layer.block_size;
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) {
            dot += double{qv[d]} * LoadKv(layer, false, slot, kvh, d);
          }
          scores[p] = dot * scale;
          mx = std::fmax(mx, scores[p]);
        }
        double sum = 0;
        for (int64_t p = 0; p <= pos; ++p) {
          scores[p] = std::exp(scores[p] - mx);
          sum += scores[p];
        }
        float* o = out + ((q_begin + j) * num_heads + h) * hd;
        for (int64_t d = 0; d < hd; ++d) {
          double acc = 0;
          for (int64_t p = 0; p <= pos; ++p) {
            const int64_t slot =
                int64_t{table[p / layer.block_size]} * layer.block_size + p % layer.block_size;
            acc += scores[p] * LoadKv(layer, true, slot, kvh, d);
          }
          o[d] = static_cast<float>(acc / sum);
        }
      }
    }
  }
}

}  // namespace tinyserve::kernels::ref
