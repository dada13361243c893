// The k-quant formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): 256-weight super-blocks with an f16
// super-scale and small integer sub-block scales, following ggml's ggml-common.h layouts:
//   Q2_K  84 B: scales[16] (4-bit scale | 4-bit min << 4), qs[64] (2-bit), d, dmin
//   Q3_K 110 B: hmask[32] (bit 3), qs[64] (2-bit), scales[12] (6-bit, offset 32), d
//   Q4_K 144 B: d, dmin, scales[12] (6-bit scales and mins), qs[128] (4-bit)
//   Q5_K 176 B: d, dmin, scales[12], qh[32] (bit 5), qs[128] (4-bit)
//   Q6_K 210 B: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d
// Quantizers: simple round-to-nearest with sub-block scales rounded up, so that every weight
// lies inside its sub-block's grid and the error is at most half a step.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/block_bytes.h"
#include "kernels/convert.h"
#include "kernels/quant_blocks.h"

namespace tinyserve::kernels {
namespace {

// Q4_K / Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
void ScaleMinK4(int j, const uint8_t* s, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

void PackScaleMinK4(const int* sc, const int* m, uint8_t* s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(sc[j]);
    s[j + 4] = static_cast<uint8_t>(m[j]);
  }
  for (int j = 4; j < 8; ++j) {
    s[j + 4] = static_cast<uint8_t>((sc[j] & 15) | ((m[j] & 15) << 4));
    s[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
    s[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
  }
}

// Q3_K: 6-bit scale i (0..15) = low nibble from bytes 0..7, top 2 bits from bytes 8..11.
int ScaleQ3K(int i, const uint8_t* s) {
  const int low = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
  const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
  return low | (high << 4);
}

void DecodeSuperBlock(DType type, const uint8_t* b, uint8_t* q, float* scale, float* offset) {
  switch (type) {
    case DType::kQ2_K: {
      const float d = Fp16ToF32(LoadU16(b + 80)), dmin = Fp16ToF32(LoadU16(b + 82));
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, j = (e % 128) / 32, l = e % 32;
        q[e] = (b[16 + 32 * n + l] >> (2 * j)) & 3;
      }
      for (int i = 0; i < 16; ++i) {
        scale[i] = d * static_cast<float>(b[i] & 15);
        offset[i] = -(dmin * static_cast<float>(b[i] >> 4));
      }
      return;
    }
    case DType::kQ3_K: {
      const float d = Fp16ToF32(LoadU16(b + 108));
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, j = (e % 128) / 32, l = e % 32;
        const int low = (b[32 + 32 * n + l] >> (2 * j)) & 3;
        const int high = (b[l] >> (4 * n + j)) & 1;
        q[e] = static_cast<uint8_t>(low | (high << 2));
      }
      for (int i = 0; i < 16; ++i) {
        scale[i] = d * static_cast<float>(ScaleQ3K(i, b + 96) - 32);
        offset[i] = -4.0f * scale[i];
      }
      return;
    }
    case DType::kQ4_K:
    case DType::kQ5_K: {
      const float d = Fp16ToF32(LoadU16(b)), dmin = Fp16ToF32(LoadU16(b + 2));
      const bool five = type == DType::kQ5_K;
      const uint8_t* qs = b + (five ? 48 : 16);
      for (int e = 0; e < 256; ++e) {
        const int p = e / 64, l = e % 64;
        const uint8_t byte = qs[32 * p + l % 32];
        int v = l < 32 ? byte & 15 : byte >> 4;
        if (five) v |= ((b[16 + l % 32] >> (2 * p + l / 32)) & 1) << 4;
        q[e] = static_cast<uint8_t>(v);
      }
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        ScaleMinK4(j, b + 4, &sc, &m);
        scale[j] = d * static_cast<float>(sc);
        offset[j] = -(dmin * static_cast<float>(m));
      }
      return;
    }
    default: {  // kQ6_K
      const float d = Fp16ToF32(LoadU16(b + 208));
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint8_t byte = b[64 * n + l + 32 * (k & 1)];
        const int low = k < 2 ? byte & 15 : byte >> 4;
        const int high = (b[128 + 32 * n + l] >> (2 * k)) & 3;
        q[e] = static_cast<uint8_t>(low | (high << 4));
      }
      for (int i = 0; i < 16; ++i) {
        scale[i] = d * static_cast<float>(static_cast<int8_t>(b[192 + i]));
        offset[i] = -32.0f * scale[i];
      }
      return;
    }
  }
}

