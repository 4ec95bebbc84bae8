#include "mixlora/adapters/adapter_init.h"

#include "mixlora/common/error.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <map>

namespace mixlora::adapters {

namespace {

std::string targets_text(const config::AdapterConfig& c) {
  std::vector<std::string> names;
  for (const auto& m : config::known_target_modules())
    if (c.targets(m)) names.push_back(m);
  return fmt::format("[{}]", fmt::join(names, ", "));
}

std::string shape_text(const std::optional<config::LoraShape>& shape) {
  return shape ? fmt::format("r {} lora_alpha {}", shape->r, shape->lora_alpha)
               : std::string("none");
}

// The keys that decide what the weights are and how they combine.
void require_same_structure(const config::AdapterConfig& want, const config::AdapterConfig& have,
                            const std::string& dir) {
  auto check = [&](const char* key, const std::string& config_value,
                   const std::string& file_value) {
    if (config_value != file_value) {
      fail_input(
          "{}: init adapter has {} {} but adapter '{}' is configured with {} (make the config "
          "match "
          "the adapter you start from)",
          dir, key, file_value, want.name, config_value);
    }
  };
  const bool mixlora = want.peft_type == config::PeftType::mixlora;
  check("peft_type", config::peft_type_name(want.peft_type),
        config::peft_type_name(have.peft_type));
  check("r", std::to_string(want.lora.r), std::to_string(have.lora.r));
  check("lora_alpha", fmt::format("{}", want.lora.lora_alpha),
        fmt::format("{}", have.lora.lora_alpha));
  check("use_rslora", want.use_rslora ? "true" : "false", have.use_rslora ? "true" : "false");
  check("use_dora", want.use_dora ? "true" : "false", have.use_dora ? "true" : "false");
  check("target_modules", targets_text(want), targets_text(have));
  if (want.is_lora_mixture()) {
    check("num_experts", std::to_string(want.num_experts), std::to_string(have.num_experts));
  }
  if (!mixlora) return;
  check("routing_strategy", config::routing_strategy_name(want.routing_strategy),
        config::routing_strategy_name(have.routing_strategy));
  check("num_experts", std::to_string(want.num_experts), std::to_string(have.num_experts));
  check("act_fn", model::activation_name(want.act_fn), model::activation_name(have.act_fn));
  // expert_lora absent = the adapter's own shape
  const auto expert = [](const config::AdapterConfig& c) {
    return std::optional<config::LoraShape>(c.expert_shape());
  };
  check("expert_lora", shape_text(expert(want)), shape_text(expert(have)));
}

}  // namespace

void init_from_adapter(Adapter& target, const std::string& dir, const model::BaseModel& base) {
  const auto source = Adapter::load(dir, base);
  require_same_structure(target.config, source.config, dir);
  std::map<std::string, at::Tensor> from;
  for (auto& [name, tensor] : source.state_dict()) from.emplace(name, tensor);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : target.state_dict()) {
    auto it = from.find(name);
    if (it == from.end()) {
      if (name == "classifier.weight") continue;  // a fresh head on a trained body
      fail_input("{}: init adapter has no tensor '{}' (shape [{}]) that adapter '{}' needs", dir,
                 name, fmt::join(tensor.sizes(), ", "), target.config.name);
    }
    if (it->second.sizes() != tensor.sizes()) {
      fail_input("{}: init adapter tensor '{}' has shape [{}] but adapter '{}' needs [{}]", dir,
                 name, fmt::join(it->second.sizes(), ", "), target.config.name,
                 fmt::join(tensor.sizes(), ", "));
    }
    tensor.copy_(it->second);
    from.erase(it);
  }
  if (!from.empty()) {
    fail_input(
        "{}: init adapter has tensor '{}' that adapter '{}' does not have (a classification head "
        "on a causal-LM adapter?)",
        dir, from.begin()->first, target.config.name);
  }
}

}  // namespace mixlora::adapters
