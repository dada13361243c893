// The row-wise operators of ops_simd.h compiled for avx2 (8 floats per vector, masked tails).

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/simd_avx2.h"

namespace tinyserve::kernels::cpu::avx2 {

void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out) {
  simd::RmsNorm<Vec>(x, weight, num_rows, dim, eps, out);
}
void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim) {
  simd::RopeNeox<Vec>(x, cos_sin, num_tokens, num_heads, head_dim);
}
void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out) {
  simd::SiluMul<Vec>(gate_up, num_rows, dim, out);
}
float SoftmaxWeights(float* x, int64_t n) { return simd::SoftmaxWeights<Vec>(x, n); }
float LogSumExp(const float* x, int64_t n) { return simd::LogSumExp<Vec>(x, n); }
int64_t FirstIndexPassing(const float* w, int64_t n, double target) {
  return simd::FirstIndexPassing<Vec>(w, n, target);
}
int64_t Argmax(const float* x, int64_t n) { return simd::Argmax<Vec>(x, n); }
void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim) {
  simd::AddBias<Vec>(out, bias, num_rows, dim);
}
void AddInPlace(float* out, const float* x, int64_t n) { simd::AddInPlace<Vec>(out, x, n); }
void ToF32(DType dtype, const void* src, float* dst, int64_t n) {
  simd::ToF32<Vec>(dtype, src, dst, n);
}
void FromF32(DType dtype, const float* src, void* dst, int64_t n) {
  scalar::FromF32(dtype, src, dst, n);
}

}  // namespace tinyserve::kernels::cpu::avx2
