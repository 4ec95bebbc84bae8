// Reading the adapter keys shared by training configs and adapter_config.json: task, LoRA and
// MixLoRA settings, with the range checks of MoE-PEFT's LoraConfig/MixLoraConfig.check and more.
#pragma once

#include "mixlora/config/json_object_reader.h"
#include "mixlora/config/train_config.h"

#include <string>
#include <vector>

namespace mixlora::config {

// Where the keys come from: training configs reject unknown keys inside `expert_lora`;
// adapter_config.json, written by other tools too, ignores them and accepts PEFT's
// target_modules forms ("all-linear").
enum class KeySource { train_config, adapter_file };

// task_name, labels, num_labels and their consistency.
void read_task_fields(const JsonObjectReader& in, AdapterConfig& adapter);
// r, lora_alpha, lora_dropout, target_modules, use_rslora, use_dora, lora_init.
void read_lora_fields(const JsonObjectReader& in, AdapterConfig& adapter, KeySource source);
// peft_type, routing_strategy and the MixLoRA keys (after read_lora_fields: expert_lora
// inherits the adapter's LoRA shape).
void read_mixlora_fields(const JsonObjectReader& in, AdapterConfig& adapter, KeySource source);

// The keys read_mixlora_fields reads other than peft_type (warned about on LoRA adapters).
const std::vector<std::string>& mixlora_keys();

// The string value of `key` when it is one of `allowed`; otherwise an InputError listing them with
// a did-you-mean. nullopt when absent.
std::optional<std::string> read_choice(const JsonObjectReader& in, const std::string& key,
                                       const std::vector<std::string>& allowed);

// read_choice for an enum-typed key: `values` in the order messages list them, `name` their
// JSON spelling.
template <class Enum>
std::optional<Enum> read_enum(const JsonObjectReader& in, const std::string& key,
                              std::initializer_list<Enum> values, const char* (*name)(Enum)) {
  std::vector<std::string> names;
  for (Enum v : values) names.emplace_back(name(v));
  const auto chosen = read_choice(in, key, names);
  if (chosen) {
    for (Enum v : values) {
      if (*chosen == name(v)) return v;
    }
  }
  return std::nullopt;
}

}  // namespace mixlora::config
