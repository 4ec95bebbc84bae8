// What the MixLoRA FFN needs to know of an adapter: the routing and its knobs (SPEC section 5).
// A small struct, free of LibTorch, so the MoE kernel does not depend on the whole config.
#pragma once

#include "mixlora/model/activation.h"

#include <cstdint>
#include <optional>

namespace mixlora::moe {

enum class RoutingStrategy { mixlora, mixlora_dynamic, mixlora_switch };

// The config spelling: "mixlora", "mixlora-dynamic", "mixlora-switch".
inline const char* strategy_name(RoutingStrategy strategy) {
  switch (strategy) {
    case RoutingStrategy::mixlora_dynamic: return "mixlora-dynamic";
    case RoutingStrategy::mixlora_switch: return "mixlora-switch";
    default: return "mixlora";
  }
}

struct MoeOptions {
  RoutingStrategy routing_strategy = RoutingStrategy::mixlora;
  int64_t num_experts = 8;
  int64_t top_k = 2;                      // mixlora
  double top_p = 0.8;                     // mixlora-dynamic
  double temperature = 0.0;               // mixlora-dynamic; 0 = off
  double jitter_noise = 0.0;              // mixlora-switch, training only
  int64_t expert_capacity = 32;           // mixlora-switch
  std::optional<double> capacity_factor;  // capacity = ceil(f * tokens_per_seq / E) when set
  double ffn_dropout = 0.0;
  model::Activation act_fn = model::Activation::silu;
  // Router losses (their values also feed the router telemetry).
  bool router_loss = true;
  double router_aux_loss_coef = 0.001;
  double router_z_loss_coef = 0.001;
};

}  // namespace mixlora::moe
