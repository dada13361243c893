// Float rows, the 32-weight block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and the dispatch of
// DequantizeRow / QuantizeRow. Block layouts follow ggml (ggml-common.h): all little-endian,
// f16 scales first, then the high bits (Q5), then the quants. Within a block, byte j of the
// 4-bit quants holds weight j in its low nibble and weight j + 16 in its high nibble.
#include "kernels/quant_formats.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/block_bytes.h"
#include "kernels/convert.h"
#include "kernels/quant_blocks.h"

namespace tinyserve::kernels {
namespace {

// Nibbles of the 16 bytes at qs (weights j and j + 16) plus, for 5-bit types, bit j of qh.
void DecodeNibbles(const uint8_t* qs, uint32_t qh, uint8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<uint8_t>((qs[j] & 15) | (((qh >> j) & 1) << 4));
    q[j + 16] = static_cast<uint8_t>((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
  }
}

void Decode32Row(DType type, const uint8_t* b, int64_t n, uint8_t* q, float* scale, float* offset) {
  const int64_t bytes = BlockBytes(type);
  for (int64_t blk = 0; blk < n / 32; ++blk, b += bytes, q += 32) {
    const float d = Fp16ToF32(LoadU16(b));
    switch (type) {
      case DType::kQ4_0:
        DecodeNibbles(b + 2, 0, q);
        offset[blk] = -8.0f * d;
        break;
      case DType::kQ4_1:
        DecodeNibbles(b + 4, 0, q);
        offset[blk] = Fp16ToF32(LoadU16(b + 2));
        break;
      case DType::kQ5_0:
        DecodeNibbles(b + 6, LoadU32(b + 2), q);
        offset[blk] = -16.0f * d;
        break;
      case DType::kQ5_1:
        DecodeNibbles(b + 8, LoadU32(b + 4), q);
        offset[blk] = Fp16ToF32(LoadU16(b + 2));
        break;
      default:  // kQ8_0: signed bytes, stored here offset by 128
        for (int j = 0; j < 32; ++j) q[j] = static_cast<uint8_t>(b[2 + j] ^ 0x80);
        offset[blk] = -128.0f * d;
        break;
    }
    scale[blk] = d;
  }
}

// Largest f16 <= v.
uint16_t RoundDownToF16(float v) {
  uint16_t h = F32ToFp16(v);
  while (Fp16ToF32(h) > v) h = (h == 0 || h == 0x8000) ? 0x8001 : (h & 0x8000) ? h + 1 : h - 1;
  return h;
}

// Symmetric formats: step = amax / levels (rounded up to f16), q = round(x / step) + zero.
// Every |x| <= levels * step, so the error is at most step / 2.
Status QuantizeSymmetric32(DType type, const float* x, uint8_t* b) {
  const int levels = type == DType::kQ8_0 ? 127 : type == DType::kQ5_0 ? 15 : 7;
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  uint16_t dh;
  if (!RoundUpToF16(amax / levels, &dh)) return InvalidArgumentError("value out of f16 range");
  const float d = Fp16ToF32(dh);
  StoreU16(b, dh);
  int q[32];
  for (int j = 0; j < 32; ++j)
    q[j] = d == 0 ? 0 : std::clamp(static_cast<int>(std::nearbyint(x[j] / d)), -levels, levels);
  if (type == DType::kQ8_0) {
    for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q[j]));
    return OkStatus();
  }
  const int zero = levels + 1;
  uint8_t* qs = type == DType::kQ5_0 ? b + 6 : b + 2;
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = q[j] + zero, hi = q[j + 16] + zero;
    qs[j] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
    qh |= uint32_t((lo >> 4) & 1) << j;
    qh |= uint32_t((hi >> 4) & 1) << (j + 16);
  }
  if (type == DType::kQ5_0) StoreU32(b + 2, qh);
  return OkStatus();
}

// Formats with a minimum: m = min rounded down to f16, step = (max - m) / levels rounded up,
// q = round((x - m) / step): error at most step / 2.
Status QuantizeWithMin32(DType type, const float* x, uint8_t* b) {
  const int levels = type == DType::kQ5_1 ? 31 : 15;
  float lo = x[0], hi = x[0];
  for (int j = 1; j < 32; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
  const uint16_t mh = RoundDownToF16(lo);
  const float m = Fp16ToF32(mh);
  uint16_t dh;
  if (!std::isfinite(m) || !RoundUpToF16((hi - m) / levels, &dh))
    return InvalidArgumentError("value out of f16 range");
  const float d = Fp16ToF32(dh);
  StoreU16(b, dh);
  StoreU16(b + 2, mh);
  uint8_t* qs = type == DType::kQ5_1 ? b + 8 : b + 4;
  uint32_t qh = 0;
  int q[32];
  for (int j = 0; j < 32; ++j)
    q[j] = d == 0 ? 0 : std::clamp(static_cast<int>(std::nearbyint((x[j] - m) / d)), 0, levels);
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + 16] & 15) << 4));
    qh |= uint32_t(q[j] >> 4) << j;
    qh |= uint32_t(q[j + 16] >> 4) << (j + 16);
  }
  if (type == DType::kQ5_1) StoreU32(b + 4, qh);
  return OkStatus();
}

}  // namespace

bool RoundUpToF16(float v, uint16_t* out) {
  uint16_t h = F32ToFp16(v);
  if (Fp16ToF32(h) < v) ++h;  // v >= 0: the next f16 up is the next bit pattern
  *out = h;
  return std::isfinite(Fp16ToF32(h));
}

