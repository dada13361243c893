// PackedMatrix::Pack (repacking into the layout of matmul_internal.h) and MatMul's dispatch
// and threading: row groups of the weights are split across the pool; for long inputs the
// activation rows are tiled so that a row group's weights stay in cache across a tile.
#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/convert.h"
#include "kernels/isa.h"
#include "kernels/matmul_internal.h"
#include "util/check.h"
#include "util/split_over_threads.h"

namespace tinyserve::kernels {

PackedMatrix::PackedMatrix() : impl_(std::make_unique<Impl>()) {}
PackedMatrix::PackedMatrix(PackedMatrix&&) noexcept = default;
PackedMatrix& PackedMatrix::operator=(PackedMatrix&&) noexcept = default;
PackedMatrix::~PackedMatrix() = default;

int64_t PackedMatrix::rows() const { return impl_->rows; }
int64_t PackedMatrix::cols() const { return impl_->cols; }
DType PackedMatrix::source_dtype() const { return impl_->dtype; }
uint64_t PackedMatrix::bytes() const { return impl_->bytes; }

QuantizedActivations::QuantizedActivations() : impl_(std::make_unique<Impl>()) {}
QuantizedActivations::QuantizedActivations(QuantizedActivations&&) noexcept = default;
QuantizedActivations& QuantizedActivations::operator=(QuantizedActivations&&) noexcept = default;
QuantizedActivations::~QuantizedActivations() = default;

int64_t QuantizedActivations::num_rows() const { return impl_->acts.num_rows; }
int64_t QuantizedActivations::cols() const { return impl_->acts.cols; }

namespace {

// Writes the records of row group g from up to 16 source rows.
void PackGroup(const TensorView& w, const std::optional<uint64_t>& row_bytes, int64_t g,
               PackedMatrix::Impl* impl) {
  const int sub = impl->traits.sub_block;
  const int64_t cols = impl->cols;
  std::vector<uint8_t> q(cols);
  std::vector<float> scale(impl->num_sub), offset(impl->num_sub);
  const int64_t num_super = impl->int_scales ? impl->num_sub / impl->subs_per_super : 0;
  std::vector<uint16_t> d(num_super), dmin(num_super);
  std::vector<int8_t> sc(impl->num_sub), neg_min(impl->num_sub);
  uint8_t* dst = impl->packed.data() + g * impl->num_sub * impl->record_bytes;
  std::memset(dst, 0, impl->num_sub * impl->record_bytes);
  // index[q]: position of q in impl->table; 16 = not in it (a decoder bug: checked below).
  uint8_t index[256];
  std::memset(index, 16, sizeof(index));
  for (int i = 15; i >= 0; --i) index[impl->table[i]] = static_cast<uint8_t>(i);
  const int high = impl->high_bits;
  auto nibble = [&](uint8_t v) {
    if (high > 0) {
      TS_CHECK(v >> 4 < (1 << high));
      v &= 15;
    }
    TS_CHECK(index[v] < 16);
    return index[v];
  };
  for (int r = 0; r < kGroupRows; ++r) {
    const int64_t row = g * kGroupRows + r;
    // Padding rows keep zero bytes: scale 0, so they add nothing (and are never stored).
    if (row >= impl->rows) break;
    const auto* src = static_cast<const uint8_t*>(w.data) + row * *row_bytes;
    DecodeRowToInts(w.dtype, src, cols, q.data(), scale.data(), offset.data());
    if (impl->int_scales) {
      DecodeScaleFactors(w.dtype, src, cols, d.data(), dmin.data(), sc.data(), neg_min.data());
      const int64_t factor_rows = impl->traits.has_min ? 2 : 1;
      for (int64_t j = 0; j < num_super; ++j) {
        uint16_t* f = impl->factors.data() + ((g * num_super + j) * factor_rows) * kGroupRows;
        f[r] = d[j];
        if (impl->traits.has_min) f[kGroupRows + r] = dmin[j];
      }
    }
    for (int64_t b = 0; b < impl->num_sub; ++b) {
      uint8_t* rec = dst + b * impl->record_bytes;
      const uint8_t* qb = &q[b * sub];
      if (impl->nibbles) {
        for (int p = 0; p < sub / 8; ++p)
          for (int i = 0; i < 4; ++i)
            rec[p * 64 + r * 4 + i] =
                static_cast<uint8_t>(nibble(qb[p * 8 + i]) | (nibble(qb[p * 8 + 4 + i]) << 4));
        for (int c = 0; high > 0 && c < sub / 4; ++c)
          for (int i = 0; i < 4; ++i)
            rec[impl->HighLine() + r * 4 + i] |=
                static_cast<uint8_t>((qb[c * 4 + i] >> 4) << (high * c));
      } else {
        for (int c = 0; c < sub / 4; ++c) std::memcpy(rec + c * 64 + r * 4, qb + c * 4, 4);
      }
      auto same = [](float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); };
      if (impl->int_scales) {
        // Exact (DecodeScaleFactors), checked: the kernels rebuild scale[b] from these.
        rec[impl->quant_bytes + r] = static_cast<uint8_t>(sc[b]);
        TS_CHECK(same(impl->Scale(g, b, r), scale[b]));
        if (impl->traits.has_min) {
          rec[impl->quant_bytes + kGroupRows + r] = static_cast<uint8_t>(neg_min[b]);
          TS_CHECK(same(impl->Scale(g, b, kGroupRows + r), offset[b]));
        }
      } else if (impl->f16_scales) {
        // Exact: ScalesAreF16 formats decode their scales from f16 fields (a NaN may come
        // back with another payload, still NaN).
        const uint16_t hs = F32ToFp16(scale[b]), ho = F32ToFp16(offset[b]);
        TS_CHECK(same(Fp16ToF32(hs), scale[b]));
        std::memcpy(rec + impl->quant_bytes + 2 * r, &hs, 2);
        if (impl->traits.has_min) {
          TS_CHECK(same(Fp16ToF32(ho), offset[b]));
          std::memcpy(rec + impl->quant_bytes + 2 * (kGroupRows + r), &ho, 2);
        }
      } else {
        std::memcpy(rec + impl->quant_bytes + 4 * r, &scale[b], 4);
        if (impl->traits.has_min)
          std::memcpy(rec + impl->quant_bytes + 4 * (kGroupRows + r), &offset[b], 4);
      }
    }
  }
}

}  // namespace

