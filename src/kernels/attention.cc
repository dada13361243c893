// PagedAttention driver: splits the batch into (sequence, KV head, query tile) work items, walks
// each sequence's block table a step of whole blocks (about kStepKeys keys) at a time, converts
// the step's K/V rows to f32 (or, on AVX-512 for small tiles, points at them in the cache) and
// folds them into the online-softmax state of all query heads of the KV head's group (the per-ISA
// AttendBlock).
#include "kernels/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/convert.h"
#include "kernels/cpu/cpu_kernels.h"
#include "util/check.h"

namespace tinyserve::kernels {
namespace cpu::scalar {

void AttendBlock(const AttendBlockArgs& a) {
  const int64_t hd = a.head_dim;
  for (int32_t i = 0; i < a.num_q; ++i) {
    const int32_t nv = std::min(a.num_valid[i], a.n);
    if (nv <= 0) continue;
    const float* qi = a.q + i * hd;
    float block_max = -INFINITY;
    for (int32_t t = 0; t < nv; ++t) {
      const float* kt = a.k + t * hd;
      float dot = 0;
      for (int64_t d = 0; d < hd; ++d) dot += qi[d] * kt[d];
      a.scores[t] = dot * a.scale;
      block_max = std::fmax(block_max, a.scores[t]);
    }
    const float new_max = std::fmax(a.max[i], block_max);
    const float correction = a.max[i] == -INFINITY ? 0.0f : std::exp(a.max[i] - new_max);
    float block_sum = 0;
    for (int32_t t = 0; t < nv; ++t) {
      a.scores[t] = std::exp(a.scores[t] - new_max);
      block_sum += a.scores[t];
    }
    a.sum[i] = a.sum[i] * correction + block_sum;
    a.max[i] = new_max;
    float* acc = a.acc + i * hd;
    for (int64_t d = 0; d < hd; ++d) {
      float x = acc[d] * correction;
      for (int32_t t = 0; t < nv; ++t) x += a.scores[t] * a.v[t * hd + d];
      acc[d] = x;
    }
  }
}

}  // namespace cpu::scalar

namespace {

// Query rows per work item. A tile of kTileRows rows x (num_heads / num_kv_heads) heads shares
// each converted K/V block; the tiling never changes the arithmetic of a row (see AttendBlock).
constexpr int32_t kTileRows = 8;

// Keys per online-softmax step: whole blocks, as many as fit (at least one). Step s covers blocks
// [s * B, (s + 1) * B) whatever the batch, so a query's steps, and so its arithmetic, depend only
// on its position. Longer steps spread the per-step max / rescale work over more keys.
constexpr int32_t kStepKeys = 64;

int32_t BlocksPerStep(int32_t block_size) { return std::max(1, kStepKeys / block_size); }

struct WorkItem {
  int32_t seq;
  int32_t kv_head;
  int32_t row_begin;  // rows within the sequence's query rows
  int32_t row_end;
};

int64_t ElementBytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

// Scratch of one thread, sized for the largest tile.
struct Scratch {
  std::vector<float> q, acc, max, sum, k, v, scores;
  std::vector<int32_t> num_valid;
  std::vector<const void*> k_rows, v_rows;
  Scratch(int64_t max_q, int64_t head_dim, int64_t step_keys)
      : q(max_q * head_dim),
        acc(max_q * head_dim),
        max(max_q),
        sum(max_q),
        k(step_keys * head_dim),
        v(step_keys * head_dim),
        scores((step_keys + 15) / 16 * 16),
        num_valid(max_q),
        k_rows(step_keys),
        v_rows(step_keys) {}
};

// rows: the ISA's AttendBlock reads rows through AttendBlockArgs::k_rows / v_rows (AVX-512);
// for small tiles (direct) they point into the cache, otherwise at the step's f32 rows.
void RunItem(const cpu::CpuKernels& kern, bool rows, const WorkItem& item, const float* q,
             const PagedKvLayer& layer, const AttentionBatch& batch, int32_t num_heads, float scale,
             float* out, Scratch& sc) {
  const int64_t hd = layer.head_dim;
  const int64_t bs = layer.block_size;
  const int64_t nkv = layer.num_kv_heads;
  const int64_t group = num_heads / nkv;
  const int64_t q_begin = batch.query_start[item.seq];
  const int64_t q_len = batch.query_start[item.seq + 1] - q_begin;
  const int64_t first_pos = batch.seq_lens[item.seq] - q_len;
  const int32_t* table = batch.block_tables + int64_t{item.seq} * batch.max_blocks_per_seq;
  const int64_t num_rows = item.row_end - item.row_begin;
  const int64_t num_q = num_rows * group;
  // Many queries (prefill tiles) reuse each row often enough that converting it once is cheaper.
  const bool direct = rows && num_q <= 16;

  for (int64_t r = 0; r < num_rows; ++r) {
    const float* src = q + ((q_begin + item.row_begin + r) * num_heads + item.kv_head * group) * hd;
    std::memcpy(sc.q.data() + r * group * hd, src, group * hd * sizeof(float));
  }
  std::fill(sc.max.begin(), sc.max.begin() + num_q, -INFINITY);
  std::fill(sc.sum.begin(), sc.sum.begin() + num_q, 0.0f);
  std::fill(sc.acc.begin(), sc.acc.begin() + num_q * hd, 0.0f);

  const int64_t elem = ElementBytes(layer.dtype);
  const auto* k_base = static_cast<const uint8_t*>(layer.k);
  const auto* v_base = static_cast<const uint8_t*>(layer.v);
  const int64_t last_pos = first_pos + item.row_end - 1;
  const int64_t step_blocks = BlocksPerStep(layer.block_size);
  for (int64_t b0 = 0; b0 * bs <= last_pos; b0 += step_blocks) {
    const int64_t step_start = b0 * bs;
    const int64_t n = std::min(step_blocks * bs, last_pos + 1 - step_start);
    cpu::AttendBlockArgs args;
    for (int64_t bb = 0, t = 0; t < n; ++bb) {
      const int64_t block_row = int64_t{table[b0 + bb]} * bs;
      for (int64_t in_block = 0; in_block < bs && t < n; ++in_block, ++t) {
        const int64_t offset = ((block_row + in_block) * nkv + item.kv_head) * hd * elem;
        if (direct) {
          sc.k_rows[t] = k_base + offset;
          sc.v_rows[t] = v_base + offset;
        } else {
          kern.to_f32(layer.dtype, k_base + offset, sc.k.data() + t * hd, hd);
          kern.to_f32(layer.dtype, v_base + offset, sc.v.data() + t * hd, hd);
          sc.k_rows[t] = sc.k.data() + t * hd;
          sc.v_rows[t] = sc.v.data() + t * hd;
        }
      }
    }
    if (rows) {
      args.k_rows = sc.k_rows.data();
      args.v_rows = sc.v_rows.data();
      args.rows_dtype = direct ? layer.dtype : DType::kF32;
    }
    for (int64_t r = 0; r < num_rows; ++r) {
      const int64_t pos = first_pos + item.row_begin + r;
      const int32_t visible = static_cast<int32_t>(std::clamp<int64_t>(pos - step_start + 1, 0, n));
      for (int64_t j = 0; j < group; ++j) sc.num_valid[r * group + j] = visible;
    }
    args.q = sc.q.data();
    args.num_valid = sc.num_valid.data();
    args.num_q = static_cast<int32_t>(num_q);
    args.k = sc.k.data();
    args.v = sc.v.data();
    args.n = static_cast<int32_t>(n);
    args.head_dim = static_cast<int32_t>(hd);
    args.scale = scale;
    args.max = sc.max.data();
    args.sum = sc.sum.data();
    args.acc = sc.acc.data();
    args.scores = sc.scores.data();
    kern.attend_block(args);
  }

  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t j = 0; j < group; ++j) {
      const int64_t qi = r * group + j;
      const float inv = 1.0f / sc.sum[qi];
      float* dst =
          out + ((q_begin + item.row_begin + r) * num_heads + item.kv_head * group + j) * hd;
      for (int64_t d = 0; d < hd; ++d) dst[d] = sc.acc[qi * hd + d] * inv;
    }
  }
}

}  // namespace

