// PagedAttention driver: splits the batch into (sequence, KV head, query tile, KV partition) work
// items, walks each partition of a sequence's block table a step of whole blocks (about kStepKeys
// keys) at a time, converts the step's K/V rows to f32 (or, on AVX-512 for small tiles, points
// at them in the cache) and folds them into the online-softmax state of all query heads of the
// KV head's group (the per-ISA AttendBlock); partitions of a long context are merged exactly
// (flash-decoding).
#include "kernels/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kv_quant.h"
#include "util/check.h"

namespace tinyserve::kernels {
namespace {

// Query rows per work item. A tile of kTileRows rows x (num_heads / num_kv_heads) heads shares
// each converted K/V block; the tiling never changes the arithmetic of a row (see AttendBlock).
constexpr int32_t kTileRows = 8;

// Keys per online-softmax step: whole blocks, as many as fit (at least one). Step s covers blocks
// [s * B, (s + 1) * B) whatever the batch, so a query's steps, and so its arithmetic, depend only
// on its position (and the cache's type and the ISA, fixed for a run). Longer steps spread the
// per-step max / rescale work and the driver's per-step work over more keys. The integer paths
// (int8 rows, AVX2 and AVX-512) take 128 (their sub-step): int8 decode 1 x 8192, one layer,
// 0.171 -> 0.154 ms at 64 -> 128 keys (bench_ops --threads 1 --decode, Zen 5), no gain at 256;
// the float paths keep 64, their grouped kernels' limit (simd::kGroupMaxKeys).
constexpr int32_t kStepKeys = 64;
constexpr int32_t kIntDotStepKeys = 128;

// Keys per partition (flash-decoding): a context longer than one partition is split into
// partitions [p * P, (p + 1) * P) of whole steps, each folded from a fresh state into a partial
// softmax state; the partials are merged in partition order. Partition bounds depend only on
// positions, never on the thread count or the batch, so neither changes a result; a query that
// sees only the first partition gets exactly the unsplit result (merging one state multiplies
// by exp(0) = 1). A decode row's partitions are separate work items (so one long sequence keeps
// every thread busy); a prefill tile, which has parallelism in its rows, folds its partitions
// one after another in one item with the same arithmetic (and bounded scratch). 1,024, not 512:
// each partition costs a fresh state, a merge and often a short last step (int8 decode 6-10%
// faster, bench_ops --threads 2 --decode on Zen 5; 2,048 gained nothing more).
constexpr int32_t kPartitionKeys = 1024;

int32_t BlocksPerStep(int32_t block_size, bool int8_dots) {
  return std::max(1, (int8_dots ? kIntDotStepKeys : kStepKeys) / block_size);
}

// kPartitionKeys rounded up to whole steps of step_blocks blocks.
int64_t PartKeys(int32_t block_size, int32_t step_blocks) {
  const int64_t step_keys = int64_t{step_blocks} * block_size;
  return (kPartitionKeys + step_keys - 1) / step_keys * step_keys;
}

struct WorkItem {
  int32_t seq;
  int32_t kv_head;
  int32_t row_begin;  // rows within the sequence's query rows
  int32_t row_end;
  int32_t part_begin;  // partitions [part_begin, part_end) of the tile's num_parts
  int32_t part_end;
  int32_t num_parts;
  int32_t group;  // split group of a decode row's partition items; -1 otherwise
};

// A (sequence, KV head) decode row whose partitions are separate items.
struct SplitGroup {
  int64_t partial_offset;  // floats into the partials buffer: num_parts x num_q x (hd + 2)
  int32_t num_parts;
};

int64_t ElementBytes(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kI8:
      return 1;
    default:
      return 2;
  }
}

// Scratch of one thread, grown to the largest tile seen (kept between calls: no allocation per
// step once warm).
struct Scratch {
  std::vector<float> q, acc, max, sum, k, v, scores, k_scales, v_scales;
  std::vector<float> partials;  // a prefill tile's partition states
  std::vector<int32_t> num_valid;
  std::vector<int8_t> q_i8;  // an int8 cache's queries rounded to 16 bits (two int8 rows each),
                             // their scales and sums
  std::vector<float> q_scales;
  std::vector<int32_t> q_sums;
  std::vector<const void*> k_rows, v_rows;
  std::vector<LineRun> prefetch;  // Prefetcher's runs
  // Which queries q / q_i8 hold: a decode row's partition items on one thread (claimed one
  // after another) reuse them instead of rounding the same rows again.
  struct Prepared {
    uint64_t call_id = 0;
    int32_t seq = -1, kv_head = -1, row_begin = -1, row_end = -1;
    bool operator==(const Prepared&) const = default;
  } prepared;
  void Ensure(int64_t max_q, int64_t head_dim, int64_t step_keys) {
    if (static_cast<int64_t>(q.size()) >= max_q * head_dim &&
        static_cast<int64_t>(k.size()) >= step_keys * head_dim &&
        static_cast<int64_t>(k_rows.size()) >= step_keys) {
      return;
    }
    q.resize(max_q * head_dim);
    acc.resize(max_q * head_dim);
    max.resize(max_q);
    sum.resize(max_q);
    k.resize(step_keys * head_dim);
    v.resize(step_keys * head_dim);
    scores.resize((step_keys + 15) / 16 * 16);
    k_scales.resize(step_keys);
    v_scales.resize(step_keys);
    num_valid.resize(max_q);
    q_i8.resize(2 * max_q * head_dim);
    q_scales.resize(max_q);
    q_sums.resize(max_q);
    k_rows.resize(step_keys);
    v_rows.resize(step_keys);
  }
};

Scratch& ThreadScratch(const PagedKvLayer& layer, int64_t max_q, int64_t step_keys) {
  thread_local Scratch sc;
  sc.Ensure(max_q, layer.head_dim, step_keys);
  return sc;
}

// The engine thread's per-call lists, reused between calls.
struct Plan {
  std::vector<WorkItem> items;
  std::vector<SplitGroup> groups;
  std::vector<float> partials;
  std::unique_ptr<std::atomic<int32_t>[]> remaining;
  size_t remaining_size = 0;
};

struct Context {
  const cpu::CpuKernels& kern;
  bool rows;
  bool int8_dots;       // AVX2 / AVX-512 read int8 rows with integer dots in tiles of any size
  int32_t step_blocks;  // BlocksPerStep
  const float* q;
  const PagedKvLayer& layer;
  const AttentionBatch& batch;
  int32_t num_heads;
  float scale;
  float* out;
  Plan& plan;
  uint64_t call_id;  // distinct for every PagedAttention call (Scratch::prepared)
};

// Merges an item's partition states (base: num_parts x num_q x [max, sum, acc[hd]]) in
// partition order and writes its output rows.
void MergeParts(const Context& c, const WorkItem& item, const float* base) {
  const int64_t hd = c.layer.head_dim;
  const int64_t group = c.num_heads / c.layer.num_kv_heads;
  const int64_t num_q = int64_t{item.row_end - item.row_begin} * group;
  const int64_t stride = num_q * (hd + 2);
  const int64_t q_begin = c.batch.query_start[item.seq];
  for (int64_t qi = 0; qi < num_q; ++qi) {
    float m = -INFINITY;
    for (int32_t p = 0; p < item.num_parts; ++p) m = std::fmax(m, base[p * stride + qi * (hd + 2)]);
    const int64_t r = qi / group, j = qi % group;
    float* dst =
        c.out + ((q_begin + item.row_begin + r) * c.num_heads + item.kv_head * group + j) * hd;
    float sum = 0;
    for (int64_t d = 0; d < hd; ++d) dst[d] = 0;
    for (int32_t p = 0; p < item.num_parts; ++p) {
      const float* st = base + p * stride + qi * (hd + 2);
      if (st[1] == 0) continue;  // the query saw no key of this partition
      const float w = std::exp(st[0] - m);
      sum += st[1] * w;
      for (int64_t d = 0; d < hd; ++d) dst[d] += st[2 + d] * w;
    }
    const float inv = 1.0f / sum;
    for (int64_t d = 0; d < hd; ++d) dst[d] *= inv;
  }
}

// Lists the K/V rows (and int8 scales) of the step a thread reads kAheadSteps after the current
// one, for the kernel to request into L2 through its value loop (AttendBlockArgs::prefetch).
// Decode attention reads each row once, from memory when the context is long (the matmuls
// between layers evict it); waiting on each miss in turn, one core read ~3.5 GB/s (bench_ops "24
// layers" cases). The cursor runs on into the next item the thread has claimed, so only a
// thread's first item starts on cold steps. L2, not L1: a step's rows, the next ones and the f16
// path's transposed keys would not fit in L1 together. Measured with bench_ops on Sapphire Rapids:
// the f16 path gained ~20% from memory. The int8 integer path, first measured there to lose a
// few % on cached contexts and left without, gained on Zen 4 (2 threads, alternating pairs):
// 64 x 576 over 24 layers 1.16 / 1.06 / 1.03 -> 0.88 / 0.83 / 0.74 ms, 1 x 8192 over 24 layers
// 0.27 / 0.24 / 0.22 -> 0.21 / 0.18 / 0.17 ms, and `bench throughput` N = 64's decode phase
// 420 / 392 -> 469 / 475 tok/s (attention 21% -> 15% of the step); cached 1 x 4096 lost ~0.02 ms.
// Decode reads from memory, so every path takes it. Requesting a step's lines here in one burst
// instead gained nothing (an earlier version did so, but GCC 12 had deleted that prefetch loop
// unseen, see kernels/prefetch.h; made real, 64 x 576 int8 and f16 over 24 layers ran as fast as
// without). Prefetches change no result.
class Prefetcher {
 public:
  static constexpr int kAheadSteps = 2;
  explicit Prefetcher(std::vector<LineRun>& runs) : runs_(runs) {}
  // Called as item (claimed before next) starts: a cursor short of it (the thread's first item)
  // restarts kAheadSteps - 1 steps into it.
  void Start(const Context& c, const WorkItem& item, const WorkItem* next) {
    next_ = next;
    if (cur_.item == &item) return;
    cur_ = First(c, item);
    for (int s = 1; s < kAheadSteps; ++s) Move(c);
  }
  // At the start of each of the kernel's steps: runs() lists num_runs() runs of num_lines() lines
  // in all for AttendBlockArgs::prefetch (possibly none), valid until the next call.
  void Advance(const Context& c) {
    num_runs_ = num_lines_ = 0;
    if (Move(c)) List(c, cur_);
  }
  const LineRun* runs() const { return runs_.data(); }
  int32_t num_runs() const { return num_runs_; }
  int32_t num_lines() const { return num_lines_; }

