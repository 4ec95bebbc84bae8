// The frozen base model: its config and weights, loaded from a Hugging Face directory.
#pragma once

#include "mixlora/model/model_config.h"

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace mixlora::model {

struct AttentionWeights {
  at::Tensor q_proj, k_proj, v_proj, o_proj;  // [out, in], as nn.Linear stores them
  at::Tensor q_bias, k_bias, v_bias, o_bias;  // undefined when the model has none
  at::Tensor q_norm, k_norm;  // [head_dim] RMSNorm of each head (Qwen3, Gemma-3); else undefined
};

struct MlpWeights {
  at::Tensor gate_proj, up_proj, down_proj;  // SwiGLU: down(act(gate x) * up x)
};

// Phi-3 stores q/k/v as one qkv_proj and gate/up as one gate_up_proj; the loader splits them into
// the tensors below (row blocks, so the products are the same) and save_base_model fuses them back.
struct DecoderLayerWeights {
  at::Tensor input_norm;           // RMSNorm before attention
  at::Tensor post_attention_norm;  // RMSNorm before the feed-forward block (Gemma-2/3:
                                   // pre_feedforward_layernorm)
  // Gemma-2/3 only (sandwich norms), else undefined: RMSNorm of the attention output (HF's
  // post_attention_layernorm) and of the feed-forward output, each before its residual add.
  at::Tensor attention_output_norm;
  at::Tensor feed_forward_output_norm;
  AttentionWeights attention;
  MlpWeights mlp;
};

struct BaseModel {
  ModelConfig config;
  at::Tensor embed_tokens;  // [vocab, hidden]
  std::vector<DecoderLayerWeights> layers;
  at::Tensor final_norm;
  at::Tensor lm_head;  // [vocab, hidden]; the same tensor as embed_tokens when tied
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  std::string source;  // the directory it was loaded from
};

// Loads DIR (config.json + safetensors, single or sharded), verifying that every tensor the
// architecture needs is present with the right shape and that no unknown tensor is left over.
// Weights are converted to `dtype` on `device` and never require gradients.
BaseModel load_base_model(const std::string& dir, c10::ScalarType dtype, c10::Device device);

// A model of the given shape with random weights (benchmarks and tests); deterministic for a
// seed. Linear weights ~ N(0, 0.02), norms the identity (1, or 0 where they scale by 1 + w).
BaseModel random_base_model(const ModelConfig& config, c10::ScalarType dtype, c10::Device device,
                            uint64_t seed);

// Writes `model` as a Hugging Face directory (config.json + model.safetensors, fp32) that
// load_base_model and transformers read. For test fixtures and models we train ourselves.
void save_base_model(const BaseModel& model, const std::string& dir);

// The config.json content for `config`.
nlohmann::json model_config_json(const ModelConfig& config);

// Hugging Face tensor names of one layer, shared by the loader and adapter code.
std::string layer_prefix(int64_t layer);  // "model.layers.{i}."

}  // namespace mixlora::model
