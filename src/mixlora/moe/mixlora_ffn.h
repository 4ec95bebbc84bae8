// The MixLoRA feed-forward block of one adapter in one layer (SPEC section 5): a router picks
// experts per token; expert e is the frozen SwiGLU FFN with its own LoRA on each targeted
// projection:  out_e = W2'(act(W1' x) * W3' x),  W' = W + s B_e A_e.
//
// Two implementations of the same formula:
//   efficient: W1 x and W3 x once for all tokens; per expert only its LoRA work on its tokens;
//              the base W2 once, on the routing-weighted sum of expert intermediates
//              (W2 is linear), so the frozen-weight cost equals one dense FFN for any top_k.
//   naive:     every expert evaluates its full FFN on its tokens (how MoE-PEFT does it); the
//              tested reference for the efficient path, selectable for benchmarks.
#pragma once

#include "mixlora/lora/lora.h"
#include "mixlora/model/base_model.h"
#include "mixlora/moe/moe_options.h"
#include "mixlora/moe/router_loss.h"

#include <ATen/ATen.h>

#include <optional>
#include <vector>

namespace mixlora::moe {

enum class FfnPath { efficient, naive };

struct ExpertLoras {
  std::optional<lora::LoraWeights> gate_proj, up_proj, down_proj;  // absent if not targeted
  // Phi-3: the expert's one LoRA on the fused gate_up_proj (what the files hold); gate_proj and
  // up_proj are then its two halves (the shared A, a row block of B each). Unused by the kernel.
  std::optional<lora::LoraWeights> gate_up_proj;
};

struct MixLoraLayerWeights {
  at::Tensor router;  // [E, hidden] fp32, trainable
  std::vector<ExpertLoras> experts;
};

struct MixLoraOutput {
  at::Tensor output;    // [B, T, hidden] in the dtype of x
  RouterRecord record;  // for the router losses
  Routing routing;      // the decision itself (router profile, tests)
};

// x: normalised hidden states [B, T, hidden]; token_mask [B, T] (1 = real token) or undefined.
// Padding tokens get no expert. Dropout, jitter and ffn_dropout act only when `training`.
MixLoraOutput mixlora_ffn(const at::Tensor& x, const at::Tensor& token_mask,
                          const model::MlpWeights& mlp, const MixLoraLayerWeights& weights,
                          const MoeOptions& options, bool training,
                          FfnPath path = FfnPath::efficient,
                          const c10::optional<at::Generator>& generator = c10::nullopt);

// Expert capacity of mixlora-switch for sequences of `steps` positions.
int64_t switch_capacity(const MoeOptions& options, int64_t steps);

}  // namespace mixlora::moe