int CeilRatio(float v, float d, int max) {
  return d == 0 ? 0 : std::min(max, static_cast<int>(std::ceil(v / d)));
}

// Asymmetric k-quants (Q2_K, Q4_K, Q5_K): per sub-block, min rounded down to dmin * m and step
// rounded up to d * sc; both integer factors stay within their bit widths. Outputs the integer
// scales, mins and quants.
bool QuantizeAsymmetric(const float* x, int sub, int levels, int factor_max, int* sc, int* m,
                        uint8_t* q, uint16_t* dh, uint16_t* dminh) {
  const int num_sub = 256 / sub;
  float lo[16], hi[16], max_m = 0;
  for (int j = 0; j < num_sub; ++j) {
    lo[j] = 0, hi[j] = x[j * sub];
    for (int i = 0; i < sub; ++i)
      lo[j] = std::min(lo[j], x[j * sub + i]), hi[j] = std::max(hi[j], x[j * sub + i]);
    max_m = std::max(max_m, -lo[j]);
  }
  if (!RoundUpToF16(max_m / factor_max, dminh)) return false;
  const float dmin = Fp16ToF32(*dminh);
  float off[16], s[16], max_s = 0;
  for (int j = 0; j < num_sub; ++j) {
    m[j] = CeilRatio(-lo[j], dmin, factor_max);
    off[j] = dmin * static_cast<float>(m[j]);
    s[j] = std::max(0.0f, (hi[j] + off[j]) / levels);
    max_s = std::max(max_s, s[j]);
  }
  if (!RoundUpToF16(max_s / factor_max, dh)) return false;
  const float d = Fp16ToF32(*dh);
  for (int j = 0; j < num_sub; ++j) {
    sc[j] = CeilRatio(s[j], d, factor_max);
    const float step = d * static_cast<float>(sc[j]);
    for (int i = 0; i < sub; ++i) {
      const float v = step == 0 ? 0 : std::nearbyint((x[j * sub + i] + off[j]) / step);
      q[j * sub + i] = static_cast<uint8_t>(std::clamp(static_cast<int>(v), 0, levels));
    }
  }
  return true;
}

// Symmetric k-quants (Q3_K, Q6_K): step d * sc >= amax / levels, q = round(x / step) in
// [-levels, levels], stored offset by levels + 1.
bool QuantizeSymmetric(const float* x, int levels, int factor_max, int* sc, uint8_t* q,
                       uint16_t* dh) {
  float s[16], max_s = 0;
  for (int j = 0; j < 16; ++j) {
    float amax = 0;
    for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[16 * j + i]));
    s[j] = amax / levels;
    max_s = std::max(max_s, s[j]);
  }
  if (!RoundUpToF16(max_s / factor_max, dh)) return false;
  const float d = Fp16ToF32(*dh);
  for (int j = 0; j < 16; ++j) {
    sc[j] = CeilRatio(s[j], d, factor_max);
    const float step = d * static_cast<float>(sc[j]);
    for (int i = 0; i < 16; ++i) {
      const float v = step == 0 ? 0 : std::nearbyint(x[16 * j + i] / step);
      q[16 * j + i] =
          static_cast<uint8_t>(std::clamp(static_cast<int>(v), -levels, levels) + levels + 1);
    }
  }
  return true;
}

