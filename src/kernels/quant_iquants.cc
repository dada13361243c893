// Block formats beyond the legacy and k-quants, each decoded into the integer form of
// quant_blocks.h (w = scale * (q - zero)) exactly, so they reuse the packed matmul kernels:
//   IQ4_NL  18 B / 32:  d (f16), qs[16] 4-bit indices into the non-linear table below
//   IQ4_XS 136 B / 256: d, scales_h (u16: 2 high bits per sub-block), scales_l[4] (4 low
//                       bits per sub-block), qs[128]; sub-block j scale = d * (ls_j - 32)
//   IQ3_S  110 B / 256: d, qs[64] (low 8 bits of a 9-bit codebook index per 4 weights),
//                       qh[8] (the 9th bits, a byte per sub-block), signs[32] (a bit per
//                       weight, set: negative), scales[4] (4 bits per sub-block); sub-block j
//                       scale = d * (1 + 2 s_j), weight = scale * sign * magnitude (iq3s_grid.h)
//   MXFP4   17 B / 32:  e (E8M0 exponent), qs[16] 4-bit indices into twice the E2M1 values;
//                       scale = 2^(e - 128) (half the E8M0 value, as the table is doubled)
//   TQ1_0   54 B / 256: qs[48] five base-3 digits per byte, qh[4] four digits per byte, d
//   TQ2_0   66 B / 256: qs[64] 2-bit codes, d; weight = d * (code - 1)
//   Q1_0    18 B / 128: d, 16 bytes of sign bits (bit j % 8 of byte j / 8): weight = +-d
//   Q2_0    18 B / 64:  d, 16 bytes of 2-bit codes (bits 2 (j % 4) of byte j / 4): d * (code - 1)
// Table formats store q = table value + 128 (zero point 128, like Q8_0): the tables are int8.
// IQ3_S stores q = sign * magnitude + 16 (1..31, zero point 16, like Q5_0).
// The single-scale formats (TQ*, Q1_0, Q2_0) repeat their scale over 32-weight sub-blocks.
#include <cstring>

#include "kernels/block_bytes.h"
#include "kernels/convert.h"
#include "kernels/iq3s_grid.h"
#include "kernels/quant_blocks.h"

namespace tinyserve::kernels {
namespace {

// ggml's IQ4_NL / IQ4_XS grid.
constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};
// Twice the FP4 (E2M1) values: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives.
constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// Half of 2^(e - 127): the bit pattern of 2^(e - 128), subnormal for e < 2.
float E8m0Half(uint8_t e) {
  const uint32_t bits = e < 2 ? (uint32_t{0x00200000} << e) : (uint32_t{e} - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// 32 weights from 16 bytes of table indices: byte j holds weight j (low) and j + 16 (high).
void TableNibbles(const int8_t* table, const uint8_t* qs, uint8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<uint8_t>(table[qs[j] & 15] + 128);
    q[j + 16] = static_cast<uint8_t>(table[qs[j] >> 4] + 128);
  }
}

// Digit n (0 = most significant) of a byte holding base-3 digits scaled by 256 / 243: the
// multiplication keeps the digits from n on in the top of the byte, * 3 >> 8 extracts one.
uint8_t Base3Digit(uint8_t byte, int n) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const uint8_t shifted = static_cast<uint8_t>(byte * kPow3[n]);
  return static_cast<uint8_t>((uint16_t{shifted} * 3) >> 8);
}

void DecodeTq1(const uint8_t* b, uint8_t* q) {
  const uint8_t* qs = b;
  const uint8_t* qh = b + 48;
  int e = 0;
  // 32 bytes of five digits, 16 bytes of five digits, then 4 bytes of four digits; within a
  // group, digit n of every byte before digit n + 1.
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 32; ++m) q[e++] = Base3Digit(qs[m], n);
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 16; ++m) q[e++] = Base3Digit(qs[32 + m], n);
  for (int n = 0; n < 4; ++n)
    for (int m = 0; m < 4; ++m) q[e++] = Base3Digit(qh[m], n);
}

// The integer scale of IQ3_S sub-block j (1 + 2 * its 4-bit field): odd, 1..31.
int Iq3sScale(const uint8_t* b, int j) { return 1 + 2 * ((b[106 + j / 2] >> (4 * (j % 2))) & 15); }

// 256 weights of an IQ3_S block as q = sign * magnitude + 16. Sub-block j (32 weights) has 8
// groups of 4: group g's index is qs[8j + g] with bit g of qh[j] as its 9th bit, and weight i
// of the sub-block is negative when bit i % 8 of signs[4j + i / 8] is set.
void DecodeIq3s(const uint8_t* b, uint8_t* q) {
  const uint8_t* qs = b + 2;
  const uint8_t* qh = b + 66;
  const uint8_t* signs = b + 74;
  for (int j = 0; j < 8; ++j) {
    for (int i = 0; i < 32; ++i) {
      const int g = i / 4;
      const uint32_t entry = kIq3sGrid[qs[8 * j + g] | (((qh[j] >> g) & 1) << 8)];
      const int magnitude = static_cast<int>((entry >> (8 * (i % 4))) & 0xFF);
      const bool negative = (signs[4 * j + i / 8] >> (i % 8)) & 1;
      q[32 * j + i] = static_cast<uint8_t>((negative ? -magnitude : magnitude) + 16);
    }
  }
}