MatMulKernels MatMulKernelsFor(Isa isa) {
  switch (isa) {
    case Isa::kAmx:  // where !AmxServes, and for float weights
    case Isa::kAvx512:
      return Avx512Kernels();
    case Isa::kAvx2:
      return Avx2Kernels();
    default:
      return ScalarKernels();
  }
}

int QuantThreads(const PackedMatrix::Impl& w, int64_t num_rows, ThreadPool* pool) {
  const bool small = num_rows * w.cols * w.rows < (int64_t{1} << 18);
  return pool && !small ? pool->num_threads() : 1;
}

int64_t QuantRowTile(const PackedMatrix::Impl& w) {
  return std::max<int64_t>(8, (256 << 10) / w.cols / 8 * 8);
}

int64_t QuantChunkGroups(const PackedMatrix::Impl& w, int threads, int64_t num_rows) {
  int64_t per_thread = kQuantChunksPerThread;
  if (num_rows <= kFewRows) {
    per_thread = std::max<int64_t>(kFewRowsMinChunksPerThread,
                                   static_cast<int64_t>(w.bytes) / (kFewRowsChunkBytes * threads));
  }
  const int64_t per_chunk = w.num_groups / (per_thread * threads);
  return std::max<int64_t>(2, (per_chunk + 1) / 2 * 2);
}

