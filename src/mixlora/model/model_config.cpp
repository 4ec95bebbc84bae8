#include "mixlora/model/model_config.h"

#include "mixlora/common/error.h"
#include "mixlora/io/json_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace mixlora::model {

namespace {

constexpr const char* kSupportedArchitectures =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, GemmaForCausalLM, "
    "Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM";

// Each supported architecture and its Hugging Face model_type.
struct Family {
  const char* architecture;
  const char* model_type;
};
constexpr Family kFamilies[] = {
    {"LlamaForCausalLM", "llama"},        {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},        {"Qwen3ForCausalLM", "qwen3"},
    {"GemmaForCausalLM", "gemma"},        {"Gemma2ForCausalLM", "gemma2"},
    {"Gemma3ForCausalLM", "gemma3_text"}, {"Phi3ForCausalLM", "phi3"},
};

// A number whose config class has a non-zero default that `null` switches off (Gemma-2's
// softcaps): absent -> `fallback`, null -> 0, else the number.
double number_null_is_zero(const nlohmann::json& json, const std::string& key,
                           const std::string& source, double fallback) {
  if (!json.contains(key)) return fallback;
  return io::get_number(json, key, source).value_or(0.0);
}

// Which layers use the sliding window: `layer_types` (newer exports) when present, else the
// family's fixed pattern.
std::vector<bool> parse_sliding_layers(const nlohmann::json& json, const ModelConfig& c,
                                       const std::string& source) {
  std::vector<bool> sliding(static_cast<size_t>(c.num_layers), false);
  auto types = json.find("layer_types");
  if (types != json.end() && !types->is_null()) {
    if (!types->is_array() || static_cast<int64_t>(types->size()) != c.num_layers) {
      fail_input("{}: layer_types: expected a list of {} entries (one per layer), got {}", source,
                 c.num_layers, io::describe(*types));
    }
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const auto& t = (*types)[static_cast<size_t>(i)];
      const std::string kind = t.is_string() ? t.get<std::string>() : std::string();
      if (kind == "sliding_attention") {
        sliding[static_cast<size_t>(i)] = true;
      } else if (kind != "full_attention") {
        fail_input(
            "{}: layer_types[{}]: expected \"sliding_attention\" or \"full_attention\", got {}",
            source, i, io::describe(t));
      }
    }
    return sliding;
  }
  if (c.model_type == "gemma2") {
    for (int64_t i = 0; i < c.num_layers; ++i) sliding[i] = i % 2 == 0;  // even layers local
  } else if (c.model_type == "gemma3_text") {
    const int64_t pattern = io::get_int(json, "sliding_window_pattern", source).value_or(6);
    if (pattern <= 0)
      fail_input("{}: sliding_window_pattern must be positive, got {}", source, pattern);
    for (int64_t i = 0; i < c.num_layers; ++i)
      sliding[i] = (i + 1) % pattern != 0;  // every pattern-th global
  } else {
    sliding.assign(sliding.size(), true);  // Phi-3: every layer
  }
  return sliding;
}

// The family-specific keys of config.json (ModelConfig's second block).
void parse_family_numerics(const nlohmann::json& json, ModelConfig& c, const std::string& source) {
  const std::string& type = c.model_type;
  const bool gemma = type == "gemma" || type == "gemma2" || type == "gemma3_text";
  c.qk_norm = type == "qwen3" || type == "gemma3_text";
  c.norm_weight_offset = gemma;
  c.scale_embeddings = gemma;
  c.sandwich_norms = type == "gemma2" || type == "gemma3_text";
  c.fused_projections = type == "phi3";
  if (gemma) {
    // Gemma ignores hidden_act (its original configs say "gelu") for hidden_activation,
    // defaulting to the tanh approximation.
    const auto name =
        io::get_string(json, "hidden_activation", source).value_or("gelu_pytorch_tanh");
    const auto activation = activation_from_name(name);
    if (!activation) {
      fail_input("{}: hidden_activation '{}' is not supported ({})", source, name,
                 fmt::join(activation_names(), ", "));
    }
    c.hidden_act = *activation;
  }
  if (type == "gemma2" || type == "gemma3_text") {
    c.query_pre_attn_scalar = io::get_number(json, "query_pre_attn_scalar", source).value_or(256.0);
    if (c.query_pre_attn_scalar <= 0)
      fail_input("{}: query_pre_attn_scalar must be positive", source);
    const bool gemma2 = type == "gemma2";
    c.attn_logit_softcapping =
        number_null_is_zero(json, "attn_logit_softcapping", source, gemma2 ? 50.0 : 0.0);
    c.final_logit_softcapping =
        number_null_is_zero(json, "final_logit_softcapping", source, gemma2 ? 30.0 : 0.0);
    if (c.attn_logit_softcapping < 0 || c.final_logit_softcapping < 0) {
      fail_input("{}: logit softcapping values must not be negative", source);
    }
    c.sliding_window =
        static_cast<int64_t>(number_null_is_zero(json, "sliding_window", source, 4096));
  } else if (type == "phi3") {
    c.sliding_window = io::get_int(json, "sliding_window", source).value_or(0);
    const double partial = io::get_number(json, "partial_rotary_factor", source).value_or(1.0);
    if (partial != 1.0) {
      fail_input("{}: partial_rotary_factor {} is not supported (Phi-3 with full rotary only)",
                 source, partial);
    }
  }
  if (c.sliding_window < 0) fail_input("{}: sliding_window must not be negative", source);
  if (c.sliding_window > 0) c.sliding_layers = parse_sliding_layers(json, c, source);
  if (type == "gemma3_text") {
    c.rope_local_theta = io::get_number(json, "rope_local_base_freq", source).value_or(10000.0);
    if (c.rope_local_theta <= 0) fail_input("{}: rope_local_base_freq must be positive", source);
  }
}