 private:
  struct Cursor {
    const WorkItem* item = nullptr;
    int64_t part = 0, b0 = 0;  // the step's partition and first block; part == part_end: past it
  };
  // Moves the cursor one step on (past its item's end, into next_); false when there is none.
  bool Move(const Context& c) {
    if (cur_.item == nullptr) return false;
    const int64_t bs = c.layer.block_size;
    if (cur_.part < cur_.item->part_end) {
      cur_.b0 += c.step_blocks;
      if (cur_.b0 * bs >= PartEnd(c, *cur_.item, cur_.part) && ++cur_.part < cur_.item->part_end)
        cur_.b0 = cur_.part * PartKeys(c.layer.block_size, c.step_blocks) / bs;
    }
    if (cur_.part == cur_.item->part_end) {
      if (next_ == nullptr || cur_.item == next_) return false;
      cur_ = First(c, *next_);
    }
    return true;
  }
  static int64_t PartEnd(const Context& c, const WorkItem& w, int64_t part) {
    const int64_t q_len = c.batch.query_start[w.seq + 1] - c.batch.query_start[w.seq];
    const int64_t keys = c.batch.seq_lens[w.seq] - q_len + w.row_end;
    return std::min(keys, (part + 1) * PartKeys(c.layer.block_size, c.step_blocks));
  }
  static Cursor First(const Context& c, const WorkItem& w) {
    return {&w, w.part_begin,
            w.part_begin * PartKeys(c.layer.block_size, c.step_blocks) / c.layer.block_size};
  }
  // The cache lines of the cursor's step, written to runs_ (grown once, then written through a
  // pointer), per block one run per 64 bytes of a K or V row (a head's rows of the block, `stride`
  // apart) and an int8 cache's two lines of scales. Only locals in the loops (GCC lets a stored
  // pointer alias any pointer field it would otherwise read again). Listing each line instead (a
  // pointer per K and V row line) took about an eighth of a cached int8 decode step (bench_ops
  // --threads 1 --decode, Zen 5: the list built but not issued, 1 x 8192 0.152 ms and 64 x 576
  // 0.75 ms; not built at all, 0.137 and 0.685).
  void List(const Context& c, const Cursor& cur) {
    const PagedKvLayer& layer = c.layer;
    const WorkItem& w = *cur.item;
    const int64_t bs = layer.block_size, nkv = layer.num_kv_heads, kv_head = w.kv_head;
    const int64_t row_bytes = layer.head_dim * ElementBytes(layer.dtype);
    const int64_t stride = nkv * row_bytes;  // between a head's rows of adjacent slots
    const size_t most = c.step_blocks * (2 * ((row_bytes + 63) / 64) + 2);
    if (runs_.size() < most) runs_.resize(most);
    LineRun* out = runs_.data();
    const int32_t* table = c.batch.block_tables + int64_t{w.seq} * c.batch.max_blocks_per_seq;
    const int64_t end = PartEnd(c, w, cur.part);
    const auto* k_base = static_cast<const char*>(layer.k);
    const auto* v_base = static_cast<const char*>(layer.v);
    const bool int8 = layer.dtype == DType::kI8;
    const auto* k_scale = reinterpret_cast<const char*>(layer.k_scale);
    const auto* v_scale = reinterpret_cast<const char*>(layer.v_scale);
    const int64_t b_end = std::min<int64_t>(cur.b0 + c.step_blocks, (end + bs - 1) / bs);
    int64_t lines = 0;
    for (int64_t b = cur.b0; b < b_end; ++b) {
      const int64_t block = table[b];
      const int32_t keys = static_cast<int32_t>(std::min(bs, end - b * bs));
      const int64_t first = (block * bs * nkv + kv_head) * row_bytes;
      for (int64_t o = 0; o < row_bytes; o += 64) {
        out[0] = {k_base + first + o, stride, keys};
        out[1] = {v_base + first + o, stride, keys};
        out += 2;
        lines += 2 * keys;
      }
      if (int8) {
        const int64_t scales = KvBlockScaleIndex(layer, block, kv_head) * 2;
        out[0] = {k_scale + scales, 0, 1};
        out[1] = {v_scale + scales, 0, 1};
        out += 2;
        lines += 2;
      }
    }
    num_runs_ = static_cast<int32_t>(out - runs_.data());
    num_lines_ = static_cast<int32_t>(lines);
  }
  std::vector<LineRun>& runs_;
  int32_t num_runs_ = 0, num_lines_ = 0;  // listed
  Cursor cur_;
  const WorkItem* next_ = nullptr;
};

// rows: the ISA's AttendBlock reads rows through AttendBlockArgs::k_rows / v_rows (AVX2, AVX-512);
// for small tiles (direct) they point into the cache, otherwise at the step's f32 rows.
void RunItem(const Context& c, const WorkItem& item, const WorkItem* next, Scratch& sc,
             Prefetcher& ahead) {
  const PagedKvLayer& layer = c.layer;
  const AttentionBatch& batch = c.batch;
  const int64_t hd = layer.head_dim;
  const int64_t bs = layer.block_size;
  const int64_t nkv = layer.num_kv_heads;
  const int64_t group = c.num_heads / nkv;
  const int64_t q_begin = batch.query_start[item.seq];
  const int64_t q_len = batch.query_start[item.seq + 1] - q_begin;
  const int64_t first_pos = batch.seq_lens[item.seq] - q_len;
  const int32_t* table = batch.block_tables + int64_t{item.seq} * batch.max_blocks_per_seq;
  const int64_t num_rows = item.row_end - item.row_begin;
  const int64_t num_q = num_rows * group;
  const bool int8 = layer.dtype == DType::kI8;
  // Many queries (prefill tiles) reuse each row often enough that converting it once is cheaper;
  // except int8 rows where the AVX2 / AVX-512 kernels read them with integer dots (a different
  // sum order than on converted rows, so they must see a decode row and a prefill tile alike).
  const bool direct = c.rows && (num_q <= 16 || c.int8_dots);

  const Scratch::Prepared want{c.call_id, item.seq, item.kv_head, item.row_begin, item.row_end};
  const bool prepared = sc.prepared == want;
  for (int64_t r = 0; r < num_rows && !prepared; ++r) {
    const float* src =
        c.q + ((q_begin + item.row_begin + r) * c.num_heads + item.kv_head * group) * hd;
    if (!int8) {
      std::memcpy(sc.q.data() + r * group * hd, src, group * hd * sizeof(float));
      continue;
    }
    for (int64_t j = 0; j < group; ++j) {
      const int64_t qi = r * group + j;
      int8_t* qq = sc.q_i8.data() + qi * 2 * hd;
      const float s = c.kern.quantize_query(src + j * hd, hd, qq, &sc.q_sums[qi]);
      sc.q_scales[qi] = s;
      if (c.int8_dots) continue;  // the integer path reads only q_i8
      for (int64_t d = 0; d < hd; ++d) sc.q[qi * hd + d] = DequantizeQuery(qq, hd, d, s);
    }
  }

  sc.prepared = want;
  ahead.Start(c, item, next);
  const int64_t elem = ElementBytes(layer.dtype);
  const auto* k_base = static_cast<const uint8_t*>(layer.k);
  const auto* v_base = static_cast<const uint8_t*>(layer.v);
  const int64_t last_pos = first_pos + item.row_end - 1;
  const int64_t step_blocks = c.step_blocks;
  const int64_t part_keys = PartKeys(layer.block_size, c.step_blocks);
  const void** k_rows = sc.k_rows.data();
  const void** v_rows = sc.v_rows.data();
  // Partition states go to the split group's shared buffer (a decode row's partition item) or
  // to this thread's scratch (a prefill tile's partitions, merged below).
  const int64_t state = num_q * (hd + 2);
  float* states = nullptr;
  if (item.group >= 0) {
    states = c.plan.partials.data() + c.plan.groups[item.group].partial_offset;
  } else if (item.num_parts > 1) {
    if (static_cast<int64_t>(sc.partials.size()) < item.num_parts * state)
      sc.partials.resize(item.num_parts * state);
    states = sc.partials.data();
  }
  for (int64_t part = item.part_begin; part < item.part_end; ++part) {
    std::fill(sc.max.begin(), sc.max.begin() + num_q, -INFINITY);
    std::fill(sc.sum.begin(), sc.sum.begin() + num_q, 0.0f);
    std::fill(sc.acc.begin(), sc.acc.begin() + num_q * hd, 0.0f);
    const int64_t part_end = std::min<int64_t>(last_pos + 1, (part + 1) * part_keys);
    for (int64_t b0 = part * part_keys / bs; b0 * bs < part_end; b0 += step_blocks) {
      const int64_t step_start = b0 * bs;
      ahead.Advance(c);
      const int64_t n = std::min(step_blocks * bs, part_end - step_start);
      cpu::AttendBlockArgs args;
      for (int64_t bb = 0, t = 0; t < n; ++bb) {
        const int64_t block_row = int64_t{table[b0 + bb]} * bs;
        const int64_t keys = std::min(bs, n - t);
        if (int8) {
          // This head's scales of the block lie side by side: one conversion.
          const int64_t first = KvBlockScaleIndex(layer, table[b0 + bb], item.kv_head);
          c.kern.to_f32(DType::kF16, layer.k_scale + first, sc.k_scales.data() + t, keys);
          c.kern.to_f32(DType::kF16, layer.v_scale + first, sc.v_scales.data() + t, keys);
        }
        const int64_t row0 = block_row * nkv + item.kv_head;
        if (direct) {
          // Through locals: a pointer store may alias the vectors' data pointers, which the
          // compiler would otherwise reload for every key.
          const uint8_t* kp = k_base + row0 * hd * elem;
          const uint8_t* vp = v_base + row0 * hd * elem;
          const int64_t stride = nkv * hd * elem;
          for (int64_t i = 0; i < keys; ++i, ++t) {
            k_rows[t] = kp + i * stride;
            v_rows[t] = vp + i * stride;
          }
          continue;
        }
        for (int64_t i = 0; i < keys; ++i, ++t) {
          const int64_t offset = (row0 + i * nkv) * hd * elem;
          float* kd = sc.k.data() + t * hd;
          float* vd = sc.v.data() + t * hd;
          if (int8) {
            const auto* kq = reinterpret_cast<const int8_t*>(k_base + offset);
            const auto* vq = reinterpret_cast<const int8_t*>(v_base + offset);
            for (int64_t d = 0; d < hd; ++d) kd[d] = DequantizeKv(kq[d], sc.k_scales[t]);
            for (int64_t d = 0; d < hd; ++d) vd[d] = DequantizeKv(vq[d], sc.v_scales[t]);
          } else {
            c.kern.to_f32(layer.dtype, k_base + offset, kd, hd);
            c.kern.to_f32(layer.dtype, v_base + offset, vd, hd);
          }
          k_rows[t] = kd;
          v_rows[t] = vd;
        }
      }
      if (c.rows) {
        args.k_rows = k_rows;
        args.v_rows = v_rows;
        args.rows_dtype = direct ? layer.dtype : DType::kF32;
        args.k_scales = sc.k_scales.data();
        args.v_scales = sc.v_scales.data();
      }
      for (int64_t r = 0; r < num_rows; ++r) {
        const int64_t pos = first_pos + item.row_begin + r;
        const int32_t visible =
            static_cast<int32_t>(std::clamp<int64_t>(pos - step_start + 1, 0, n));
        for (int64_t j = 0; j < group; ++j) sc.num_valid[r * group + j] = visible;
      }
      args.q = sc.q.data();
      args.q_i8 = sc.q_i8.data();
      args.q_scales = sc.q_scales.data();
      args.q_sums = sc.q_sums.data();
      args.num_valid = sc.num_valid.data();
      args.num_q = static_cast<int32_t>(num_q);
      args.k = sc.k.data();
      args.v = sc.v.data();
      args.n = static_cast<int32_t>(n);
      args.head_dim = static_cast<int32_t>(hd);
      args.scale = c.scale;
      args.max = sc.max.data();
      args.sum = sc.sum.data();
      args.acc = sc.acc.data();
      args.scores = sc.scores.data();
      args.prefetch = ahead.runs();
      args.num_prefetch_runs = ahead.num_runs();
      args.num_prefetch = ahead.num_lines();
      c.kern.attend_block(args);
    }

    if (states != nullptr) {
      float* st = states + part * state;
      for (int64_t qi = 0; qi < num_q; ++qi, st += hd + 2) {
        st[0] = sc.max[qi];
        st[1] = sc.sum[qi];
        std::memcpy(st + 2, sc.acc.data() + qi * hd, hd * sizeof(float));
      }
    }
  }  // partitions

  if (item.group >= 0) {
    // The last partition item of the group to finish merges (acq_rel: it sees every other
    // partition's stores).
    if (c.plan.remaining[item.group].fetch_sub(1, std::memory_order_acq_rel) == 1) {
      MergeParts(c, item, states);
    }
    return;
  }
  if (states != nullptr) {
    MergeParts(c, item, states);
    return;
  }
  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t j = 0; j < group; ++j) {
      const int64_t qi = r * group + j;
      const float inv = 1.0f / sc.sum[qi];
      float* dst =
          c.out + ((q_begin + item.row_begin + r) * c.num_heads + item.kv_head * group + j) * hd;
      for (int64_t d = 0; d < hd; ++d) dst[d] = sc.acc[qi * hd + d] * inv;
    }
  }
}

