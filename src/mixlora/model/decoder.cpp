#include "mixlora/model/decoder.h"

#include "mixlora/common/error.h"
#include "mixlora/common/torch_compat.h"
#include "mixlora/model/base_linear.h"
#include "mixlora/model/recompute.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

namespace mixlora::model {

const char* projection_name(Projection projection) {
  switch (projection) {
    case Projection::q_proj: return "q_proj";
    case Projection::k_proj: return "k_proj";
    case Projection::v_proj: return "v_proj";
    case Projection::o_proj: return "o_proj";
    case Projection::gate_proj: return "gate_proj";
    case Projection::up_proj: return "up_proj";
    case Projection::down_proj: return "down_proj";
  }
  return "?";
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto x32 = x.to(at::kFloat);
  auto normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor model_norm(const at::Tensor& x, const at::Tensor& weight, const ModelConfig& config) {
  if (!config.norm_weight_offset) return rms_norm(x, weight, config.rms_norm_eps);
  auto x32 = x.to(at::kFloat);
  auto normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + config.rms_norm_eps);
  return (normed * (1.0 + weight.to(at::kFloat))).to(x.scalar_type());
}

at::Tensor activation(const at::Tensor& x, Activation act) {
  switch (act) {
    case Activation::silu: return at::silu(x);
    case Activation::gelu: return at::gelu(x);
    // Both are the tanh approximation (HF's NewGELU and PytorchGELUTanh).
    case Activation::gelu_tanh:
    case Activation::gelu_pytorch_tanh: return at::gelu(x, "tanh");
    case Activation::relu: return at::relu(x);
  }
  return at::silu(x);
}

at::Tensor dense_feed_forward(const at::Tensor& x, const MlpWeights& mlp, Activation act) {
  auto hidden = activation(base_linear(x, mlp.gate_proj), act) * base_linear(x, mlp.up_proj);
  return base_linear(hidden, mlp.down_proj);
}

at::Tensor DecoderHooks::attention_projection(int64_t, Projection, const at::Tensor&,
                                              at::Tensor base_output, const at::Tensor&,
                                              const at::Tensor&) {
  return base_output;
}

at::Tensor DecoderHooks::feed_forward(int64_t, const at::Tensor& input, const MlpWeights& mlp,
                                      const ModelConfig& config) {
  return dense_feed_forward(input, mlp, config.hidden_act);
}

KVCache::KVCache(const ModelConfig& config, int64_t batch_size, int64_t capacity,
                 c10::ScalarType dtype, c10::Device device)
    : capacity_(capacity) {
  const auto options = at::TensorOptions(dtype).device(device);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    keys_.push_back(
        at::zeros({batch_size, config.num_kv_heads, capacity, config.head_dim}, options));
    values_.push_back(at::zeros_like(keys_.back()));
  }
  key_mask_ = at::zeros({batch_size, capacity}, at::TensorOptions(at::kLong).device(device));
}

namespace {

// The config of Gemma-3's local rotary embedding: base rope_local_theta, no scaling.
ModelConfig local_rope_config(const ModelConfig& config) {
  ModelConfig local = config;
  local.rope_theta = config.rope_local_theta;
  local.rope_scaling = RopeScaling{};
  return local;
}

}  // namespace

Decoder::Decoder(const BaseModel& model) : model_(model), rope_(model.config, model.device) {
  if (model.config.rope_local_theta > 0)
    rope_local_.emplace(local_rope_config(model.config), model.device);
}

namespace {

// [B, kv_heads, S, d] -> [B, kv_heads * groups, S, d], each kv head serving `groups`
// consecutive query heads (HF repeat_kv).
at::Tensor repeat_kv(const at::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  const auto b = x.size(0), h = x.size(1), s = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({b, h, groups, s, d}).reshape({b, h * groups, s, d});
}

// softmax(q k^T * scale (soft-capped) + mask) v. `scale` 0 means 1/sqrt(head_dim); `softcap` 0
// means none. Gemma-2/3's scale and soft-capping take the eager path, as in HF. An undefined
// `additive_mask` means plain causal attention (no padding among the keys a real query sees):
// SDPA's is_causal, which lets a GPU take FlashAttention, with no [B, 1, T, S] mask.
at::Tensor scaled_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& additive_mask, double scale = 0, double softcap = 0) {
#if MIXLORA_HAS_SDPA
  if (scale == 0 && softcap == 0) {
    if (!additive_mask.defined())
      return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
    return at::scaled_dot_product_attention(q, k, v, additive_mask);
  }
#endif
  // The math of SDPA: softmax in fp32 for low-precision models, as HF does.
  if (scale == 0) scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = activation_matmul(q, k.transpose(-1, -2)) * scale;
  if (softcap > 0) scores = at::tanh(scores / softcap) * softcap;
  auto probs = at::softmax(scores + additive_mask, /*dim=*/-1, at::kFloat).to(q.scalar_type());
  return activation_matmul(probs, v);
}

}  // namespace

