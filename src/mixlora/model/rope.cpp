#include "mixlora/model/rope.h"

#include <cmath>

namespace mixlora::model {

at::Tensor rope_inverse_frequencies(const ModelConfig& config) {
  const int64_t d = config.head_dim;
  auto exponents = at::arange(0, d, 2, at::kFloat) / static_cast<double>(d);
  auto inv_freq = 1.0 / at::pow(config.rope_theta, exponents);
  const auto& s = config.rope_scaling;
  switch (s.type) {
    case RopeScaling::Type::none: return inv_freq;
    case RopeScaling::Type::linear:
      // HF divides positions by the factor; dividing the frequencies is the same product.
      return inv_freq / s.factor;
    case RopeScaling::Type::llama3: {
      // LLaMA 3.1: long wavelengths are slowed by `factor`, short ones kept, and the band in
      // between interpolated smoothly.
      const double old_len = static_cast<double>(s.original_max_position_embeddings);
      const double low_freq_wavelen = old_len / s.low_freq_factor;
      const double high_freq_wavelen = old_len / s.high_freq_factor;
      auto wavelen = 2.0 * M_PI / inv_freq;
      auto scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
      auto smooth =
          (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      auto smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
      auto is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
      return at::where(is_medium, smoothed, scaled);
    }
  }
  return inv_freq;
}

RotaryEmbedding::RotaryEmbedding(const ModelConfig& config, c10::Device device) {
  auto inv_freq = rope_inverse_frequencies(config);
  auto positions = at::arange(config.max_position_embeddings, at::kFloat);
  auto freqs = at::outer(positions, inv_freq);        // [P, d/2]
  auto angles = at::cat({freqs, freqs}, /*dim=*/-1);  // [P, d], halves as rotate_half expects
  cos_table_ = angles.cos().to(device);
  sin_table_ = angles.sin().to(device);
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::at_positions(const at::Tensor& positions,
                                                                c10::ScalarType dtype) const {
  auto flat = positions.reshape({-1});
  auto cos = cos_table_.index_select(0, flat).view({positions.size(0), positions.size(1), -1});
  auto sin = sin_table_.index_select(0, flat).view({positions.size(0), positions.size(1), -1});
  return {cos.unsqueeze(1).to(dtype), sin.unsqueeze(1).to(dtype)};
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  auto rotated = at::cat({-x2, x1}, /*dim=*/-1);
  return x * cos + rotated * sin;
}

}  // namespace mixlora::model
