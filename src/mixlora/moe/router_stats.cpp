#include "mixlora/moe/router_stats.h"

#include "mixlora/common/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace mixlora::moe {

namespace {

// One layer's device row: [tokens, entropy sum, top-1 probability sum, aux, z, top-1 counts (E),
// probability sums (E)].
at::Tensor layer_row(const RouterRecord& record, const MoeOptions& config) {
  const auto probs = record.probs.detach().to(at::kDouble);
  const int64_t num_experts = probs.size(1);
  const auto mask = record.token_mask.defined() ? record.token_mask.to(at::kDouble)
                                                : at::ones({probs.size(0)}, probs.options());
  const auto entropy = -(probs * at::log(probs.clamp_min(1e-300))).sum(-1);
  auto [top_prob, top_expert] = probs.max(/*dim=*/-1);
  const auto top1_counts =
      (at::one_hot(top_expert, num_experts).to(at::kDouble) * mask.unsqueeze(1)).sum(0);
  const auto zero = at::zeros({}, probs.options());
  at::Tensor aux = zero, z = zero;
  if (config.router_loss) {
    const std::vector<RouterRecord> one = {record};
    aux = load_balancing_loss(one).detach().to(at::kDouble) * config.router_aux_loss_coef;
    if (config.routing_strategy == RoutingStrategy::mixlora_switch) {
      z = router_z_loss(one).detach().to(at::kDouble) * config.router_z_loss_coef;
    }
  }
  const auto prob_sums = (probs * mask.unsqueeze(1)).sum(0);
  return at::cat({at::stack({mask.sum(), (entropy * mask).sum(), (top_prob * mask).sum(), aux, z}),
                  top1_counts, prob_sums});
}

}  // namespace

RouterBatchStats router_batch_stats(const std::vector<RouterRecord>& records,
                                    const MoeOptions& config) {
  RouterBatchStats stats;
  if (records.empty()) return stats;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> rows;
  for (const auto& record : records) {
    rows.push_back(layer_row(record, config));
    stats.routed_counts.push_back(record.routed_counts);
  }
  stats.device_sums = at::stack(rows);
  return stats;
}

RouterStatSums RouterStatSums::zeros(int64_t layers, int64_t num_experts) {
  RouterStatSums sums;
  sums.layers = layers;
  sums.num_experts = num_experts;
  sums.values.assign(static_cast<size_t>(layers * columns(num_experts)), 0.0);
  return sums;
}

void RouterStatSums::add(const at::Tensor& device_sums_on_cpu,
                         const std::vector<std::vector<int64_t>>& routed_counts) {
  const auto rows = device_sums_on_cpu.to(at::kDouble).contiguous();
  const int64_t l = rows.size(0), e = (rows.size(1) - kDeviceColumns) / 2;
  if (empty()) *this = zeros(l, e);
  if (l != layers || e != num_experts || static_cast<int64_t>(routed_counts.size()) != l) {
    fail_runtime("router telemetry: a batch of {} layers x {} experts added to sums of {} x {}", l,
                 e, layers, num_experts);
  }
  const auto* v = rows.data_ptr<double>();
  const int64_t width = rows.size(1), stride = columns(num_experts);
  for (int64_t i = 0; i < l; ++i) {
    double* row = values.data() + i * stride;
    for (int64_t c = 0; c < width; ++c) row[c] += v[i * width + c];
    row[width] += 1.0;  // batches
    const auto& counts = routed_counts[static_cast<size_t>(i)];
    for (int64_t x = 0; x < e && x < static_cast<int64_t>(counts.size()); ++x) {
      row[width + 1 + x] += static_cast<double>(counts[static_cast<size_t>(x)]);
    }
  }
}

void RouterStatAccumulator::add(const RouterBatchStats& batch) {
  if (!batch.defined()) return;
  pending_ = pending_.defined() ? pending_ + batch.device_sums : batch.device_sums;
  if (counts_.empty()) counts_.assign(batch.routed_counts.size(), {});
  for (size_t l = 0; l < batch.routed_counts.size() && l < counts_.size(); ++l) {
    auto& sum = counts_[l];
    const auto& add = batch.routed_counts[l];
    if (sum.size() < add.size()) sum.resize(add.size(), 0);
    for (size_t e = 0; e < add.size(); ++e) sum[e] += add[e];
  }
  ++batches_;
}

