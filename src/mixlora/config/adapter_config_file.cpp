// adapter_config.json (SPEC section 7): written for the MixLoRA plugin, MoE-PEFT and PEFT; read
// from any of them.
#include "mixlora/common/error.h"
#include "mixlora/config/adapter_fields.h"
#include "mixlora/config/train_config.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace mixlora::config {

namespace {

// The MixLoRA plugin and MoE-PEFT assert that lora_alpha is an int: write 16, not 16.0.
nlohmann::json alpha_json(double alpha) {
  if (std::floor(alpha) == alpha && std::abs(alpha) < 9.0e15) return static_cast<int64_t>(alpha);
  return alpha;
}

bool has_classification_task(const AdapterConfig& adapter) {
  for (const auto& id : adapter.tasks()) {
    if (task_kind(id) == TaskKind::classification) return true;
  }
  return false;
}

bool is_empty_or_null(const nlohmann::json* value) { return value == nullptr || value->empty(); }

// PEFT options that change what the stored weights mean; loading them as if absent would give a
// different model, so they are errors rather than ignored keys.
void reject_unsupported_peft_options(const JsonObjectReader& in) {
  if (auto bias = in.get_string("bias"); bias && *bias != "none") {
    in.fail("bias", "only \"none\" is supported (no trained biases)");
  }
  if (auto fan_in_fan_out = in.get_bool("fan_in_fan_out"); fan_in_fan_out && *fan_in_fan_out) {
    in.fail("fan_in_fan_out", "must be false for LLaMA-family linear layers");
  }
  for (const char* key : {"layers_to_transform", "rank_pattern", "alpha_pattern"}) {
    if (!is_empty_or_null(in.find(key))) in.fail(key, "is not supported (must be null or empty)");
  }
}

}  // namespace

AdapterConfig parse_adapter_config_file(const nlohmann::json& json, const std::string& source) {
  const JsonObjectReader in(json, source, "");
  reject_unsupported_peft_options(in);
  AdapterConfig adapter;
  read_task_fields(in, adapter);
  read_lora_fields(in, adapter, KeySource::adapter_file);
  // PEFT's spelling of lora_init; an explicit lora_init wins.
  if (const auto* init = in.find("init_lora_weights");
      init && *init == "gaussian" && !in.has("lora_init")) {
    adapter.lora_init = LoraInit::gaussian;
  }
  read_mixlora_fields(in, adapter, KeySource::adapter_file);
  return adapter;
}

nlohmann::json adapter_config_to_json(const AdapterConfig& adapter, const std::string& base_model) {
  const bool mixlora = adapter.peft_type == PeftType::mixlora;
  const bool classification = has_classification_task(adapter);
  nlohmann::json j;
  // Read by PEFT's LoraConfig and the MixLoRA plugin's MixLoraConfig.from_config.
  j["peft_type"] = peft_type_name(adapter.peft_type);
  j["task_type"] = classification ? "SEQ_CLS" : "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model;
  j["bias"] = "none";
  j["r"] = adapter.lora.r;
  j["lora_alpha"] = alpha_json(adapter.lora.lora_alpha);
  j["lora_dropout"] = adapter.lora.lora_dropout;
  j["target_modules"] = adapter.target_modules;
  j["use_rslora"] = adapter.use_rslora;
  j["use_dora"] = adapter.use_dora;
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] =
      adapter.lora_init == LoraInit::gaussian ? nlohmann::json("gaussian") : nlohmann::json(true);

  // Ours, only when they carry something: a plain causal LoRA stays a pure PEFT config.
  if (!is_causal_lm_task(adapter.task_name)) j["task_name"] = adapter.task_name;
  if (adapter.num_labels > 0) j["num_labels"] = adapter.num_labels;
  if (!adapter.labels.empty()) j["labels"] = adapter.labels;

  if (adapter.is_lora_mixture()) {
    // What MoE-PEFT's LoraMoeConfig / MolaConfig.export write, plus the router keys.
    j["routing_strategy"] = adapter.peft_type == PeftType::mola ? "mola" : "loramoe";
    j["num_experts"] = adapter.num_experts;
    j["router_init_range"] = adapter.router_init_range;
    if (adapter.peft_type == PeftType::mola) {
      j["top_k"] = adapter.top_k;
      j["router_loss"] = adapter.router_loss;
      j["router_aux_loss_coef"] = adapter.router_aux_loss_coef;
    }
    return j;
  }
  if (!mixlora) return j;
  j["routing_strategy"] = routing_strategy_name(adapter.routing_strategy);
  j["num_experts"] = adapter.num_experts;
  j["act_fn"] = model::activation_name(adapter.act_fn);
  j["top_k"] = adapter.top_k;
  j["top_p"] = adapter.top_p;
  j["temperature"] = adapter.temperature;
  j["expert_capacity"] = adapter.expert_capacity;
  if (adapter.capacity_factor) j["capacity_factor"] = *adapter.capacity_factor;
  j["router_loss"] = adapter.router_loss;
  j["router_aux_loss_coef"] = adapter.router_aux_loss_coef;
  j["router_z_loss_coef"] = adapter.router_z_loss_coef;
  j["router_init_range"] = adapter.router_init_range;
  j["jitter_noise"] = adapter.jitter_noise;
  j["ffn_dropout"] = adapter.ffn_dropout;
  if (adapter.expert_lora) {
    j["expert_lora"] = {{"bias", "none"},
                        {"r", adapter.expert_lora->r},
                        {"lora_alpha", alpha_json(adapter.expert_lora->lora_alpha)},
                        {"lora_dropout", adapter.expert_lora->lora_dropout}};
  }
  return j;
}

}  // namespace mixlora::config
