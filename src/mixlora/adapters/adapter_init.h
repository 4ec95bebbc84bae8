// Starting training from an existing adapter's weights (mixlora-train --init-adapter, per adapter
// `init_adapter`): "continue from my LoRA", and what lets a test start our trainer and a Python
// reference from the same nonzero adapter (docs/training-parity.md).
#pragma once

#include "mixlora/adapters/adapter.h"

#include <string>

namespace mixlora::adapters {

// Reads the adapter in `dir` with Adapter::load (so every format that learns to read is accepted
// here too) and copies its weights into `target`. The two must describe the same adapter:
// peft_type, routing_strategy, r, lora_alpha, use_rslora, expert_lora, use_dora, num_experts,
// act_fn and target_modules equal (InputError naming the key), and the same tensors with the same
// shapes (InputError naming the tensor). Routing parameters (top_k, top_p, temperature, capacity,
// router loss coefficients) may differ: they change how the weights are used, not what they are.
// A classification head that `dir` lacks keeps its fresh initialisation.
void init_from_adapter(Adapter& target, const std::string& dir, const model::BaseModel& base);

}  // namespace mixlora::adapters