bool is_right_padded(const at::Tensor& attention_mask) {
  if (!attention_mask.defined()) return true;
  const auto mask = attention_mask.to(at::kCPU, at::kBool);
  if (mask.dim() != 2 || mask.size(1) < 2) return mask.dim() == 2;
  // Right padding: once a row has a 0, the rest of it is 0 too, so no 1 follows a 0.
  return !(mask.narrow(1, 1, mask.size(1) - 1) & mask.narrow(1, 0, mask.size(1) - 1).logical_not())
              .any()
              .item<bool>();
}

at::Tensor Decoder::attention(int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                              const at::Tensor& sin, const at::Tensor& additive_mask,
                              KVCache* cache, DecoderHooks& hooks) const {
  const auto& c = model_.config;
  const auto& w = model_.layers[layer].attention;
  const int64_t batch = x.size(0), steps = x.size(1);
  auto project = [&](Projection which, const at::Tensor& weight, const at::Tensor& bias) {
    return hooks.attention_projection(layer, which, x, base_linear(x, weight, bias), weight, bias);
  };
  auto q = project(Projection::q_proj, w.q_proj, w.q_bias)
               .view({batch, steps, c.num_heads, c.head_dim})
               .transpose(1, 2);
  auto k = project(Projection::k_proj, w.k_proj, w.k_bias)
               .view({batch, steps, c.num_kv_heads, c.head_dim})
               .transpose(1, 2);
  auto v = project(Projection::v_proj, w.v_proj, w.v_bias)
               .view({batch, steps, c.num_kv_heads, c.head_dim})
               .transpose(1, 2);
  if (c.qk_norm) {
    q = model_norm(q, w.q_norm, c);
    k = model_norm(k, w.k_norm, c);
  }
  q = apply_rotary(q, cos, sin);
  k = apply_rotary(k, cos, sin);
  if (cache) {
    const int64_t past = cache->length_;
    cache->keys_[layer].narrow(2, past, steps).copy_(k);
    cache->values_[layer].narrow(2, past, steps).copy_(v);
    k = cache->keys_[layer].narrow(2, 0, past + steps);
    v = cache->values_[layer].narrow(2, 0, past + steps);
  }
  const int64_t groups = c.num_heads / c.num_kv_heads;
  const double scale = c.query_pre_attn_scalar > 0 ? 1.0 / std::sqrt(c.query_pre_attn_scalar) : 0.0;
  auto out = scaled_attention(q, repeat_kv(k, groups), repeat_kv(v, groups), additive_mask, scale,
                              c.attn_logit_softcapping);
  out = out.transpose(1, 2).reshape({batch, steps, c.num_heads * c.head_dim});
  return hooks.attention_projection(layer, Projection::o_proj, out,
                                    base_linear(out, w.o_proj, w.o_bias), w.o_proj, w.o_bias);
}

