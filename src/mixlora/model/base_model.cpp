#include "mixlora/model/base_model.h"

#include "mixlora/common/error.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/io/weight_store.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include <algorithm>
#include <set>

namespace mixlora::model {

std::string layer_prefix(int64_t layer) { return fmt::format("model.layers.{}.", layer); }

namespace {

// Hands out named tensors from the store, checking shapes and remembering what was used so
// that leftovers can be reported (the verify-at-load habit of ScaleLLM).
class WeightLoader {
 public:
  WeightLoader(const io::WeightStore& store, const std::string& dir, c10::ScalarType dtype,
               c10::Device device)
      : store_(store), dir_(dir), dtype_(dtype), device_(device) {}

  at::Tensor take(const std::string& name, std::vector<int64_t> shape) {
    if (!store_.contains(name)) {
      fail_input(
          "{}: missing tensor '{}' (expected shape [{}]); is this checkpoint the "
          "architecture its config.json names?",
          dir_, name, fmt::join(shape, ", "));
    }
    const auto& info = store_.info(name);
    if (info.shape != shape) {
      fail_input("{}: tensor '{}' has shape [{}] but config.json implies [{}]", dir_, name,
                 fmt::join(info.shape, ", "), fmt::join(shape, ", "));
    }
    // An integer or bool weight would be converted without complaint, and mean nothing.
    if (!at::isFloatingType(io::scalar_type(info.dtype))) {
      fail_input("{}: tensor '{}' is {}, but weights must be floating point (F32, F16, BF16)", dir_,
                 name, io::dtype_name(info.dtype));
    }
    used_.insert(name);
    return store_.load(name).to(device_, dtype_).contiguous();
  }

  bool has(const std::string& name) const { return store_.contains(name); }
  void skip(const std::string& name) { used_.insert(name); }

  void reject_leftovers() const {
    std::vector<std::string> unexpected;
    for (const auto& name : store_.names()) {
      // Old exports carry the rotary inverse frequencies as buffers; we recompute them.
      if (used_.count(name) || name.find("rotary_emb.inv_freq") != std::string::npos) continue;
      unexpected.push_back(name);
    }
    if (unexpected.empty()) return;
    const size_t shown = std::min<size_t>(unexpected.size(), 3);
    fail_input(
        "{}: {} unexpected tensor(s), e.g. '{}'; the checkpoint does not match its "
        "config.json (wrong num_hidden_layers or architecture?)",
        dir_, unexpected.size(), fmt::join(unexpected.begin(), unexpected.begin() + shown, "', '"));
  }

