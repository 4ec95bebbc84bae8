// Router telemetry (docs/telemetry.md): what one adapter's routing did in each MoE layer, for
// the training log (metrics.jsonl "router") and mixlora-eval's report, one schema for both.
//
// Per layer: share of routed (token, slot) assignments per expert, share of real tokens whose
// top choice is each expert, load imbalance, mean router entropy before top-k, mean top-1
// probability, experts per token, dropped-token rate (switch), aux and z loss of the layer.
// Padding is excluded everywhere.
//
// Cost: the per-expert routed counts are the ones the routing already brought to the host
// (mixlora_ffn's assignment); everything else is computed on the router's device into one small
// tensor per batch, summed there, and read by the caller in one transfer when it is due.
#pragma once

#include "mixlora/moe/moe_options.h"
#include "mixlora/moe/router_loss.h"

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <vector>

namespace mixlora::moe {

// Columns of one layer's row of sums (see RouterStatSums).
enum RouterColumn : int64_t {
  kTokens = 0,
  kEntropySum,
  kTop1ProbSum,
  kAuxSum,
  kZSum,
  kDeviceColumns
};

// One batch of one adapter, not yet read back.
struct RouterBatchStats {
  // [L, kDeviceColumns + 2E] fp64 on the router's device: real tokens, summed entropy, summed
  // top-1 probability, aux loss, z loss (coefficients applied), then the top-1 counts per expert
  // and the summed router probability per expert.
  at::Tensor device_sums;
  std::vector<std::vector<int64_t>> routed_counts;  // [L][E] host: (token, slot) assignments
  bool defined() const { return device_sums.defined(); }
};

// No gradients, no host sync. `records` one per MoE layer, as AdapterHooks kept them.
RouterBatchStats router_batch_stats(const std::vector<RouterRecord>& records,
                                    const MoeOptions& config);

// Sums over batches, on the host: per layer [device columns..., top1 counts (E), probability
// sums (E), batches, routed counts (E)], flattened. Element-wise addable (data-parallel eval).
struct RouterStatSums {
  int64_t layers = 0, num_experts = 0;
  std::vector<double> values;

  static int64_t device_columns(int64_t num_experts) { return kDeviceColumns + 2 * num_experts; }
  static int64_t columns(int64_t num_experts) {
    return device_columns(num_experts) + 1 + num_experts;
  }
  static RouterStatSums zeros(int64_t layers, int64_t num_experts);
  bool empty() const { return layers == 0; }
  // Adds one batch already on the host: `device_sums` read to the CPU.
  void add(const at::Tensor& device_sums_on_cpu,
           const std::vector<std::vector<int64_t>>& routed_counts);
};

// Accumulates batches with their device parts summed on the device; read() is the one transfer.
class RouterStatAccumulator {
 public:
  void add(const RouterBatchStats& batch);
  bool empty() const { return !pending_.defined(); }
  // Reads the device sums (one host transfer), returns every batch since the last read.
  RouterStatSums read();

 private:
  at::Tensor pending_;
  std::vector<std::vector<int64_t>> counts_;
  int64_t batches_ = 0;
};

struct RouterLayerStats {
  std::vector<double> expert_share;  // fraction of routed (token, slot) assignments; sums to 1
  std::vector<double> top1_share;    // fraction of real tokens whose highest probability is e
  std::vector<double> prob_share;    // mean router probability of e over real tokens (soft share)
  double load_imbalance = 0.0;       // max expert_share / mean expert_share (1 = balanced)
  double entropy = 0.0;              // mean over real tokens of -sum_e p log p (nats), before top-k
  double top1_prob = 0.0;            // mean over real tokens of max_e p
  double experts_per_token = 0.0;    // routed assignments / real tokens
  std::optional<double> drop_rate;   // switch: real tokens over capacity / real tokens
  double aux_loss = 0.0;  // this layer's load-balancing loss (coefficient applied), mean per batch
  std::optional<double> z_loss;  // switch: this layer's z-loss (coefficient applied)
};

struct RouterSummary {
  RoutingStrategy strategy = RoutingStrategy::mixlora;
  int64_t num_experts = 0;
  int64_t tokens = 0;  // real tokens seen per layer
  int64_t batches = 0;
  std::vector<RouterLayerStats> layers;
};

RouterSummary summarize(const RouterStatSums& sums, const MoeOptions& config);

// The "router" object of metrics.jsonl and mixlora-eval's report (docs/telemetry.md).
nlohmann::json router_json(const RouterSummary& summary);

}  // namespace mixlora::moe