RouterStatSums RouterStatAccumulator::read() {
  RouterStatSums sums;
  if (!pending_.defined()) return sums;
  sums.add(pending_.to(at::kCPU), counts_);  // the one host transfer
  // add() counted one batch: the accumulated ones are batches_.
  const int64_t stride = RouterStatSums::columns(sums.num_experts);
  const int64_t batches_column = RouterStatSums::device_columns(sums.num_experts);
  for (int64_t l = 0; l < sums.layers; ++l) sums.values[l * stride + batches_column] = batches_;
  pending_ = at::Tensor();
  counts_.clear();
  batches_ = 0;
  return sums;
}

RouterSummary summarize(const RouterStatSums& sums, const MoeOptions& config) {
  RouterSummary s;
  s.strategy = config.routing_strategy;
  s.num_experts = sums.num_experts;
  const int64_t e = sums.num_experts, stride = RouterStatSums::columns(e);
  const bool is_switch = config.routing_strategy == RoutingStrategy::mixlora_switch;
  for (int64_t l = 0; l < sums.layers; ++l) {
    const double* row = sums.values.data() + l * stride;
    const double tokens = row[kTokens], batches = row[kDeviceColumns + 2 * e];
    const double* top1 = row + kDeviceColumns;
    const double* probs = row + kDeviceColumns + e;
    const double* routed = row + kDeviceColumns + 2 * e + 1;
    double routed_total = 0.0;
    for (int64_t x = 0; x < e; ++x) routed_total += routed[x];
    RouterLayerStats layer;
    auto ratio = [](double a, double b) { return b > 0.0 ? a / b : 0.0; };
    for (int64_t x = 0; x < e; ++x) {
      layer.expert_share.push_back(ratio(routed[x], routed_total));
      layer.top1_share.push_back(ratio(top1[x], tokens));
      layer.prob_share.push_back(ratio(probs[x], tokens));
    }
    const double max_share =
        e > 0 ? *std::max_element(layer.expert_share.begin(), layer.expert_share.end()) : 0.0;
    layer.load_imbalance = max_share * static_cast<double>(e);  // max / mean, mean = 1/E
    layer.entropy = ratio(row[kEntropySum], tokens);
    layer.top1_prob = ratio(row[kTop1ProbSum], tokens);
    layer.experts_per_token = ratio(routed_total, tokens);
    if (is_switch)
      layer.drop_rate = tokens > 0.0 ? std::max(0.0, 1.0 - routed_total / tokens) : 0.0;
    layer.aux_loss = ratio(row[kAuxSum], batches);
    if (is_switch) layer.z_loss = ratio(row[kZSum], batches);
    s.tokens = static_cast<int64_t>(std::llround(tokens));
    s.batches = static_cast<int64_t>(std::llround(batches));
    s.layers.push_back(std::move(layer));
  }
  return s;
}

nlohmann::json router_json(const RouterSummary& summary) {
  auto layers = nlohmann::json::array();
  for (size_t l = 0; l < summary.layers.size(); ++l) {
    const auto& s = summary.layers[l];
    nlohmann::json layer = {{"layer", l},
                            {"expert_share", s.expert_share},
                            {"top1_share", s.top1_share},
                            {"prob_share", s.prob_share},
                            {"load_imbalance", s.load_imbalance},
                            {"entropy", s.entropy},
                            {"top1_prob", s.top1_prob},
                            {"experts_per_token", s.experts_per_token},
                            {"aux_loss", s.aux_loss}};
    if (s.drop_rate) layer["drop_rate"] = *s.drop_rate;
    if (s.z_loss) layer["z_loss"] = *s.z_loss;
    layers.push_back(std::move(layer));
  }
  return {{"strategy", strategy_name(summary.strategy)},
          {"num_experts", summary.num_experts},
          {"max_entropy",
           summary.num_experts > 0 ? std::log(static_cast<double>(summary.num_experts)) : 0.0},
          {"tokens", summary.tokens},
          {"batches", summary.batches},
          {"layers", std::move(layers)}};
}

}  // namespace mixlora::moe