 private:
  const io::WeightStore& store_;
  std::string dir_;
  c10::ScalarType dtype_;
  c10::Device device_;
  std::set<std::string> used_;
};

}  // namespace

namespace {

// LibTorch 1.13 has no fp16 matmul on CPU; find out before loading gigabytes.
void require_matmul_support(c10::ScalarType dtype, c10::Device device) {
  try {
    auto probe = at::ones({2, 2}, at::TensorOptions(dtype).device(device));
    (void)at::linear(probe, probe);
  } catch (const c10::Error&) {
    fail_input(
        "--dtype {}: this LibTorch build cannot multiply {} matrices on {} (use bf16 or fp32)",
        c10::toString(dtype), c10::toString(dtype), device.str());
  }
}

}  // namespace

BaseModel load_base_model(const std::string& dir, c10::ScalarType dtype, c10::Device device) {
  require_matmul_support(dtype, device);
  BaseModel model;
  model.config = load_model_config(dir);
  model.dtype = dtype;
  model.device = device;
  model.source = dir;
  const auto& c = model.config;
  const auto store = io::WeightStore::open_dir(dir);
  WeightLoader loader(store, dir, dtype, device);

  const int64_t q_out = c.num_heads * c.head_dim;
  const int64_t kv_out = c.num_kv_heads * c.head_dim;
  model.embed_tokens = loader.take("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = layer_prefix(i);
    DecoderLayerWeights layer;
    layer.input_norm = loader.take(p + "input_layernorm.weight", {c.hidden_size});
    if (c.sandwich_norms) {
      // Gemma-2/3 name the norm on the attention output post_attention_layernorm.
      layer.attention_output_norm =
          loader.take(p + "post_attention_layernorm.weight", {c.hidden_size});
      layer.post_attention_norm =
          loader.take(p + "pre_feedforward_layernorm.weight", {c.hidden_size});
      layer.feed_forward_output_norm =
          loader.take(p + "post_feedforward_layernorm.weight", {c.hidden_size});
    } else {
      layer.post_attention_norm =
          loader.take(p + "post_attention_layernorm.weight", {c.hidden_size});
    }
    auto& a = layer.attention;
    if (c.fused_projections) {
      auto qkv = loader.take(p + "self_attn.qkv_proj.weight", {q_out + 2 * kv_out, c.hidden_size});
      a.q_proj = qkv.narrow(0, 0, q_out).contiguous();
      a.k_proj = qkv.narrow(0, q_out, kv_out).contiguous();
      a.v_proj = qkv.narrow(0, q_out + kv_out, kv_out).contiguous();
    } else {
      a.q_proj = loader.take(p + "self_attn.q_proj.weight", {q_out, c.hidden_size});
      a.k_proj = loader.take(p + "self_attn.k_proj.weight", {kv_out, c.hidden_size});
      a.v_proj = loader.take(p + "self_attn.v_proj.weight", {kv_out, c.hidden_size});
    }
    a.o_proj = loader.take(p + "self_attn.o_proj.weight", {c.hidden_size, q_out});
    if (c.attention_bias) {
      a.q_bias = loader.take(p + "self_attn.q_proj.bias", {q_out});
      a.k_bias = loader.take(p + "self_attn.k_proj.bias", {kv_out});
      a.v_bias = loader.take(p + "self_attn.v_proj.bias", {kv_out});
      // LLaMA's attention_bias covers o_proj too; Qwen2 has no o_proj bias.
      if (loader.has(p + "self_attn.o_proj.bias")) {
        a.o_bias = loader.take(p + "self_attn.o_proj.bias", {c.hidden_size});
      }
    }
    if (c.qk_norm) {
      a.q_norm = loader.take(p + "self_attn.q_norm.weight", {c.head_dim});
      a.k_norm = loader.take(p + "self_attn.k_norm.weight", {c.head_dim});
    }
    auto& m = layer.mlp;
    if (c.fused_projections) {
      // Phi-3: gate first, then up (Phi3MLP chunks gate_up_proj's output in that order).
      auto gate_up =
          loader.take(p + "mlp.gate_up_proj.weight", {2 * c.intermediate_size, c.hidden_size});
      m.gate_proj = gate_up.narrow(0, 0, c.intermediate_size).contiguous();
      m.up_proj = gate_up.narrow(0, c.intermediate_size, c.intermediate_size).contiguous();
    } else {
      m.gate_proj = loader.take(p + "mlp.gate_proj.weight", {c.intermediate_size, c.hidden_size});
      m.up_proj = loader.take(p + "mlp.up_proj.weight", {c.intermediate_size, c.hidden_size});
    }
    m.down_proj = loader.take(p + "mlp.down_proj.weight", {c.hidden_size, c.intermediate_size});
    model.layers.push_back(std::move(layer));
  }
  model.final_norm = loader.take("model.norm.weight", {c.hidden_size});
  if (c.tie_word_embeddings) {
    model.lm_head = model.embed_tokens;
    loader.skip("lm_head.weight");  // some exports write the tied copy anyway
  } else {
    model.lm_head = loader.take("lm_head.weight", {c.vocab_size, c.hidden_size});
  }
  loader.reject_leftovers();
  return model;
}

BaseModel random_base_model(const ModelConfig& config, c10::ScalarType dtype, c10::Device device,
                            uint64_t seed) {
  require_matmul_support(dtype, device);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto normal = [&](std::vector<int64_t> shape) {
    return at::normal(0.0, 0.02, shape, generator, at::TensorOptions(at::kFloat)).to(device, dtype);
  };
  // Identity norms: weight 1, or 0 where the norm scales by (1 + w).
  auto ones = [&](int64_t n) {
    return at::full({n}, config.norm_weight_offset ? 0.0 : 1.0,
                    at::TensorOptions(dtype).device(device));
  };
  BaseModel model;
  model.config = config;
  model.dtype = dtype;
  model.device = device;
  model.source = "random";
  const auto& c = config;
  const int64_t q_out = c.num_heads * c.head_dim;
  const int64_t kv_out = c.num_kv_heads * c.head_dim;
  model.embed_tokens = normal({c.vocab_size, c.hidden_size});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    DecoderLayerWeights layer;
    layer.input_norm = ones(c.hidden_size);
    layer.post_attention_norm = ones(c.hidden_size);
    if (c.sandwich_norms) {
      layer.attention_output_norm = ones(c.hidden_size);
      layer.feed_forward_output_norm = ones(c.hidden_size);
    }
    if (c.qk_norm) {
      layer.attention.q_norm = ones(c.head_dim);
      layer.attention.k_norm = ones(c.head_dim);
    }
    layer.attention.q_proj = normal({q_out, c.hidden_size});
    layer.attention.k_proj = normal({kv_out, c.hidden_size});
    layer.attention.v_proj = normal({kv_out, c.hidden_size});
    layer.attention.o_proj = normal({c.hidden_size, q_out});
    if (c.attention_bias) {
      layer.attention.q_bias = normal({q_out});
      layer.attention.k_bias = normal({kv_out});
      layer.attention.v_bias = normal({kv_out});
    }
    layer.mlp.gate_proj = normal({c.intermediate_size, c.hidden_size});
    layer.mlp.up_proj = normal({c.intermediate_size, c.hidden_size});
    layer.mlp.down_proj = normal({c.hidden_size, c.intermediate_size});
    model.layers.push_back(std::move(layer));
  }
  model.final_norm = ones(c.hidden_size);
  model.lm_head =
      c.tie_word_embeddings ? model.embed_tokens : normal({c.vocab_size, c.hidden_size});
  return model;
}

