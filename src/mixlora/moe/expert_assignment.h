// Which tokens each expert serves, from a routing decision of S slots per token: the (token,
// slot) pairs grouped by expert, so each expert runs once on one contiguous block of its tokens.
// Shared by the MixLoRA feed-forward block and the per-projection LoRA mixtures.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mixlora::moe {

// Expert e's pairs are tokens[offset_e : offset_e + counts[e]] (token order within an expert),
// with their routing weights; offset_e = sum of the counts before e.
struct ExpertAssignment {
  at::Tensor tokens;   // [M] int64 token index per (token, slot) pair, grouped by expert
  at::Tensor weights;  // [M] fp32
  std::vector<int64_t> counts;
};

// `experts` [N, S] int64 (-1 = empty slot, skipped), `weights` [N, S]. The per-expert counts
// reach the host (they size the blocks): the one host sync.
ExpertAssignment assign_experts(const at::Tensor& experts, const at::Tensor& weights,
                                int64_t num_experts);

}  // namespace mixlora::moe