void DecodeTq2(const uint8_t* b, uint8_t* q) {
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, l = (e % 128) / 32, m = e % 32;
    q[e] = (b[32 * half + m] >> (2 * l)) & 3;
  }
}

}  // namespace

void DecodeExtraRow(DType type, const void* src, int64_t n, uint8_t* q, float* scale) {
  const auto* b = static_cast<const uint8_t*>(src);
  const int64_t bs = BlockSize(type), bytes = BlockBytes(type);
  for (int64_t blk = 0; blk < n / bs; ++blk, b += bytes) {
    uint8_t* bq = q + blk * bs;
    float* bscale = scale + blk * bs / 32;
    switch (type) {
      case DType::kIQ4_NL:
        TableNibbles(kIq4Values, b + 2, bq);
        bscale[0] = Fp16ToF32(LoadU16(b));
        break;
      case DType::kIQ4_XS: {
        const float d = Fp16ToF32(LoadU16(b));
        const uint16_t high = LoadU16(b + 2);
        for (int j = 0; j < 8; ++j) {
          const int ls = ((b[4 + j / 2] >> (4 * (j % 2))) & 15) | (((high >> (2 * j)) & 3) << 4);
          bscale[j] = d * static_cast<float>(ls - 32);
          TableNibbles(kIq4Values, b + 8 + 16 * j, bq + 32 * j);
        }
        break;
      }
      case DType::kIQ3_S: {
        const float d = Fp16ToF32(LoadU16(b));
        DecodeIq3s(b, bq);
        for (int j = 0; j < 8; ++j) bscale[j] = d * static_cast<float>(Iq3sScale(b, j));
        break;
      }
      case DType::kMXFP4:
        TableNibbles(kMxfp4Values, b + 1, bq);
        bscale[0] = E8m0Half(b[0]);
        break;
      case DType::kTQ1_0:
      case DType::kTQ2_0: {
        const bool one = type == DType::kTQ1_0;
        if (one) {
          DecodeTq1(b, bq);
        } else {
          DecodeTq2(b, bq);
        }
        const float d = Fp16ToF32(LoadU16(b + (one ? 52 : 64)));
        for (int j = 0; j < 8; ++j) bscale[j] = d;
        break;
      }
      case DType::kQ1_0: {
        // +-d as d * (q - 1) with q in {0, 2}.
        for (int j = 0; j < 128; ++j)
          bq[j] = static_cast<uint8_t>(((b[2 + j / 8] >> (j % 8)) & 1) * 2);
        const float d = Fp16ToF32(LoadU16(b));
        for (int j = 0; j < 4; ++j) bscale[j] = d;
        break;
      }
      default: {  // kQ2_0
        for (int j = 0; j < 64; ++j) bq[j] = (b[2 + j / 4] >> (2 * (j % 4))) & 3;
        const float d = Fp16ToF32(LoadU16(b));
        bscale[0] = bscale[1] = d;
        break;
      }
    }
  }
}

void DecodeIq4XsScales(const void* src, int64_t n, uint16_t* d, int8_t* sc) {
  const auto* b = static_cast<const uint8_t*>(src);
  for (int64_t blk = 0; blk < n / 256; ++blk, b += BlockBytes(DType::kIQ4_XS)) {
    d[blk] = LoadU16(b);
    const uint16_t high = LoadU16(b + 2);
    for (int j = 0; j < 8; ++j) {  // the ls of DecodeExtraRow
      const int ls = ((b[4 + j / 2] >> (4 * (j % 2))) & 15) | (((high >> (2 * j)) & 3) << 4);
      sc[blk * 8 + j] = static_cast<int8_t>(ls - 32);
    }
  }
}

void DecodeIq3sScales(const void* src, int64_t n, uint16_t* d, int8_t* sc) {
  const auto* b = static_cast<const uint8_t*>(src);
  for (int64_t blk = 0; blk < n / 256; ++blk, b += BlockBytes(DType::kIQ3_S)) {
    d[blk] = LoadU16(b);
    for (int j = 0; j < 8; ++j) sc[blk * 8 + j] = static_cast<int8_t>(Iq3sScale(b, j));
  }
}

bool NibbleTable(DType type, uint8_t table[16]) {
  const int8_t* codebook = nullptr;
  switch (type) {
    case DType::kIQ4_NL:
    case DType::kIQ4_XS:
      codebook = kIq4Values;
      break;
    case DType::kMXFP4:
      codebook = kMxfp4Values;
      break;
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ4_K:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kTQ1_0:
    case DType::kTQ2_0:
    case DType::kQ1_0:
    case DType::kQ2_0:
      break;
    default:
      return false;
  }
  for (int i = 0; i < 16; ++i) table[i] = static_cast<uint8_t>(codebook ? codebook[i] + 128 : i);
  return true;
}

int HighQuantBits(DType type) {
  switch (type) {
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ5_K:
    case DType::kIQ3_S:
      return 1;
    case DType::kQ6_K:
      return 2;
    default:
      return 0;
  }
}

}  // namespace tinyserve::kernels
