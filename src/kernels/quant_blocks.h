// Internal to kernels: every block format of quant_formats.h decomposed into one integer form,
// w[i] = scale[i / S] * q[i] + offset[i / S] with q an unsigned byte and S the sub-block size
// (the granularity of the format's scales). Each listed format converts into it exactly, so the
// matmul packer and DequantizeRow share this one decoder. Pure functions.
#pragma once

#include <cstdint>

#include "formats/dtype.h"
#include "util/status.h"

namespace tinyserve::kernels {

struct QuantTraits {
  int sub_block = 0;   // S: 16 or 32 weights per scale
  int zero_point = 0;  // offset == -zero_point * scale exactly, when has_min is false
  bool has_min = false;
};

// Traits of a block type (Q4_0..Q6_K, IQ3_S, IQ4_NL, IQ4_XS, MXFP4, TQ1_0, TQ2_0, Q1_0, Q2_0);
// sub_block == 0 for other types.
QuantTraits GetQuantTraits(DType type);

// Decodes n weights (a multiple of BlockSize(type)) of a block type into q[n],
// scale[n / S] and offset[n / S].
void DecodeRowToInts(DType type, const void* src, int64_t n, uint8_t* q, float* scale,
                     float* offset);

// Whether every q of `type` is one of 16 values: then the matmul stores 4-bit indices into
// table[16] (the q values) instead of q itself. Identity table for the formats with q < 16
// (Q4_0, Q4_1, Q4_K, Q2_K, Q3_K, TQ1_0, TQ2_0, Q1_0, Q2_0), the codebook + 128 for IQ4_NL,
// IQ4_XS and MXFP4; false for Q5_*, Q6_K, Q8_0.
bool NibbleTable(DType type, uint8_t table[16]);

// Bits of q above the low 4 for the formats whose q needs 5 or 6 (the matmul stores them in a
// plane beside 4-bit lines): 1 for Q5_0, Q5_1, Q5_K and IQ3_S, 2 for Q6_K, 0 otherwise.
int HighQuantBits(DType type);

// Whether every scale and offset DecodeRowToInts gives for `type` is an f16 value (the format
// stores them as f16: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, TQ1_0, TQ2_0, Q1_0, Q2_0), so the
// matmul can keep them at 16 bits exactly.
bool ScalesAreF16(DType type);

// The formats with 256-weight super-blocks whose sub-block scales are an f16 factor times small
// integers: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ3_S and IQ4_XS.
bool HasScaleFactors(DType type);

// Their scales as the file stores them: per super-block of 256 weights an f16 factor d (and
// dmin, for the formats with a minimum), per sub-block a small integer, with
//   scale[j] == Fp16ToF32(d) * sc[j]  and  offset[j] == Fp16ToF32(dmin) * neg_min[j]
// exactly for DecodeRowToInts' values (an f16 times an integer of at most 8 bits needs at most
// 19 bits of mantissa, so the f32 product is never rounded), so the matmul can keep a byte per
// sub-block instead of an f32. neg_min is 0 (and dmin +0) for the formats without a minimum.
// n: weights, a multiple of 256; d, dmin: n / 256 each; sc, neg_min: n / sub_block each.
// Requires HasScaleFactors(type).
void DecodeScaleFactors(DType type, const void* src, int64_t n, uint16_t* d, uint16_t* dmin,
                        int8_t* sc, int8_t* neg_min);

// The k-quant halves (quant_kquants.cc), called by the functions above and QuantizeRow.
void DecodeKQuantRow(DType type, const void* src, int64_t n, uint8_t* q, float* scale,
                     float* offset);
// The k-quants', IQ4_XS's and IQ3_S's parts of DecodeScaleFactors.
void DecodeKQuantScales(DType type, const void* src, int64_t n, uint16_t* d, uint16_t* dmin,
                        int8_t* sc, int8_t* neg_min);
void DecodeIq4XsScales(const void* src, int64_t n, uint16_t* d, int8_t* sc);
void DecodeIq3sScales(const void* src, int64_t n, uint16_t* d, int8_t* sc);
// The table and ternary/binary formats (quant_iquants.cc): no offsets (zero-point formats),
// sub-blocks of 32.
void DecodeExtraRow(DType type, const void* src, int64_t n, uint8_t* q, float* scale);
[[nodiscard]] Status QuantizeKQuantRow(DType type, const float* src, void* dst, int64_t n);

// f16 helpers for quantizers: the smallest f16 >= v (v >= 0, finite); false if it overflows.
bool RoundUpToF16(float v, uint16_t* out);

}  // namespace tinyserve::kernels