// Builds the work items (largest contexts' partitions first would balance better, but items are
// claimed dynamically and are short, so batch order is kept) and the split groups.
void BuildPlan(const PagedKvLayer& layer, const AttentionBatch& batch, int32_t group,
               int32_t step_blocks, int num_threads, Plan& plan) {
  plan.items.clear();
  plan.groups.clear();
  const int64_t part_keys = PartKeys(layer.block_size, step_blocks);
  // A decode row's partitions become separate items only when there are too few rows to keep
  // every thread busy (one long sequence); with many rows each item folds its partitions itself,
  // which saves each extra item's query rounding, state and merge hand-off. Either way the
  // partition states and their merge are the same arithmetic, so the choice (which depends on
  // the thread count) never changes a result.
  int64_t decode_rows = 0;
  for (int32_t s = 0; s < batch.num_seqs; ++s)
    decode_rows += batch.query_start[s + 1] - batch.query_start[s] == 1;
  const bool split = num_threads > 1 && decode_rows * layer.num_kv_heads < 8 * num_threads;
  int64_t partial_floats = 0;
  for (int32_t s = 0; s < batch.num_seqs; ++s) {
    const int32_t q_len = batch.query_start[s + 1] - batch.query_start[s];
    TS_CHECK(q_len <= batch.seq_lens[s]);
    const int64_t first_pos = batch.seq_lens[s] - q_len;
    for (int32_t r = 0; r < q_len; r += kTileRows) {
      const int32_t r_end = std::min(q_len, r + kTileRows);
      const int32_t parts = static_cast<int32_t>((first_pos + r_end - 1) / part_keys + 1);
      for (int32_t g = 0; g < layer.num_kv_heads; ++g) {
        if (parts == 1 || r_end - r > 1 || !split) {
          plan.items.push_back({s, g, r, r_end, 0, parts, parts, -1});
          continue;
        }
        const int32_t gi = static_cast<int32_t>(plan.groups.size());
        plan.groups.push_back({partial_floats, parts});
        partial_floats += int64_t{parts} * group * (layer.head_dim + 2);
        for (int32_t p = 0; p < parts; ++p)
          plan.items.push_back({s, g, r, r_end, p, p + 1, parts, gi});
      }
    }
  }
  if (static_cast<int64_t>(plan.partials.size()) < partial_floats)
    plan.partials.resize(partial_floats);
  if (plan.remaining_size < plan.groups.size()) {
    plan.remaining_size = std::max(plan.groups.size(), 2 * plan.remaining_size);
    plan.remaining = std::make_unique<std::atomic<int32_t>[]>(plan.remaining_size);
  }
  for (size_t i = 0; i < plan.groups.size(); ++i) {
    plan.remaining[i].store(plan.groups[i].num_parts, std::memory_order_relaxed);
  }
}

}  // namespace

