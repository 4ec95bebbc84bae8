// The shape and initialisation of one LoRA, free of LibTorch so the config reader can hold it.
#pragma once

#include <cstdint>

namespace mixlora::lora {

// r, alpha and dropout; the LoRA of one expert may differ from the adapter's (`expert_lora`).
struct LoraShape {
  int64_t r = 8;
  double lora_alpha = 16.0;
  double lora_dropout = 0.05;
};

// `lora_init`: kaiming-uniform A as nn.Linear (PEFT's default) or N(0, 1/r).
enum class LoraInit { original, gaussian };

}  // namespace mixlora::lora
