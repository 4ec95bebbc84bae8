// The feed-forward activations, by their Hugging Face names (config.json `hidden_act`, MoE-PEFT
// `act_fn`). Free of LibTorch so the config readers can hold one.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace mixlora::model {

enum class Activation { silu, gelu, gelu_tanh, gelu_pytorch_tanh, relu };

// "silu", "gelu", "gelu_new" and "gelu_pytorch_tanh" (both the tanh approximation), "relu";
// nullopt for any other name.
std::optional<Activation> activation_from_name(const std::string& name);
const char* activation_name(Activation activation);
// Every accepted name, in the order error messages list them.
const std::vector<std::string>& activation_names();

}  // namespace mixlora::model