at::Tensor Decoder::hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                  KVCache* cache, DecoderHooks* hooks,
                                  bool checkpoint_layers) const {
  const auto& c = model_.config;
  static DecoderHooks
      no_adapters;  // stateless; static because checkpointed layers outlive the call
  DecoderHooks& active = hooks ? *hooks : no_adapters;
  const int64_t batch = input_ids.size(0), steps = input_ids.size(1);
  const int64_t past = cache ? cache->length_ : 0;
  if (past + steps > c.max_position_embeddings) {
    fail_input("sequence of {} tokens exceeds the model's max_position_embeddings ({})",
               past + steps, c.max_position_embeddings);
  }
  if (cache && past + steps > cache->capacity_) {
    fail_runtime("KV cache of {} positions cannot take {} more after {}", cache->capacity_, steps,
                 past);
  }
  const auto device = model_.device;
  auto ids = input_ids.to(device);
  auto mask = attention_mask.defined() ? attention_mask.to(device, at::kLong)
                                       : at::ones({batch, steps}, ids.options().dtype(at::kLong));
  // The key mask covers cached and new positions alike.
  at::Tensor key_mask = mask;
  if (cache) {
    cache->key_mask_.narrow(1, past, steps).copy_(mask);
    key_mask = cache->key_mask_.narrow(1, 0, past + steps);
  }
  // Positions count real tokens only, so left padding does not shift them.
  auto positions = (key_mask.cumsum(1) - 1).clamp_min(0).narrow(1, past, steps);
  // Named tensors, not a structured binding: C++17 lambdas (run_layer below) cannot capture one.
  at::Tensor cos, sin;
  std::tie(cos, sin) = rope_.at_positions(positions, model_.dtype);
  at::Tensor local_cos = cos, local_sin = sin;
  if (rope_local_)
    std::tie(local_cos, local_sin) = rope_local_->at_positions(positions, model_.dtype);

  // Right-padded (or unpadded) rows without a cache, as in training: every real query's
  // earlier-or-equal keys are real, so plain causal attention gives real positions the same
  // values as the mask below (padding positions differ, and reach no real token or loss).
  // Decided on a host mask only: no device sync (train::forward_backward passes the host batch).
  // Families with a sliding window, a custom scale or soft-capping keep the mask (eager path).
  const bool plain_attention =
      c.sliding_window == 0 && c.query_pre_attn_scalar == 0 && c.attn_logit_softcapping == 0;
  const bool causal_only =
      MIXLORA_HAS_SDPA && causal_fast_path_ && plain_attention && !cache &&
      (!attention_mask.defined() || (attention_mask.is_cpu() && is_right_padded(attention_mask)));
  // Otherwise an additive mask [B, 1, T, S]: a query sees earlier-or-equal real keys. Blocked
  // entries get the dtype's lowest finite value, so a row with no visible key (a left-pad query)
  // stays finite.
  at::Tensor additive_mask, sliding_mask;
  if (!causal_only) {
    auto query_index =
        at::arange(past, past + steps, ids.options().dtype(at::kLong)).view({steps, 1});
    auto key_index =
        at::arange(past + steps, ids.options().dtype(at::kLong)).view({1, past + steps});
    auto visible = (key_index <= query_index).unsqueeze(0) & key_mask.unsqueeze(1).to(at::kBool);
    const double blocked_value = model_.dtype == at::kHalf ? -65504.0 : -1e30;
    auto to_additive = [&](const at::Tensor& visible) {
      return at::zeros(visible.sizes(), at::TensorOptions(model_.dtype).device(device))
          .masked_fill(visible.logical_not(), blocked_value)
          .unsqueeze(1);
    };
    additive_mask = to_additive(visible);
    // Windowed layers (Gemma-2/3, Phi-3, Mistral) also hide keys `sliding_window` or more slots
    // back, counted in cache slots as HF counts cache positions.
    sliding_mask = additive_mask;
    if (c.sliding_window > 0) {
      sliding_mask =
          to_additive(visible & (query_index - key_index < c.sliding_window).unsqueeze(0));
    }
  }

  auto h = at::embedding(model_.embed_tokens, ids);
  if (c.scale_embeddings) {
    // Gemma: x sqrt(hidden), the factor rounded to the model dtype first as HF does.
    h = h * at::scalar_tensor(std::sqrt(static_cast<double>(c.hidden_size)),
                              at::TensorOptions(model_.dtype).device(device));
  }
  // Captures by value: a checkpointed layer runs again in backward, after this call returned.
  DecoderHooks* layer_hooks = &active;
  auto run_layer = [this, cos, sin, local_cos, local_sin, additive_mask, sliding_mask, cache,
                    layer_hooks](int64_t layer, at::Tensor h) {
    const auto& c = model_.config;
    auto& active = *layer_hooks;
    const auto& w = model_.layers[layer];
    const bool sliding = c.layer_is_sliding(layer);
    auto attended =
        attention(layer, model_norm(h, w.input_norm, c), sliding ? local_cos : cos,
                  sliding ? local_sin : sin, sliding ? sliding_mask : additive_mask, cache, active);
    if (c.sandwich_norms) attended = model_norm(attended, w.attention_output_norm, c);
    h = h + attended;
    auto fed = active.feed_forward(layer, model_norm(h, w.post_attention_norm, c), w.mlp, c);
    if (c.sandwich_norms) fed = model_norm(fed, w.feed_forward_output_norm, c);
    return h + fed;
  };
  const bool checkpointing = checkpoint_layers && !cache && at::GradMode::is_enabled();
  auto generators = checkpointing ? active.generators() : std::vector<at::Generator>{};
  if (checkpointing) generators.push_back(at::detail::getDefaultCPUGenerator());
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    if (!checkpointing) {
      h = run_layer(layer, h);
      continue;
    }
    auto block = [run_layer, layer, layer_hooks](const at::Tensor& input) {
      std::vector<at::Tensor> outputs{run_layer(layer, input)};
      for (auto& t : layer_hooks->take_layer_outputs()) outputs.push_back(t);
      return outputs;
    };
    auto outputs = run_recomputed(block, h, generators);
    h = outputs[0];
    active.restore_layer_outputs({outputs.begin() + 1, outputs.end()});
  }
  if (cache) cache->length_ = past + steps;
  return model_norm(h, model_.final_norm, c);
}

at::Tensor Decoder::logits(const at::Tensor& hidden) const {
  auto logits = base_linear(hidden, model_.lm_head).to(at::kFloat);
  const double cap = model_.config.final_logit_softcapping;
  if (cap > 0) logits = at::tanh(logits / cap) * cap;  // Gemma-2
  return logits;
}

}  // namespace mixlora::model
