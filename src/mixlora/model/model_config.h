// The shape and numerics of a decoder-only base model, read from a Hugging Face config.json.
#pragma once

#include "mixlora/model/activation.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlora::model {

// rope_scaling of config.json. "llama3" rescales low frequencies (LLaMA 3.1); "linear" divides
// every position by `factor`.
struct RopeScaling {
  enum class Type { none, linear, llama3 };
  Type type = Type::none;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // LlamaForCausalLM, ..., Gemma3ForCausalLM (docs/base-models.md)
  // The Hugging Face model_type of the family: llama, mistral, qwen2, qwen3, gemma, gemma2,
  // gemma3_text, phi3 (what the MixLoRA plugin and MoE-PEFT dispatch on).
  std::string model_type = "llama";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2 always, LLaMA when attention_bias: true)
  Activation hidden_act = Activation::silu;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  int64_t pad_token_id = -1;  // -1: none declared
  std::string torch_dtype = "float32";

  // Numerics of the families beyond LLaMA (docs/base-models.md); the defaults are LLaMA's.
  bool qk_norm = false;  // RMSNorm over each head of q and k before RoPE (Qwen3, Gemma-3)
  bool norm_weight_offset = false;    // RMSNorm scales by (1 + w) in fp32 (Gemma, Gemma-2/3)
  bool scale_embeddings = false;      // embeddings x sqrt(hidden_size) (Gemma, Gemma-2/3)
  bool sandwich_norms = false;        // also norms on the attention and FFN outputs (Gemma-2/3)
  bool fused_projections = false;     // qkv_proj and gate_up_proj stored fused (Phi-3)
  double query_pre_attn_scalar = 0;   // scores scaled by its ^-1/2; 0: by head_dim^-1/2 (Gemma-2/3)
  double attn_logit_softcapping = 0;  // scores = cap * tanh(scores / cap); 0: none (Gemma-2)
  double final_logit_softcapping = 0;  // the same on the logits (Gemma-2)
  int64_t sliding_window = 0;          // a query sees the last `sliding_window` keys; 0: none
  std::vector<bool> sliding_layers;  // per layer: windowed (and local rope on Gemma-3); empty: none
  double rope_local_theta = 0;  // rope base of windowed layers, no scaling; 0: rope_theta (Gemma-3)

  bool layer_is_sliding(int64_t layer) const {
    return sliding_window > 0 && layer < static_cast<int64_t>(sliding_layers.size()) &&
           sliding_layers[layer];
  }
};

// Parses and validates config.json content; `source` names the file in error messages.
ModelConfig parse_model_config(const nlohmann::json& json, const std::string& source);

// Reads DIR/config.json. Throws InputError naming the file and the key on any problem.
ModelConfig load_model_config(const std::string& model_dir);

}  // namespace mixlora::model