nlohmann::json model_config_json(const ModelConfig& c) {
  nlohmann::json json = {{"architectures", {c.architecture}},
                         {"model_type", c.model_type},
                         {"hidden_act", activation_name(c.hidden_act)},
                         {"hidden_size", c.hidden_size},
                         {"intermediate_size", c.intermediate_size},
                         {"num_hidden_layers", c.num_layers},
                         {"num_attention_heads", c.num_heads},
                         {"num_key_value_heads", c.num_kv_heads},
                         {"head_dim", c.head_dim},
                         {"vocab_size", c.vocab_size},
                         {"max_position_embeddings", c.max_position_embeddings},
                         {"rms_norm_eps", c.rms_norm_eps},
                         {"rope_theta", c.rope_theta},
                         {"tie_word_embeddings", c.tie_word_embeddings},
                         {"attention_bias", c.attention_bias},
                         {"bos_token_id", c.bos_token_id},
                         {"eos_token_id", c.eos_token_id},
                         {"torch_dtype", "float32"}};
  if (c.pad_token_id >= 0) json["pad_token_id"] = c.pad_token_id;
  // The family keys parse_model_config reads back (model_config.cpp).
  if (c.norm_weight_offset) json["hidden_activation"] = activation_name(c.hidden_act);
  if (c.query_pre_attn_scalar > 0) {
    json["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
    auto cap = [](double v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
    json["attn_logit_softcapping"] = cap(c.attn_logit_softcapping);
    json["final_logit_softcapping"] = cap(c.final_logit_softcapping);
  }
  if (c.sliding_window > 0) {
    json["sliding_window"] = c.sliding_window;
    if (c.model_type != "phi3") {
      auto types = nlohmann::json::array();
      for (int64_t i = 0; i < c.num_layers; ++i)
        types.push_back(c.layer_is_sliding(i) ? "sliding_attention" : "full_attention");
      json["layer_types"] = types;
    }
  } else if (c.query_pre_attn_scalar > 0) {
    json["sliding_window"] = nullptr;
  }
  if (c.rope_local_theta > 0) json["rope_local_base_freq"] = c.rope_local_theta;
  const auto& s = c.rope_scaling;
  if (s.type == RopeScaling::Type::linear)
    json["rope_scaling"] = {{"rope_type", "linear"}, {"factor", s.factor}};
  if (s.type == RopeScaling::Type::llama3) {
    json["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", s.factor},
        {"low_freq_factor", s.low_freq_factor},
        {"high_freq_factor", s.high_freq_factor},
        {"original_max_position_embeddings", s.original_max_position_embeddings}};
  }
  return json;
}

void save_base_model(const BaseModel& model, const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    if (t.defined()) tensors.emplace_back(name, t.detach().to(at::kCPU, at::kFloat).contiguous());
  };
  add("model.embed_tokens.weight", model.embed_tokens);
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const auto p = layer_prefix(static_cast<int64_t>(i));
    const auto& l = model.layers[i];
    add(p + "input_layernorm.weight", l.input_norm);
    if (model.config.sandwich_norms) {
      add(p + "post_attention_layernorm.weight", l.attention_output_norm);
      add(p + "pre_feedforward_layernorm.weight", l.post_attention_norm);
      add(p + "post_feedforward_layernorm.weight", l.feed_forward_output_norm);
    } else {
      add(p + "post_attention_layernorm.weight", l.post_attention_norm);
    }
    if (model.config.fused_projections) {
      add(p + "self_attn.qkv_proj.weight",
          at::cat({l.attention.q_proj, l.attention.k_proj, l.attention.v_proj}, 0));
      add(p + "mlp.gate_up_proj.weight", at::cat({l.mlp.gate_proj, l.mlp.up_proj}, 0));
    } else {
      add(p + "self_attn.q_proj.weight", l.attention.q_proj);
      add(p + "self_attn.k_proj.weight", l.attention.k_proj);
      add(p + "self_attn.v_proj.weight", l.attention.v_proj);
      add(p + "mlp.gate_proj.weight", l.mlp.gate_proj);
      add(p + "mlp.up_proj.weight", l.mlp.up_proj);
    }
    add(p + "self_attn.q_norm.weight", l.attention.q_norm);
    add(p + "self_attn.k_norm.weight", l.attention.k_norm);
    add(p + "self_attn.o_proj.weight", l.attention.o_proj);
    add(p + "self_attn.q_proj.bias", l.attention.q_bias);
    add(p + "self_attn.k_proj.bias", l.attention.k_bias);
    add(p + "self_attn.v_proj.bias", l.attention.v_bias);
    add(p + "self_attn.o_proj.bias", l.attention.o_bias);
    add(p + "mlp.down_proj.weight", l.mlp.down_proj);
  }
  add("model.norm.weight", model.final_norm);
  if (!model.config.tie_word_embeddings) add("lm_head.weight", model.lm_head);
  io::save_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), tensors,
                       {{"format", "pt"}});
  io::write_file_atomically((std::filesystem::path(dir) / "config.json").string(),
                            model_config_json(model.config).dump(2) + "\n");
}

}  // namespace mixlora::model
