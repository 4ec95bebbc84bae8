// A mixture of LoRA experts on one frozen linear W (MoE-PEFT's LoRAMoE and MoLA adapters): a
// router per linear weighs E LoRAs of the same shape,
//   y = W x + sum_e g_e(x) * s * B_e A_e dropout_e(x),   g = softmax(R x)
// LoRAMoE ("dense") keeps every g_e; MoLA ("top-k") keeps the k largest, renormalised to sum 1.
// Unlike MixLoRA the experts sit on each targeted linear, not on the whole feed-forward block.
#pragma once

#include "mixlora/lora/lora.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mixlora::moe {

struct LoraMixtureWeights {
  at::Tensor router;                       // [E, in] fp32, trainable
  std::vector<lora::LoraWeights> experts;  // E LoRAs on the same linear
};

struct LoraMixtureOutput {
  at::Tensor output;  // W x + mixture, in the dtype of base_output
  at::Tensor logits;  // [N, E] fp32 router logits over the N = numel / in tokens of x
  at::Tensor probs;   // [N, E] their softmax
  at::Tensor chosen;  // [N, k] int64 experts kept per token; undefined for the dense mixture
};

// `top_k` 0 = dense (LoRAMoE); else top-k (MoLA). Every token is routed, padding included, as
// MoE-PEFT does (padding outputs never reach a real token). Dropout only when `training`, one
// independent mask per expert.
LoraMixtureOutput apply_lora_mixture(const LoraMixtureWeights& weights, const at::Tensor& x,
                                     const at::Tensor& base_output, int64_t top_k, bool training,
                                     const c10::optional<at::Generator>& generator = c10::nullopt);

// A fresh router: kaiming-uniform with a = sqrt(init_range) as MoE-PEFT's LoRAMoE and MoLA gates
// (init_range 5, their default, is nn.Linear's own init: bound 1 / sqrt(in)).
at::Tensor init_mixture_router(int64_t num_experts, int64_t in_features, double init_range,
                               at::Generator& generator, c10::Device device);

}  // namespace mixlora::moe