namespace {

// The quantized product from activations already quantized for w. With threads, each row tile's
// row groups go in chunks (QuantChunkGroups) that threads claim as they finish the last.
void RunQuantKernel(const MatMulKernels& k, const PackedMatrix::Impl& w, const QuantizedActs& acts,
                    const float* bias, float* out, ThreadPool* pool) {
  const int64_t num_rows = acts.num_rows;
  const int64_t tile = QuantRowTile(w);
  const bool aligned = reinterpret_cast<uintptr_t>(out) % 64 == 0 && w.rows % kGroupRows == 0;
  const bool stream = aligned && num_rows * w.rows * int64_t{sizeof(float)} >= kStreamOutputBytes;
  const int threads = QuantThreads(w, num_rows, pool);
  if (threads == 1) {
    for (int64_t m = 0; m < num_rows; m += tile)
      k.quant(w, acts, 0, w.num_groups, m, std::min(num_rows, m + tile), bias,
              OutTile{out, w.rows, 0, 0, stream});
    return;
  }
  const int64_t per_chunk = QuantChunkGroups(w, threads, num_rows);
  const int64_t chunks = (w.num_groups + per_chunk - 1) / per_chunk;
  const int64_t tiles = (num_rows + tile - 1) / tile;
  // Row tile major, as the single-thread loop: a tile's activations stay in L2 while the weights
  // stream past. Each chunk names the first group of the thread's next one (OutTile::then_group).
  pool->ParallelForDynamic(tiles * chunks, [&](int64_t i, int64_t next, int) {
    const int64_t m = i / chunks * tile, g = i % chunks * per_chunk;
    OutTile o{out, w.rows, 0, 0, stream};
    o.then_group = next < 0 ? -1 : next % chunks * per_chunk;
    k.quant(w, acts, g, std::min(w.num_groups, g + per_chunk), m, std::min(num_rows, m + tile),
            bias, o);
  });
}

void RunQuantized(const MatMulKernels& k, const PackedMatrix::Impl& w, const float* x,
                  int64_t num_rows, const float* bias, float* out, ThreadPool* pool) {
  QuantizedActs acts;
  acts.num_rows = num_rows;
  acts.cols = w.cols;
  acts.num_sub = w.num_sub;
  acts.xq.Resize(num_rows * w.cols);
  acts.sx.Resize(num_rows * (w.cols / kActBlock));
  acts.init.Resize(num_rows * w.num_sub);
  acts.xsum.Resize(num_rows * w.num_sub);
  if (QuantThreads(w, num_rows, pool) > 1 && num_rows * w.cols >= (int64_t{1} << 16)) {
    pool->ParallelFor(num_rows, 1, [&](int64_t b, int64_t e, int) {
      k.quantize_acts(x + b * w.cols, w.cols, b, e, 0, w.cols, w.traits, &acts);
    });
  } else {
    k.quantize_acts(x, w.cols, 0, num_rows, 0, w.cols, w.traits, &acts);
  }
  RunQuantKernel(k, w, acts, bias, out, pool);
}

void RunFloat(const MatMulKernels& k, const PackedMatrix::Impl& w, const float* x, int64_t num_rows,
              const float* bias, float* out, ThreadPool* pool) {
  const int64_t tile = std::max<int64_t>(4, (128 << 10) / (w.cols * 4) / 4 * 4);
  auto work = [&](int64_t n_begin, int64_t n_end, int) {
    for (int64_t m = 0; m < num_rows; m += tile)
      k.float_kernel(w, x, n_begin, n_end, m, std::min(num_rows, m + tile), bias, out);
  };
  const bool small = num_rows * w.cols * w.rows < (int64_t{1} << 18);
  if (pool && pool->num_threads() > 1 && !small) {
    pool->ParallelFor(w.rows, 4, work);
  } else {
    work(0, w.rows, 0);
  }
}

// bf16 weights on the AVX-512 BF16 dot product (matmul_internal.h).
void RunBf16Dot(const PackedMatrix::Impl& w, const float* x, int64_t num_rows, const float* bias,
                float* out, ThreadPool* pool) {
  Bf16Acts acts;
  acts.num_rows = num_rows;
  acts.pairs = w.pairs;
  acts.x.Resize(num_rows * w.pairs);
  const bool small = num_rows * w.cols * w.rows < (int64_t{1} << 18);
  const int num_threads = pool && !small ? pool->num_threads() : 1;
  if (num_threads > 1 && num_rows * w.cols >= (int64_t{1} << 16)) {
    pool->ParallelFor(num_rows, 1, [&](int64_t b, int64_t e, int) {
      RoundActsBf16Avx512(x, w.cols, b, e, &acts);
    });
  } else {
    RoundActsBf16Avx512(x, w.cols, 0, num_rows, &acts);
  }
  // Blocks of whole activation tiles (about 256 KiB of bf16) that stay in L2 while a thread's
  // row groups pass them.
  const int64_t block =
      std::max<int64_t>(1, (256 << 10) / (w.pairs * 4) / kBf16RowTile) * kBf16RowTile;
  auto work = [&](int64_t g_begin, int64_t g_end, int) {
    for (int64_t m = 0; m < num_rows; m += block)
      Bf16DotKernelAvx512(w, acts, g_begin, g_end, m, std::min(num_rows, m + block), bias, out);
  };
  if (num_threads > 1) {
    pool->ParallelFor(w.num_groups, 1, work);
  } else {
    work(0, w.num_groups, 0);
  }
}

// Interleaves bf16 rows into impl->bf16_pairs (matmul_internal.h).
void PackBf16Pairs(const uint16_t* src, PackedMatrix::Impl* impl) {
  const int64_t cols = impl->cols, pairs = (cols + 1) / 2;
  impl->pairs = pairs;
  impl->pair_stride = (pairs + 15) / 16 * 16;
  impl->num_groups = (impl->rows + kGroupRows - 1) / kGroupRows;
  const int64_t group_elems = impl->pair_stride * 2 * kGroupRows;
  impl->bf16_pairs.Resize(impl->num_groups * group_elems);
  uint16_t* dst = impl->bf16_pairs.data();
  const uint64_t pair_bytes = impl->bf16_pairs.size() * sizeof(uint16_t);
  SplitOverThreads(impl->num_groups, LoadThreadsFor(impl->num_groups, pair_bytes),
                   [&](int64_t, int64_t g_begin, int64_t g_end) {
                     std::memset(dst + g_begin * group_elems, 0,
                                 (g_end - g_begin) * group_elems * sizeof(uint16_t));
                     const int64_t n_end = std::min(impl->rows, g_end * kGroupRows);
                     for (int64_t n = g_begin * kGroupRows; n < n_end; ++n) {
                       const uint16_t* row = src + n * cols;
                       uint16_t* d = dst + (n / kGroupRows) * group_elems + (n % kGroupRows) * 2;
                       for (int64_t k = 0; k < cols; ++k)
                         d[(k / 2) * 2 * kGroupRows + k % 2] = row[k];
                     }
                   });
}

}  // namespace