bool QuantizeSuperBlock(DType type, const float* x, uint8_t* b) {
  int sc[16], m[16];
  uint8_t q[256];
  uint16_t dh, dminh;
  std::memset(b, 0, BlockBytes(type));
  switch (type) {
    case DType::kQ2_K:
      if (!QuantizeAsymmetric(x, 16, 3, 15, sc, m, q, &dh, &dminh)) return false;
      for (int i = 0; i < 16; ++i) b[i] = static_cast<uint8_t>(sc[i] | (m[i] << 4));
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, j = (e % 128) / 32, l = e % 32;
        b[16 + 32 * n + l] |= static_cast<uint8_t>(q[e] << (2 * j));
      }
      StoreU16(b + 80, dh);
      StoreU16(b + 82, dminh);
      return true;
    case DType::kQ3_K:
      if (!QuantizeSymmetric(x, 3, 31, sc, q, &dh)) return false;
      for (int i = 0; i < 16; ++i) {
        const int v = sc[i] + 32;
        b[96 + (i < 8 ? i : i - 8)] |= static_cast<uint8_t>((v & 15) << (i < 8 ? 0 : 4));
        b[96 + 8 + i % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (i / 4)));
      }
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, j = (e % 128) / 32, l = e % 32;
        b[32 + 32 * n + l] |= static_cast<uint8_t>((q[e] & 3) << (2 * j));
        b[l] |= static_cast<uint8_t>((q[e] >> 2) << (4 * n + j));
      }
      StoreU16(b + 108, dh);
      return true;
    case DType::kQ4_K:
    case DType::kQ5_K: {
      const bool five = type == DType::kQ5_K;
      if (!QuantizeAsymmetric(x, 32, five ? 31 : 15, 63, sc, m, q, &dh, &dminh)) return false;
      StoreU16(b, dh);
      StoreU16(b + 2, dminh);
      PackScaleMinK4(sc, m, b + 4);
      uint8_t* qs = b + (five ? 48 : 16);
      for (int e = 0; e < 256; ++e) {
        const int p = e / 64, l = e % 64;
        qs[32 * p + l % 32] |= static_cast<uint8_t>((q[e] & 15) << (l < 32 ? 0 : 4));
        if (five) b[16 + l % 32] |= static_cast<uint8_t>((q[e] >> 4) << (2 * p + l / 32));
      }
      return true;
    }
    default:  // kQ6_K
      if (!QuantizeSymmetric(x, 31, 127, sc, q, &dh)) return false;
      for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(sc[i]);
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, k = (e % 128) / 32, l = e % 32;
        b[64 * n + l + 32 * (k & 1)] |= static_cast<uint8_t>((q[e] & 15) << (k < 2 ? 0 : 4));
        b[128 + 32 * n + l] |= static_cast<uint8_t>((q[e] >> 4) << (2 * k));
      }
      StoreU16(b + 208, dh);
      return true;
  }
}

}  // namespace

void DecodeKQuantRow(DType type, const void* src, int64_t n, uint8_t* q, float* scale,
                     float* offset) {
  const auto* b = static_cast<const uint8_t*>(src);
  const int sub = GetQuantTraits(type).sub_block;
  for (int64_t blk = 0; blk < n / 256; ++blk) {
    DecodeSuperBlock(type, b + blk * BlockBytes(type), q + 256 * blk, scale + blk * 256 / sub,
                     offset + blk * 256 / sub);
  }
}

void DecodeKQuantScales(DType type, const void* src, int64_t n, uint16_t* d, uint16_t* dmin,
                        int8_t* sc, int8_t* neg_min) {
  const auto* base = static_cast<const uint8_t*>(src);
  const int per_block = 256 / GetQuantTraits(type).sub_block;
  for (int64_t blk = 0; blk < n / 256; ++blk) {
    const uint8_t* b = base + blk * BlockBytes(type);
    int8_t* s = sc + blk * per_block;
    int8_t* m = neg_min + blk * per_block;
    std::fill(m, m + per_block, int8_t{0});
    dmin[blk] = 0;
    // The same fields DecodeSuperBlock reads, as integers.
    switch (type) {
      case DType::kQ2_K:
        d[blk] = LoadU16(b + 80);
        dmin[blk] = LoadU16(b + 82);
        for (int i = 0; i < 16; ++i) {
          s[i] = static_cast<int8_t>(b[i] & 15);
          m[i] = static_cast<int8_t>(-(b[i] >> 4));
        }
        break;
      case DType::kQ3_K:
        d[blk] = LoadU16(b + 108);
        for (int i = 0; i < 16; ++i) s[i] = static_cast<int8_t>(ScaleQ3K(i, b + 96) - 32);
        break;
      case DType::kQ6_K:
        d[blk] = LoadU16(b + 208);
        for (int i = 0; i < 16; ++i) s[i] = static_cast<int8_t>(b[192 + i]);
        break;
      default:  // Q4_K, Q5_K
        d[blk] = LoadU16(b);
        dmin[blk] = LoadU16(b + 2);
        for (int j = 0; j < 8; ++j) {
          int scale, min;
          ScaleMinK4(j, b + 4, &scale, &min);
          s[j] = static_cast<int8_t>(scale);
          m[j] = static_cast<int8_t>(-min);
        }
        break;
    }
  }
}

Status QuantizeKQuantRow(DType type, const float* src, void* dst, int64_t n) {
  auto* b = static_cast<uint8_t*>(dst);
  for (int64_t blk = 0; blk < n / 256; ++blk) {
    if (!QuantizeSuperBlock(type, src + 256 * blk, b + blk * BlockBytes(type)))
      return InvalidArgumentError("QuantizeRow: value out of f16 range for {}", DTypeName(type));
  }
  return OkStatus();
}

}  // namespace tinyserve::kernels