QuantTraits GetQuantTraits(DType type) {
  switch (type) {
    case DType::kQ4_0:
      return {32, 8, false};
    case DType::kQ5_0:
    case DType::kIQ3_S:
      return {32, 16, false};
    case DType::kQ8_0:
      return {32, 128, false};
    case DType::kQ4_1:
    case DType::kQ5_1:
    case DType::kQ4_K:
    case DType::kQ5_K:
      return {32, 0, true};
    case DType::kQ2_K:
      return {16, 0, true};
    case DType::kQ3_K:
      return {16, 4, false};
    case DType::kQ6_K:
      return {16, 32, false};
    case DType::kIQ4_NL:
    case DType::kIQ4_XS:
    case DType::kMXFP4:
      return {32, 128, false};
    case DType::kTQ1_0:
    case DType::kTQ2_0:
    case DType::kQ1_0:
    case DType::kQ2_0:
      return {32, 1, false};
    default:
      return {};
  }
}

bool ScalesAreF16(DType type) {
  switch (type) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
    case DType::kIQ4_NL:
    case DType::kTQ1_0:
    case DType::kTQ2_0:
    case DType::kQ1_0:
    case DType::kQ2_0:
      return true;
    default:
      return false;
  }
}

bool HasScaleFactors(DType type) {
  switch (type) {
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
    case DType::kIQ3_S:
    case DType::kIQ4_XS:
      return true;
    default:
      return false;
  }
}

void DecodeScaleFactors(DType type, const void* src, int64_t n, uint16_t* d, uint16_t* dmin,
                        int8_t* sc, int8_t* neg_min) {
  switch (type) {
    case DType::kIQ4_XS:
      DecodeIq4XsScales(src, n, d, sc);
      break;
    case DType::kIQ3_S:
      DecodeIq3sScales(src, n, d, sc);
      break;
    default:
      return DecodeKQuantScales(type, src, n, d, dmin, sc, neg_min);
  }
  // The codebook formats have no minimum.
  std::fill(dmin, dmin + n / 256, uint16_t{0});
  std::fill(neg_min, neg_min + n / 32, int8_t{0});
}

void DecodeRowToInts(DType type, const void* src, int64_t n, uint8_t* q, float* scale,
                     float* offset) {
  switch (type) {
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      DecodeKQuantRow(type, src, n, q, scale, offset);
      return;
    case DType::kIQ4_NL:
    case DType::kIQ4_XS:
    case DType::kIQ3_S:
    case DType::kMXFP4:
    case DType::kTQ1_0:
    case DType::kTQ2_0:
    case DType::kQ1_0:
    case DType::kQ2_0: {
      DecodeExtraRow(type, src, n, q, scale);
      const QuantTraits t = GetQuantTraits(type);
      for (int64_t i = 0; i < n / t.sub_block; ++i) offset[i] = -t.zero_point * scale[i];
      return;
    }
    default:
      Decode32Row(type, static_cast<const uint8_t*>(src), n, q, scale, offset);
  }
}

void DequantizeRow(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, sizeof(float) * n);
      return;
    case DType::kF16:
    case DType::kBF16: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = LoadU16(s + 2 * i);
        dst[i] = type == DType::kF16 ? Fp16ToF32(h) : Bf16ToF32(h);
      }
      return;
    }
    default:
      break;
  }
  const QuantTraits traits = GetQuantTraits(type);
  if (traits.sub_block == 0) return;
  // Chunks of one 256-weight super-block keep the scratch on the stack.
  uint8_t q[256];
  float scale[16], offset[16];
  const int64_t chunk = 256;
  const auto* s = static_cast<const uint8_t*>(src);
  const int64_t chunk_bytes = BlockBytes(type) * (chunk / BlockSize(type));
  for (int64_t base = 0; base < n; base += chunk, s += chunk_bytes) {
    const int64_t len = std::min(chunk, n - base);
    DecodeRowToInts(type, s, len, q, scale, offset);
    for (int64_t i = 0; i < len; ++i) {
      const int64_t sb = i / traits.sub_block;
      // Zero-point formats as ggml writes them, scale * (q - zero), so that signed zeros
      // match too.
      dst[base + i] = traits.has_min ? scale[sb] * q[i] + offset[sb]
                                     : scale[sb] * static_cast<float>(q[i] - traits.zero_point);
    }
  }
}

Status QuantizeRow(DType type, const float* src, void* dst, int64_t n) {
  const int64_t bs = BlockSize(type);
  if (bs == 0) return InvalidArgumentError("QuantizeRow: unsupported type {}", DTypeName(type));
  if (n % bs != 0)
    return InvalidArgumentError("QuantizeRow: {} weights is not a multiple of {} for {}", n, bs,
                                DTypeName(type));
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(src[i])) return InvalidArgumentError("QuantizeRow: non-finite input");
  auto* d = static_cast<uint8_t*>(dst);
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, sizeof(float) * n);
      return OkStatus();
    case DType::kF16:
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i)
        StoreU16(d + 2 * i, type == DType::kF16 ? F32ToFp16(src[i]) : F32ToBf16(src[i]));
      return OkStatus();
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
      for (int64_t blk = 0; blk < n / 32; ++blk)
        TS_RETURN_IF_ERROR(QuantizeSymmetric32(type, src + 32 * blk, d + BlockBytes(type) * blk));
      return OkStatus();
    case DType::kQ4_1:
    case DType::kQ5_1:
      for (int64_t blk = 0; blk < n / 32; ++blk)
        TS_RETURN_IF_ERROR(QuantizeWithMin32(type, src + 32 * blk, d + BlockBytes(type) * blk));
      return OkStatus();
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return QuantizeKQuantRow(type, src, dst, n);
    default:
      return InvalidArgumentError("QuantizeRow: no quantizer for {}", DTypeName(type));
  }
}

}  // namespace tinyserve::kernels