int64_t require_positive(const nlohmann::json& json, const std::string& key,
                         const std::string& source) {
  const auto value = io::get_int(json, key, source);
  if (!value) fail_input("{}: missing required key '{}'", source, key);
  if (*value <= 0) fail_input("{}: {}: must be positive, got {}", source, key, *value);
  return *value;
}

// eos_token_id may be a list (LLaMA 3); the first entry is the one generation stops on.
int64_t token_id(const nlohmann::json& json, const std::string& key, const std::string& source,
                 int64_t fallback) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return fallback;
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer())
    return (*it)[0].get<int64_t>();
  if (it->is_number_integer()) return it->get<int64_t>();
  fail_input("{}: {}: expected a token id, got {}", source, key, io::describe(*it));
}

RopeScaling parse_rope_scaling(const nlohmann::json& json, const std::string& source) {
  RopeScaling scaling;
  auto it = json.find("rope_scaling");
  if (it == json.end() || it->is_null()) return scaling;
  const std::string where = source + ": rope_scaling";
  if (!it->is_object()) fail_input("{}: expected an object, got {}", where, io::describe(*it));
  // HF wrote "type" before 4.43 and "rope_type" since; accept both.
  auto type = io::get_string(*it, "rope_type", where);
  if (!type) type = io::get_string(*it, "type", where);
  if (!type) fail_input("{}: missing 'rope_type'", where);
  if (*type == "default") return scaling;
  scaling.factor = io::get_number(*it, "factor", where).value_or(1.0);
  if (scaling.factor <= 0) fail_input("{}.factor: must be positive, got {}", where, scaling.factor);
  if (*type == "linear") {
    scaling.type = RopeScaling::Type::linear;
  } else if (*type == "llama3") {
    scaling.type = RopeScaling::Type::llama3;
    scaling.low_freq_factor = io::get_number(*it, "low_freq_factor", where).value_or(1.0);
    scaling.high_freq_factor = io::get_number(*it, "high_freq_factor", where).value_or(4.0);
    scaling.original_max_position_embeddings =
        io::get_int(*it, "original_max_position_embeddings", where).value_or(8192);
    if (scaling.high_freq_factor <= scaling.low_freq_factor) {
      fail_input("{}: high_freq_factor ({}) must exceed low_freq_factor ({})", where,
                 scaling.high_freq_factor, scaling.low_freq_factor);
    }
  } else {
    fail_input("{}: rope type '{}' is not supported (supported: default, linear, llama3)", where,
               *type);
  }
  return scaling;
}

}  // namespace

