// The decoder-only transformer forward pass over a frozen BaseModel:
//   h = embed(ids); per layer: h += attn(rmsnorm(h)); h += ffn(rmsnorm(h)); h = rmsnorm(h).
// Batched with padding masks (left or right padding), with an optional KV cache for
// generation, and with hooks through which adapters change projections and feed-forward blocks.
#pragma once

#include "mixlora/model/base_model.h"
#include "mixlora/model/rope.h"

#include <ATen/ATen.h>

#include <optional>
#include <vector>

namespace mixlora::model {

enum class Projection { q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj };
const char* projection_name(Projection projection);

// RMSNorm in fp32 whatever the input dtype (as HF does), scaled by `weight`.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// The model's RMSNorm: rms_norm, or for Gemma (config.norm_weight_offset) the normalised x times
// (1 + weight) in fp32, cast back at the end, as Gemma's RMSNorm does.
at::Tensor model_norm(const at::Tensor& x, const at::Tensor& weight, const ModelConfig& config);

// The activation of a feed-forward block (model/activation.h).
at::Tensor activation(const at::Tensor& x, Activation act);

// The frozen SwiGLU block: down(act(gate x) * up x).
at::Tensor dense_feed_forward(const at::Tensor& x, const MlpWeights& mlp, Activation act);

// Adapters plug in here. The defaults leave the base model unchanged.
class DecoderHooks {
 public:
  virtual ~DecoderHooks() = default;
  // `base_output` = W x (+ b) of an attention projection; return it with any adapter delta
  // added. W and b (b may be undefined) are given for adapters that rescale W (DoRA).
  virtual at::Tensor attention_projection(int64_t layer, Projection projection,
                                          const at::Tensor& input, at::Tensor base_output,
                                          const at::Tensor& weight, const at::Tensor& bias);
  // The whole feed-forward block of a layer on normalised hidden states [B, T, H].
  virtual at::Tensor feed_forward(int64_t layer, const at::Tensor& input, const MlpWeights& mlp,
                                  const ModelConfig& config);

  // For gradient checkpointing. A checkpointed layer's side results that later losses read
  // (router records) must leave it as outputs of the checkpoint node to get gradients:
  // take_layer_outputs removes what the layer just recorded and returns its differentiable
  // tensors; restore_layer_outputs records them again in their node-attached form.
  virtual std::vector<at::Tensor> take_layer_outputs() { return {}; }
  virtual void restore_layer_outputs(const std::vector<at::Tensor>& /*tensors*/) {}
  // Generators whose draws (dropout, jitter) the recomputation must replay.
  virtual std::vector<at::Generator> generators() const { return {}; }
};

// Keys and values of past positions, for incremental decoding. All rows share one time axis;
// left padding is expressed through the key mask.
class KVCache {
 public:
  KVCache(const ModelConfig& config, int64_t batch_size, int64_t capacity, c10::ScalarType dtype,
          c10::Device device);
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }

 private:
  friend class Decoder;
  std::vector<at::Tensor> keys_;    // per layer [B, kv_heads, capacity, head_dim]
  std::vector<at::Tensor> values_;  // same
  at::Tensor key_mask_;             // [B, capacity], 1 for real tokens
  int64_t length_ = 0;
  int64_t capacity_ = 0;
};

class Decoder {
 public:
  explicit Decoder(const BaseModel& model);

  // input_ids [B, T] int64; attention_mask [B, T] (1 = token, 0 = padding) or undefined for no
  // padding. With a cache, the T new tokens follow the cached ones and are appended to it.
  // Returns the final-norm hidden states [B, T, hidden] in the model dtype.
  // With `checkpoint_layers` (training), each layer is recomputed in backward instead of keeping
  // its activations (model/recompute.h); `hooks` must then outlive the backward pass.
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                           KVCache* cache = nullptr, DecoderHooks* hooks = nullptr,
                           bool checkpoint_layers = false) const;

  // Vocabulary logits in fp32 for hidden states [..., hidden].
  at::Tensor logits(const at::Tensor& hidden) const;

  const BaseModel& model() const { return model_; }

  // LibTorch 2.x: right-padded batches without a cache (training) attend with SDPA's is_causal
  // and no mask (FlashAttention on a GPU). Off: always the additive-mask path (the reference).
  void set_causal_fast_path(bool on) { causal_fast_path_ = on; }

 private:
  at::Tensor attention(int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin, const at::Tensor& additive_mask, KVCache* cache,
                       DecoderHooks& hooks) const;

  const BaseModel& model_;
  RotaryEmbedding rope_;
  // Gemma-3's windowed layers rotate with their own base (rope_local_theta), unscaled.
  std::optional<RotaryEmbedding> rope_local_;
  bool causal_fast_path_ = true;
};

// True when no row of a [B, T] mask has a 1 after a 0 (or the mask is undefined). Reads a device
// mask back to the host: call it on host masks.
bool is_right_padded(const at::Tensor& attention_mask);

}  // namespace mixlora::model
