// Router losses of one adapter over the router outputs of all its layers together, padding
// excluded (SPEC section 5).
#pragma once

#include "mixlora/moe/router.h"

#include <ATen/ATen.h>

#include <vector>

namespace mixlora::moe {

// What one layer's routing leaves for the losses.
struct RouterRecord {
  at::Tensor logits;        // [N, E] fp32 router logits (before temperature)
  at::Tensor probs;         // [N, E] probabilities the routing used
  at::Tensor slot_experts;  // [N, S] chosen expert per slot (-1 = none), for the balance fractions
  at::Tensor token_mask;    // [N] bool, true for real tokens; undefined = all real
  // [E] real tokens' (token, slot) assignments per expert, after capacity dropping: the counts
  // the routing already read to the host (router telemetry, router_stats.h).
  std::vector<int64_t> routed_counts = {};
};

// Mixtral load balancing: E * sum_{slot} sum_e f[slot, e] * P[e], with f the fraction of real
// tokens whose slot-th choice is e and P the mean router probability of e over real tokens.
// Balanced top-k routing gives k. (Multiply by the coefficient yourself.)
at::Tensor load_balancing_loss(const std::vector<RouterRecord>& layers);

// mean over real tokens of logsumexp(logits)^2 (the switch z-loss, without coefficient).
at::Tensor router_z_loss(const std::vector<RouterRecord>& layers);

}  // namespace mixlora::moe