void WriteKv(const PagedKvLayer& layer, const float* k, const float* v, const int64_t* slot_mapping,
             int64_t num_tokens) {
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
      case DType::kF16: {
        uint16_t* kd = static_cast<uint16_t*>(layer.k) + slot * row;
        uint16_t* vd = static_cast<uint16_t*>(layer.v) + slot * row;
        for (int64_t i = 0; i < row; ++i) kd[i] = F32ToFp16(ks[i]);
        for (int64_t i = 0; i < row; ++i) vd[i] = F32ToFp16(vs[i]);
        break;
      }
      case DType::kBF16: {
        uint16_t* kd = static_cast<uint16_t*>(layer.k) + slot * row;
        uint16_t* vd = static_cast<uint16_t*>(layer.v) + slot * row;
        for (int64_t i = 0; i < row; ++i) kd[i] = F32ToBf16(ks[i]);
        for (int64_t i = 0; i < row; ++i) vd[i] = F32ToBf16(vs[i]);
        break;
      }
      default:
        TS_CHECK(false && "cache dtype must be f32, f16 or bf16");
    }
  }
}

void PagedAttention(Isa isa, const float* q, const PagedKvLayer& layer, const AttentionBatch& batch,
                    int32_t num_heads, float scale, float* out, ThreadPool* pool) {
  const cpu::CpuKernels& kern = cpu::KernelsFor(isa);
  TS_CHECK(layer.num_kv_heads > 0 && num_heads % layer.num_kv_heads == 0);
  TS_CHECK(layer.block_size >= 1);
  const int32_t group = num_heads / layer.num_kv_heads;
  // Only the AVX-512 kernel reads rows through pointers, and so the cache directly (saves a
  // store and reload of every row).
  const bool rows = isa == Isa::kAvx512;
  std::vector<WorkItem> items;
  for (int32_t s = 0; s < batch.num_seqs; ++s) {
    const int32_t q_len = batch.query_start[s + 1] - batch.query_start[s];
    TS_CHECK(q_len <= batch.seq_lens[s]);
    for (int32_t r = 0; r < q_len; r += kTileRows) {
      for (int32_t g = 0; g < layer.num_kv_heads; ++g) {
        items.push_back({s, g, r, std::min(q_len, r + kTileRows)});
      }
    }
  }
  const int64_t max_q = int64_t{kTileRows} * group;
  const int64_t step_keys = int64_t{BlocksPerStep(layer.block_size)} * layer.block_size;
  const int num_threads = pool == nullptr ? 1 : pool->num_threads();
  if (num_threads == 1 || items.size() <= 1) {
    Scratch sc(max_q, layer.head_dim, step_keys);
    for (const WorkItem& item : items) {
      RunItem(kern, rows, item, q, layer, batch, num_heads, scale, out, sc);
    }
    return;
  }
  // Items are claimed dynamically (they differ in cost with context length); each writes only
  // its own output rows and computes them the same way on any thread.
  std::atomic<size_t> next{0};
  pool->Run([&](int) {
    Scratch sc(max_q, layer.head_dim, step_keys);
    for (size_t i = next.fetch_add(1); i < items.size(); i = next.fetch_add(1)) {
      RunItem(kern, rows, items[i], q, layer, batch, num_heads, scale, out, sc);
    }
  });
}

void PagedAttention(const float* q, const PagedKvLayer& layer, const AttentionBatch& batch,
                    int32_t num_heads, float scale, float* out, ThreadPool* pool) {
  PagedAttention(BestIsa(), q, layer, batch, num_heads, scale, out, pool);
}

}  // namespace tinyserve::kernels