ModelConfig parse_model_config(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object())
    fail_input("{}: expected a JSON object, got {}", source, io::describe(json));
  ModelConfig config;

  auto architectures = json.find("architectures");
  if (architectures != json.end() && architectures->is_array() && !architectures->empty() &&
      (*architectures)[0].is_string()) {
    config.architecture = (*architectures)[0].get<std::string>();
  } else {
    // Some exports omit "architectures"; model_type still identifies the family.
    const auto model_type = io::get_string(json, "model_type", source).value_or("");
    for (const auto& family : kFamilies) {
      if (model_type == family.model_type) config.architecture = family.architecture;
    }
    if (config.architecture.empty()) {
      fail_input("{}: no 'architectures' entry and model_type '{}' is unknown (supported: {})",
                 source, model_type, kSupportedArchitectures);
    }
  }
  const Family* family = nullptr;
  for (const auto& f : kFamilies) {
    if (config.architecture == f.architecture) family = &f;
  }
  if (!family) {
    fail_input("{}: architecture '{}' is not supported (supported: {})", source,
               config.architecture, kSupportedArchitectures);
  }
  config.model_type = family->model_type;
  const bool is_qwen2 = config.model_type == "qwen2";

  config.vocab_size = require_positive(json, "vocab_size", source);
  config.hidden_size = require_positive(json, "hidden_size", source);
  config.intermediate_size = require_positive(json, "intermediate_size", source);
  config.num_layers = require_positive(json, "num_hidden_layers", source);
  config.num_heads = require_positive(json, "num_attention_heads", source);
  config.num_kv_heads = io::get_int(json, "num_key_value_heads", source).value_or(config.num_heads);
  if (config.num_kv_heads <= 0 || config.num_heads % config.num_kv_heads != 0) {
    fail_input("{}: num_key_value_heads ({}) must divide num_attention_heads ({})", source,
               config.num_kv_heads, config.num_heads);
  }
  const auto head_dim = io::get_int(json, "head_dim", source);
  if (head_dim) {
    config.head_dim = *head_dim;
  } else {
    if (config.hidden_size % config.num_heads != 0) {
      fail_input("{}: hidden_size ({}) is not divisible by num_attention_heads ({})", source,
                 config.hidden_size, config.num_heads);
    }
    config.head_dim = config.hidden_size / config.num_heads;
  }
  if (config.head_dim <= 0 || config.head_dim % 2 != 0) {
    fail_input("{}: head_dim must be a positive even number for rotary embeddings, got {}", source,
               config.head_dim);
  }
  config.max_position_embeddings =
      io::get_int(json, "max_position_embeddings", source).value_or(2048);
  if (config.max_position_embeddings <= 0) {
    fail_input("{}: max_position_embeddings must be positive, got {}", source,
               config.max_position_embeddings);
  }
  config.rms_norm_eps = io::get_number(json, "rms_norm_eps", source).value_or(1e-6);
  config.rope_theta = io::get_number(json, "rope_theta", source).value_or(10000.0);
  if (config.rope_theta <= 0) fail_input("{}: rope_theta must be positive", source);
  config.rope_scaling = parse_rope_scaling(json, source);
  // transformers' default when the key is absent: Gemma's config classes tie, the others do not.
  const bool ties_by_default = config.model_type.rfind("gemma", 0) == 0;
  config.tie_word_embeddings =
      io::get_bool(json, "tie_word_embeddings", source).value_or(ties_by_default);
  config.attention_bias = is_qwen2 || io::get_bool(json, "attention_bias", source).value_or(false);
  const auto hidden_act = io::get_string(json, "hidden_act", source).value_or("silu");
  const auto activation = activation_from_name(hidden_act);
  if (!activation) {
    fail_input("{}: hidden_act '{}' is not supported ({})", source, hidden_act,
               fmt::join(activation_names(), ", "));
  }
  config.hidden_act = *activation;
  parse_family_numerics(json, config, source);
  // transformers 4.46 masks keys at or before (query - sliding_window) for Mistral whenever
  // sliding_window is set, and for Qwen2 only with use_sliding_window (its config drops the
  // window otherwise), in every layer; LLaMA has none.
  const bool window_applies =
      config.architecture == "MistralForCausalLM" ||
      (is_qwen2 && io::get_bool(json, "use_sliding_window", source).value_or(false));
  if (window_applies) {
    const auto window = json.find("sliding_window");
    if (window != json.end() && !window->is_null()) {
      if (!window->is_number_integer() || window->get<int64_t>() <= 0) {
        fail_input("{}: sliding_window: expected a positive integer or null, got {}", source,
                   io::describe(*window));
      }
      config.sliding_window = window->get<int64_t>();
      config.sliding_layers.assign(static_cast<size_t>(config.num_layers), true);
    }
  }
  config.bos_token_id = token_id(json, "bos_token_id", source, 1);
  config.eos_token_id = token_id(json, "eos_token_id", source, 2);
  config.pad_token_id = token_id(json, "pad_token_id", source, -1);
  config.torch_dtype = io::get_string(json, "torch_dtype", source).value_or("float32");
  return config;
}

ModelConfig load_model_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) {
    fail_input(
        "{}: base model directory not found (expected a Hugging Face model directory "
        "with config.json and model.safetensors)",
        model_dir);
  }
  const std::string path = (fs::path(model_dir) / "config.json").string();
  if (!fs::exists(path, ec)) {
    fail_input("{}: missing config.json (is this a Hugging Face model directory?)", model_dir);
  }
  return parse_model_config(io::read_json_file(path), path);
}

}  // namespace mixlora::model
