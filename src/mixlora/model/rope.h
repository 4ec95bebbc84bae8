// Rotary position embeddings in the Hugging Face convention (rotate_half over two halves of
// each head), with the linear and llama3 frequency scalings of config.json.
#pragma once

#include "mixlora/model/model_config.h"

#include <ATen/ATen.h>

#include <utility>

namespace mixlora::model {

// Inverse frequencies [head_dim / 2], fp32, after rope_scaling.
at::Tensor rope_inverse_frequencies(const ModelConfig& config);

class RotaryEmbedding {
 public:
  RotaryEmbedding(const ModelConfig& config, c10::Device device);

  // cos and sin for integer positions [B, T]: two [B, 1, T, head_dim] tensors in `dtype`,
  // ready to broadcast over heads. Positions must lie in [0, max_position_embeddings).
  std::pair<at::Tensor, at::Tensor> at_positions(const at::Tensor& positions,
                                                 c10::ScalarType dtype) const;

 private:
  at::Tensor cos_table_;  // [max_position_embeddings, head_dim], fp32
  at::Tensor sin_table_;
};

// x * cos + rotate_half(x) * sin for x of shape [B, heads, T, head_dim].
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace mixlora::model
