// Element-wise and row-wise operators of the Qwen2 forward pass on f32 activations, dispatched
// at run time to the best SIMD implementation (AVX-512, AVX2, scalar). Reference versions of
// each live in kernels/ref/ and are the ground truth in tests. Pure functions: any thread may
// call them; those taking a ThreadPool use it (nullptr = run on the calling thread).
#pragma once

#include <cstdint>

#include "formats/tensor_view.h"
#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace tinyserve::kernels {

// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:]. x, out: [num_rows, dim].
// out may alias x.
void RmsNorm(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out, ThreadPool* pool);

// Fused residual add and RMSNorm (one pass, one parallel region): x[r, :] += add[r, :], then
// out[r, :] = RmsNorm(x[r, :]). Bit-identical to AddInPlace then RmsNorm. out must not alias x.
void AddRmsNorm(float* x, const float* add, const float* weight, int64_t num_rows, int64_t dim,
                float eps, float* out, ThreadPool* pool);

// The two norms above fused with the quantization of their output for the quantized-weight
// matmul that consumes it (kernels/matmul.h, QuantizedActivations): each few rows are
// normalized into out (still written: other consumers and float weights read it) and quantized
// for `consumer` while they are in cache, in the same parallel region (one pool barrier).
// out and acts are bit-identical to RmsNorm / AddRmsNorm then QuantizeActivations.
// Requires consumer quantized with consumer.cols() == dim.
void RmsNormQuantize(const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
                     float* out, const PackedMatrix& consumer, QuantizedActivations* acts,
                     ThreadPool* pool);
void AddRmsNormQuantize(float* x, const float* add, const float* weight, int64_t num_rows,
                        int64_t dim, float eps, float* out, const PackedMatrix& consumer,
                        QuantizedActivations* acts, ThreadPool* pool);

// cos_sin[t, 0:half] = cos(pos_t * inv_freq), cos_sin[t, half:2*half] = sin(...), with
// half = head_dim / 2 and inv_freq_i = theta^(-2i/head_dim). Computed once per forward call and
// shared by every layer. cos_sin: [num_tokens, head_dim].
void RopeCosSin(const int32_t* positions, int64_t num_tokens, int64_t head_dim, float theta,
                float* cos_sin);

// In place, neox (half-rotation) RoPE: for each token t and head h, pairs (i, i + head_dim/2)
// rotate by the angle of (t, i). x: [num_tokens, num_heads, head_dim].
void RopeNeox(float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim);

// out[r, i] = silu(gate_up[r, i]) * gate_up[r, dim + i]. gate_up: [num_rows, 2 * dim] (the
// fused gate and up projections), out: [num_rows, dim].
void SiluMul(const float* gate_up, int64_t num_rows, int64_t dim, float* out, ThreadPool* pool);

// SiluMul fused with the quantization of out for `consumer` (the down projection), as
// RmsNormQuantize: bit-identical to SiluMul then QuantizeActivations. Requires consumer
// quantized with consumer.cols() == dim.
void SiluMulQuantize(const float* gate_up, int64_t num_rows, int64_t dim, float* out,
                     const PackedMatrix& consumer, QuantizedActivations* acts, ThreadPool* pool);

// Sampling's softmax, unnormalised: in place, x[i] = exp(x[i] - max x), and returns their sum
// (about 1 or more: the largest x gives exp(0); not finite when every x is -inf; a NaN x makes
// the weights meaningless). A draw compares running sums with u times the sum instead of paying
// a pass to divide; callers wanting probabilities divide.
float SoftmaxWeights(float* x, int64_t n);
// log(sum exp(x[i])): log-probabilities are x[i] minus it. -inf when every x is -inf (or n is 0);
// meaningless when some x is NaN or +inf (logits never are).
float LogSumExp(const float* x, int64_t n);
// The first i at which the running sum w[0] + ... + w[i] (w >= 0, in double) exceeds target, or
// -1 if none does.
int64_t FirstIndexPassing(const float* w, int64_t n, double target);
// The lowest index of the largest x[i] (greedy decoding's token): NaN elements are never
// chosen; 0 when n is 0 or every element is NaN. The same index on every ISA (max is exact).
int64_t Argmax(const float* x, int64_t n);

// out[i, :] = row ids[i] of `table` ([vocab, dim], any supported dtype) converted to f32.
// Requires 0 <= ids[i] < vocab (callers validate ids). out: [num_ids, dim].
void EmbeddingLookup(const TensorView& table, const int32_t* ids, int64_t num_ids, float* out);

// out[r, i] += bias[i]. out: [num_rows, dim].
void AddBias(float* out, const float* bias, int64_t num_rows, int64_t dim);
// out[i] += x[i] for i < n (residual connections).
void AddInPlace(float* out, const float* x, int64_t n);

// The same operators on a chosen instruction set (the ones above use BestIsa()); tests and
// benchmarks use these to cover every path. Require IsaSupported(isa).
void RmsNorm(Isa isa, const float* x, const float* weight, int64_t num_rows, int64_t dim, float eps,
             float* out, ThreadPool* pool);
void AddRmsNorm(Isa isa, float* x, const float* add, const float* weight, int64_t num_rows,
                int64_t dim, float eps, float* out, ThreadPool* pool);
void RmsNormQuantize(Isa isa, const float* x, const float* weight, int64_t num_rows, int64_t dim,
                     float eps, float* out, const PackedMatrix& consumer,
                     QuantizedActivations* acts, ThreadPool* pool);
void AddRmsNormQuantize(Isa isa, float* x, const float* add, const float* weight, int64_t num_rows,
                        int64_t dim, float eps, float* out, const PackedMatrix& consumer,
                        QuantizedActivations* acts, ThreadPool* pool);
void SiluMulQuantize(Isa isa, const float* gate_up, int64_t num_rows, int64_t dim, float* out,
                     const PackedMatrix& consumer, QuantizedActivations* acts, ThreadPool* pool);
void RopeNeox(Isa isa, float* x, const float* cos_sin, int64_t num_tokens, int64_t num_heads,
              int64_t head_dim);
void SiluMul(Isa isa, const float* gate_up, int64_t num_rows, int64_t dim, float* out,
             ThreadPool* pool);
float SoftmaxWeights(Isa isa, float* x, int64_t n);
float LogSumExp(Isa isa, const float* x, int64_t n);
int64_t FirstIndexPassing(Isa isa, const float* w, int64_t n, double target);
int64_t Argmax(Isa isa, const float* x, int64_t n);
void EmbeddingLookup(Isa isa, const TensorView& table, const int32_t* ids, int64_t num_ids,
                     float* out);
void AddBias(Isa isa, float* out, const float* bias, int64_t num_rows, int64_t dim);
void AddInPlace(Isa isa, float* out, const float* x, int64_t n);

}  // namespace tinyserve::kernels