StatusOr<PackedMatrix> PackedMatrix::Pack(const TensorView& w) {
  if (w.shape.size() != 2)
    return InvalidArgumentError("Pack {}: rank {} is not 2", w.name, w.shape.size());
  const int64_t rows = w.shape[0], cols = w.shape[1];
  if (rows <= 0 || cols <= 0) return InvalidArgumentError("Pack {}: empty matrix", w.name);
  const bool is_float = w.dtype == DType::kF32 || w.dtype == DType::kF16 || w.dtype == DType::kBF16;
  const QuantTraits traits = GetQuantTraits(w.dtype);
  if (!is_float && traits.sub_block == 0)
    return InvalidArgumentError("Pack {}: unsupported dtype {}", w.name, DTypeName(w.dtype));
  const std::optional<uint64_t> row_bytes = RowBytes(w.dtype, cols);
  if (!row_bytes || (!is_float && cols % kActBlock != 0))
    return InvalidArgumentError("Pack {}: {} columns is not a multiple of the {} block size",
                                w.name, cols, DTypeName(w.dtype));
  if (w.data == nullptr || w.num_bytes < *row_bytes * static_cast<uint64_t>(rows))
    return InvalidArgumentError("Pack {}: {} bytes, expected {}", w.name, w.num_bytes,
                                *row_bytes * rows);
  PackedMatrix m;
  Impl& impl = *m.impl_;
  impl.dtype = w.dtype;
  impl.rows = rows;
  impl.cols = cols;
  if (is_float) {
    impl.float_data = w.data;
    impl.bytes = *row_bytes * rows;
    if (w.dtype == DType::kBF16 && IsaSupported(Isa::kAvx512)) {
      PackBf16Pairs(static_cast<const uint16_t*>(w.data), &impl);
      // What a pass reads: the pairs, not the zeros padding them to pair_stride.
      impl.bytes = impl.num_groups * impl.pairs * 2 * kGroupRows * sizeof(uint16_t);
    }
    return m;
  }
  impl.traits = traits;
  impl.num_groups = (rows + kGroupRows - 1) / kGroupRows;
  impl.num_sub = cols / traits.sub_block;
  impl.high_bits = HighQuantBits(w.dtype);
  impl.nibbles = NibbleTable(w.dtype, impl.table);
  if (impl.high_bits > 0) {
    // The high line holds every chunk's bits in one byte per row and lane (matmul_internal.h).
    TS_CHECK(!impl.nibbles && impl.high_bits * traits.sub_block / 4 == 8);
    impl.nibbles = true;
    for (int i = 0; i < 16; ++i) impl.table[i] = static_cast<uint8_t>(i);
  }
  impl.quant_bytes = impl.nibbles ? impl.HighLine() + (impl.high_bits > 0 ? 64 : 0)
                                  : traits.sub_block * kGroupRows;
  impl.f16_scales = ScalesAreF16(w.dtype);
  impl.int_scales = HasScaleFactors(w.dtype);
  const int scale_bytes = impl.int_scales ? 1 : impl.f16_scales ? 2 : 4;
  impl.record_bytes = impl.quant_bytes + kGroupRows * scale_bytes * (traits.has_min ? 2 : 1);
  impl.packed.Resize(impl.num_groups * impl.num_sub * impl.record_bytes);
  impl.bytes = impl.packed.size();
  if (impl.int_scales) {
    impl.subs_per_super = 256 / traits.sub_block;
    impl.factors.Resize(impl.num_groups * (impl.num_sub / impl.subs_per_super) *
                        (traits.has_min ? 2 : 1) * kGroupRows);
    // Padding rows keep +0 factors (scale 0).
    std::memset(impl.factors.data(), 0, impl.factors.size() * sizeof(uint16_t));
    impl.bytes += impl.factors.size() * sizeof(uint16_t);
  }
  // Groups are independent: each writes its own records and factors.
  SplitOverThreads(impl.num_groups, LoadThreadsFor(impl.num_groups, impl.bytes),
                   [&](int64_t, int64_t g_begin, int64_t g_end) {
                     for (int64_t g = g_begin; g < g_end; ++g) PackGroup(w, row_bytes, g, &impl);
                   });
  return m;
}

