// The shape and numerics of a decoder-only base model, read from a Hugging Face config.json.
#pragma once

#include "mixlora/model/activation.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

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
  std::string architecture;  // LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM
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
  // Keys at or before query position - sliding_window are masked (Mistral's sliding_window,
  // Qwen2's when use_sliding_window is true, as transformers' masks do); 0 = no window.
  int64_t sliding_window = 0;
  Activation hidden_act = Activation::silu;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  int64_t pad_token_id = -1;  // -1: none declared
  std::string torch_dtype = "float32";
};

// Parses and validates config.json content; `source` names the file in error messages.
ModelConfig parse_model_config(const nlohmann::json& json, const std::string& source);

// Reads DIR/config.json. Throws InputError naming the file and the key on any problem.
ModelConfig load_model_config(const std::string& model_dir);

}  // namespace mixlora::model
