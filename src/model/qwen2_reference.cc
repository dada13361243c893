#include "model/qwen2_reference.h"

#include <cmath>

#include "kernels/quant_formats.h"

namespace tinyserve {
namespace {

std::vector<float> ToF32(const TensorView& t) {
  std::vector<float> out(t.NumElements());
  const int64_t cols = t.RowLength();
  const uint64_t row_bytes = *RowBytes(t.dtype, cols);
  for (int64_t r = 0; r < t.NumRows(); ++r)
    kernels::DequantizeRow(t.dtype, static_cast<const uint8_t*>(t.data) + r * row_bytes,
                           out.data() + r * cols, cols);
  return out;
}

}  // namespace

StatusOr<Qwen2Reference> Qwen2Reference::Create(const ModelConfig& config, const Qwen2Tensors& t) {
  TS_RETURN_IF_ERROR(ValidateModelConfig(config));
  Qwen2Reference r;
  r.config_ = config;
  r.embed_ = ToF32(t.embed);
  r.lm_head_ = ToF32(t.lm_head());
  r.final_norm_ = ToF32(t.final_norm);
  for (const Qwen2LayerTensors& s : t.layers) {
    r.layers_.push_back(Layer{ToF32(s.attn_norm), ToF32(s.q), ToF32(s.k), ToF32(s.v),
                              ToF32(s.q_bias), ToF32(s.k_bias), ToF32(s.v_bias), ToF32(s.o),
                              ToF32(s.ffn_norm), ToF32(s.gate), ToF32(s.up), ToF32(s.down)});
  }
  return r;
}

void Qwen2Reference::Linear(const std::vector<float>& w, const float* bias, const float* x,
                            int64_t out_dim, int64_t in_dim, float* y) {
  for (int64_t o = 0; o < out_dim; ++o) {
    double sum = bias ? bias[o] : 0.0;
    for (int64_t i = 0; i < in_dim; ++i) sum += double(w[o * in_dim + i]) * x[i];
    y[o] = static_cast<float>(sum);
  }
}

void Qwen2Reference::RmsNorm(const float* x, const std::vector<float>& w, float* y) const {
  const int64_t n = config_.hidden_size;
  double sum_sq = 0;
  for (int64_t i = 0; i < n; ++i) sum_sq += double(x[i]) * x[i];
  const double inv_rms = 1.0 / std::sqrt(sum_sq / n + config_.rms_norm_eps);
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i] * inv_rms * w[i]);
}

// Neox RoPE: dimension i rotates with i + head_dim/2 by position * theta^(-2i/head_dim).
void Qwen2Reference::Rope(float* x, int64_t num_heads, int64_t position) const {
  const int64_t d = config_.head_dim, half = d / 2;
  for (int64_t h = 0; h < num_heads; ++h) {
    float* v = x + h * d;
    for (int64_t i = 0; i < half; ++i) {
      const double inv_freq = std::pow(config_.rope_theta, -2.0 * i / d);
      const double angle = position * inv_freq;
      const double c = std::cos(angle), s = std::sin(angle);
      const double a = v[i], b = v[i + half];
      v[i] = static_cast<float>(a * c - b * s);
      v[i + half] = static_cast<float>(b * c + a * s);
    }
  }
}

std::vector<float> Qwen2Reference::Forward(Sequence* seq, std::span<const int32_t> tokens) const {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size, d = c.head_dim, ffn = c.intermediate_size;
  const int64_t q_dim = c.num_heads * d, kv_dim = c.num_kv_heads * d;
  const int64_t group = c.num_heads / c.num_kv_heads;
  if (seq->k.empty()) {
    seq->k.resize(c.num_layers);
    seq->v.resize(c.num_layers);
  }
  std::vector<float> logits(tokens.size() * c.vocab_size);
  std::vector<float> x(hidden), n(hidden), q(q_dim), k(kv_dim), v(kv_dim), attn(q_dim), tmp(hidden),
      gate(ffn), up(ffn), scores;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int64_t pos = seq->length;
    std::copy_n(embed_.begin() + tokens[t] * hidden, hidden, x.begin());
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const Layer& L = layers_[l];
      // Attention block.
      RmsNorm(x.data(), L.attn_norm, n.data());
      Linear(L.q, L.q_bias.data(), n.data(), q_dim, hidden, q.data());
      Linear(L.k, L.k_bias.data(), n.data(), kv_dim, hidden, k.data());
      Linear(L.v, L.v_bias.data(), n.data(), kv_dim, hidden, v.data());
      Rope(q.data(), c.num_heads, pos);
      Rope(k.data(), c.num_kv_heads, pos);
      seq->k[l].insert(seq->k[l].end(), k.begin(), k.end());
      seq->v[l].insert(seq->v[l].end(), v.begin(), v.end());
      const int64_t len = pos + 1;  // causal: this token sees positions 0..pos
      scores.resize(len);
      for (int64_t h = 0; h < c.num_heads; ++h) {
        const int64_t kvh = h / group;
        double max_score = -INFINITY;
        for (int64_t j = 0; j < len; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i)
            dot += double(q[h * d + i]) * seq->k[l][j * kv_dim + kvh * d + i];
          scores[j] = static_cast<float>(dot / std::sqrt(double(d)));
          max_score = std::max(max_score, double(scores[j]));
        }
        double denom = 0;
        for (int64_t j = 0; j < len; ++j) denom += std::exp(scores[j] - max_score);
        for (int64_t i = 0; i < d; ++i) {
          double acc = 0;
          for (int64_t j = 0; j < len; ++j)
            acc += std::exp(scores[j] - max_score) / denom * seq->v[l][j * kv_dim + kvh * d + i];
          attn[h * d + i] = static_cast<float>(acc);
        }
      }
      Linear(L.o, nullptr, attn.data(), hidden, q_dim, tmp.data());
      for (int64_t i = 0; i < hidden; ++i) x[i] += tmp[i];
      // MLP block: down(silu(gate(m)) * up(m)).
      RmsNorm(x.data(), L.ffn_norm, n.data());
      Linear(L.gate, nullptr, n.data(), ffn, hidden, gate.data());
      Linear(L.up, nullptr, n.data(), ffn, hidden, up.data());
      for (int64_t i = 0; i < ffn; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
      Linear(L.down, nullptr, gate.data(), hidden, ffn, tmp.data());
      for (int64_t i = 0; i < hidden; ++i) x[i] += tmp[i];
    }
    RmsNorm(x.data(), final_norm_, n.data());
    Linear(lm_head_, nullptr, n.data(), c.vocab_size, hidden, logits.data() + t * c.vocab_size);
    ++seq->length;
  }
  return logits;
}

}  // namespace tinyserve