void MatMulWithIsa(Isa isa, const PackedMatrix& w, const float* x, int64_t num_rows,
                   const float* bias, float* out, ThreadPool* pool) {
  TS_CHECK(IsaSupported(isa));
  if (num_rows <= 0) return;
  const MatMulKernels k = MatMulKernelsFor(isa);
  const PackedMatrix::Impl& impl = w.impl();
  if (UsesBf16Dot(w, isa)) {
    if (UsesAmxBf16(w, isa, num_rows)) {
      RunBf16Amx(impl, x, num_rows, bias, out, pool);
    } else {
      RunBf16Dot(impl, x, num_rows, bias, out, pool);
    }
  } else if (impl.float_data != nullptr) {
    RunFloat(k, impl, x, num_rows, bias, out, pool);
  } else if (isa == Isa::kAmx && AmxServes(impl, num_rows)) {
    RunQuantizedAmx(impl, x, num_rows, bias, out, pool);
  } else {
    RunQuantized(k, impl, x, num_rows, bias, out, pool);
  }
}

bool UsesBf16Dot(const PackedMatrix& w, Isa isa) {
  return w.impl().bf16_pairs.size() > 0 && (isa == Isa::kAvx512 || isa == Isa::kAmx);
}

bool UsesAmxBf16(const PackedMatrix& w, Isa isa, int64_t num_rows) {
  return UsesBf16Dot(w, isa) && isa == Isa::kAmx && num_rows >= kAmxBf16MinRows &&
         DetectedCpuFeatures().amx_bf16;
}