void PagedAttention(Isa isa, const float* q, const PagedKvLayer& layer, const AttentionBatch& batch,
                    int32_t num_heads, float scale, float* out, ThreadPool* pool) {
  const cpu::CpuKernels& kern = cpu::KernelsFor(isa);
  TS_CHECK(layer.num_kv_heads > 0 && num_heads % layer.num_kv_heads == 0);
  TS_CHECK(layer.block_size >= 1);
  TS_CHECK(layer.dtype != DType::kI8 || (layer.k_scale != nullptr && layer.v_scale != nullptr));
  const int32_t group = num_heads / layer.num_kv_heads;
  // The SIMD kernels read rows through pointers, and so the cache directly (saves a store and
  // reload of every row); the scalar one reads the step's f32 rows.
  const bool rows = isa != Isa::kScalar;
  // Engine thread only (attention.h), so one plan per calling thread is reused across calls.
  const int num_threads = pool == nullptr ? 1 : pool->num_threads();
  // The AVX2 / AVX-512 kernels' integer path (attention_avx2.cc, attention_avx512.cc: head_dim
  // a multiple of 64).
  const bool int8_dots = isa >= Isa::kAvx2 && layer.dtype == DType::kI8 &&
                         layer.head_dim % 64 == 0 && layer.head_dim <= 256;
  const int32_t step_blocks = BlocksPerStep(layer.block_size, int8_dots);
  thread_local Plan plan;
  BuildPlan(layer, batch, group, step_blocks, num_threads, plan);
  static std::atomic<uint64_t> calls{0};
  const uint64_t call_id = calls.fetch_add(1, std::memory_order_relaxed) + 1;
  const Context ctx{kern,  rows,      int8_dots, step_blocks, q,    layer,
                    batch, num_heads, scale,     out,         plan, call_id};
  const int64_t max_q = int64_t{kTileRows} * group;
  const int64_t step_keys = int64_t{step_blocks} * layer.block_size;
  if (num_threads == 1 || plan.items.size() <= 1) {
    Scratch& sc = ThreadScratch(layer, max_q, step_keys);
    Prefetcher ahead(sc.prefetch);
    for (size_t i = 0; i < plan.items.size(); ++i) {
      RunItem(ctx, plan.items[i], i + 1 < plan.items.size() ? &plan.items[i + 1] : nullptr, sc,
              ahead);
    }
    return;
  }
  // Items are claimed dynamically (they differ in cost with context length); each writes only
  // its own output rows or partials and computes them the same way on any thread.
  // (Workers reach the plan through ctx: `plan` itself names each thread's own instance.)
  std::atomic<size_t> next{0};
  pool->Run([&](int) {
    Scratch& sc = ThreadScratch(layer, max_q, step_keys);
    Prefetcher ahead(sc.prefetch);
    const std::vector<WorkItem>& items = ctx.plan.items;
    // Each thread claims its next items before running these, so the prefetcher can read ahead
    // into them. With items enough, two at a time: a sequence's KV heads are adjacent items and
    // their rows of a key adjacent in the cache (int8: one 128-byte pair of lines), which the
    // CPU's adjacent-line prefetch fetches together; with the heads on two cores each core read
    // both (bench_ops, 2 threads: int8 64 x 576, 24 layers 1.53 -> 1.20 ms).
    const size_t claim = items.size() >= 8 * static_cast<size_t>(num_threads) ? 2 : 1;
    for (size_t i = next.fetch_add(claim); i < items.size();) {
      const size_t j = next.fetch_add(claim);
      const size_t end = std::min(items.size(), i + claim);
      for (; i < end; ++i) {
        const size_t n = i + 1 < end ? i + 1 : j;
        RunItem(ctx, items[i], n < items.size() ? &items[n] : nullptr, sc, ahead);
      }
      i = j;
    }
  });
}

void PagedAttention(const float* q, const PagedKvLayer& layer, const AttentionBatch& batch,
                    int32_t num_heads, float scale, float* out, ThreadPool* pool) {
  PagedAttention(BestIsa(), q, layer, batch, num_heads, scale, out, pool);
}

}  // namespace tinyserve::kernels
