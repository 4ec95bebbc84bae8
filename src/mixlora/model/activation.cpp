#include "mixlora/model/activation.h"

namespace mixlora::model {

std::optional<Activation> activation_from_name(const std::string& name) {
  if (name == "silu") return Activation::silu;
  if (name == "gelu") return Activation::gelu;
  if (name == "gelu_new") return Activation::gelu_tanh;
  if (name == "gelu_pytorch_tanh") return Activation::gelu_pytorch_tanh;
  if (name == "relu") return Activation::relu;
  return std::nullopt;
}

const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::silu: return "silu";
    case Activation::gelu: return "gelu";
    case Activation::gelu_tanh: return "gelu_new";
    case Activation::gelu_pytorch_tanh: return "gelu_pytorch_tanh";
    case Activation::relu: return "relu";
  }
  return "silu";
}

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names{"silu", "gelu", "gelu_new", "gelu_pytorch_tanh",
                                              "relu"};
  return names;
}

}  // namespace mixlora::model