void MatMul(const PackedMatrix& w, const float* x, int64_t num_rows, const float* bias, float* out,
            ThreadPool* pool) {
  // Quantized weights skip the AMX int8 kernel (see kAmxMinRows): the same bits, sooner.
  const Isa isa = BestIsa() == Isa::kAmx && TakesQuantizedActivations(w) ? Isa::kAvx512 : BestIsa();
  MatMulWithIsa(isa, w, x, num_rows, bias, out, pool);
}

bool TakesQuantizedActivations(const PackedMatrix& w) { return w.impl().float_data == nullptr; }

void PrepareActivations(const PackedMatrix& like, int64_t num_rows, QuantizedActivations* acts) {
  const PackedMatrix::Impl& w = like.impl();
  TS_CHECK(w.float_data == nullptr);
  QuantizedActivations::Impl& a = acts->impl();
  a.traits = w.traits;
  // Every ISA quantizes to the same numbers (matmul_internal.h); take the fastest.
  a.quantize = MatMulKernelsFor(BestIsa()).quantize_acts;
  a.acts.num_rows = num_rows;
  a.acts.cols = w.cols;
  a.acts.num_sub = w.num_sub;
  // The indexes depend on num_rows and cols only, so a larger buffer serves as well.
  auto grow = [](auto& buf, int64_t n) {
    if (static_cast<int64_t>(buf.size()) < n) buf.Resize(n);
  };
  grow(a.acts.xq, num_rows * w.cols);
  grow(a.acts.sx, num_rows * (w.cols / kActBlock));
  grow(a.acts.init, num_rows * w.num_sub);
  grow(a.acts.xsum, num_rows * w.num_sub);
}

void QuantizeActivationRows(const float* x, int64_t row_begin, int64_t row_end,
                            QuantizedActivations* acts) {
  QuantizedActivations::Impl& a = acts->impl();
  TS_CHECK(a.quantize != nullptr && row_begin >= 0 && row_end <= a.acts.num_rows);
  if (row_begin < row_end) {
    a.quantize(x + row_begin * a.acts.cols, a.acts.cols, row_begin, row_end, 0, a.acts.cols,
               a.traits, &a.acts);
  }
}

void QuantizeActivations(const PackedMatrix& like, const float* x, int64_t num_rows,
                         QuantizedActivations* acts, ThreadPool* pool) {
  PrepareActivations(like, num_rows, acts);
  const PackedMatrix::Impl& w = like.impl();
  if (QuantThreads(w, num_rows, pool) > 1 && num_rows * w.cols >= (int64_t{1} << 16)) {
    pool->ParallelFor(num_rows, 1,
                      [&](int64_t b, int64_t e, int) { QuantizeActivationRows(x, b, e, acts); });
  } else {
    QuantizeActivationRows(x, 0, num_rows, acts);
  }
}

void MatMulQuantizedWithIsa(Isa isa, const PackedMatrix& w, const QuantizedActivations& acts,
                            const float* bias, float* out, ThreadPool* pool) {
  TS_CHECK(IsaSupported(isa));
  const PackedMatrix::Impl& impl = w.impl();
  const QuantizedActivations::Impl& a = acts.impl();
  TS_CHECK(impl.float_data == nullptr && a.acts.cols == impl.cols &&
           a.traits.sub_block == impl.traits.sub_block &&
           a.traits.zero_point == impl.traits.zero_point);
  if (a.acts.num_rows <= 0) return;
  RunQuantKernel(MatMulKernelsFor(isa), impl, a.acts, bias, out, pool);
}

void MatMulQuantized(const PackedMatrix& w, const QuantizedActivations& acts, const float* bias,
                     float* out, ThreadPool* pool) {
  MatMulQuantizedWithIsa(BestIsa(), w, acts, bias, out, pool);
}

}  // namespace tinyserve::kernels
