#include "mixlora/eval/evaluator.h"

#include "mixlora/tasks/causal_lm.h"

#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>

namespace mixlora::eval {

std::vector<EvalResult> evaluate_causal_lm(const model::Decoder& decoder,
                                           const std::vector<const adapters::Adapter*>& adapters,
                                           const std::vector<data::Sample>& samples,
                                           int64_t batch_size, int64_t pad_id) {
  torch::NoGradGuard no_grad;
  const size_t n = adapters.size();
  std::vector<EvalResult> results(n);
  std::vector<double> loss_sum(n, 0.0), aux_sum(n, 0.0), z_sum(n, 0.0);
  std::vector<std::vector<at::Tensor>> expert_counts(n);  // per layer [E]
  int64_t batches = 0;
  for (size_t begin = 0; begin < samples.size(); begin += batch_size) {
    const size_t end = std::min(samples.size(), begin + static_cast<size_t>(batch_size));
    // The same rows once per adapter, fused into one batch.
    std::vector<const data::Sample*> rows;
    std::vector<adapters::AdapterSegment> segments;
    for (size_t a = 0; a < n; ++a) {
      segments.push_back({adapters[a], static_cast<int64_t>(rows.size()), static_cast<int64_t>(end - begin)});
      for (size_t i = begin; i < end; ++i) rows.push_back(&samples[i]);
    }
    const auto batch = data::make_batch(rows, pad_id);
    const auto mask = batch.attention_mask.to(decoder.model().device);
    adapters::AdapterHooks hooks(segments, mask, /*training=*/false);
    hooks.keep_routing(true);
    const auto logits = decoder.logits(decoder.hidden_states(batch.input_ids, mask, nullptr, &hooks));
    for (size_t a = 0; a < n; ++a) {
      const auto& seg = segments[a];
      auto loss = tasks::causal_lm_loss(logits.narrow(0, seg.row_begin, seg.row_count),
                                        batch.labels.narrow(0, seg.row_begin, seg.row_count));
      loss_sum[a] += loss.sum.item<double>();
      results[a].tokens += loss.count.item<int64_t>();
      results[a].samples += seg.row_count;
      if (!adapters[a] || !adapters[a]->is_mixlora()) continue;
      const auto losses = adapters::router_losses(*adapters[a], hooks.router_records(a));
      aux_sum[a] += losses.aux.item<double>();
      z_sum[a] += losses.z.item<double>();
      const auto& routings = hooks.routings(a);
      if (expert_counts[a].empty()) expert_counts[a].resize(routings.size());
      for (size_t layer = 0; layer < routings.size(); ++layer) {
        auto experts = routings[layer].experts.reshape({-1});
        auto counts = at::bincount(experts.masked_select(experts.ge(0)), {}, adapters[a]->config.num_experts)
                          .to(at::kCPU, at::kDouble);
        expert_counts[a][layer] = expert_counts[a][layer].defined() ? expert_counts[a][layer] + counts : counts;
      }
    }
    ++batches;
  }
  for (size_t a = 0; a < n; ++a) {
    auto& r = results[a];
    r.adapter_name = adapters[a] ? adapters[a]->config.name : "base";
    r.task_name = adapters[a] ? adapters[a]->config.task_name : "casual";
    r.loss = loss_sum[a] / std::max<int64_t>(1, r.tokens);
    r.perplexity = std::exp(r.loss);
    if (adapters[a] && adapters[a]->is_mixlora()) {
      r.aux_loss = aux_sum[a] / std::max<int64_t>(1, batches);
      if (adapters[a]->config.routing_strategy == config::RoutingStrategy::mixlora_switch) {
        r.z_loss = z_sum[a] / std::max<int64_t>(1, batches);
      }
      for (const auto& counts : expert_counts[a]) {
        auto fractions = counts / counts.sum().clamp_min(1.0);
        r.router_profile.emplace_back(fractions.data_ptr<double>(), fractions.data_ptr<double>() + fractions.numel());
      }
    }
  }
  return results;
}

nlohmann::json report_json(const std::vector<EvalResult>& results) {
  auto report = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json metrics = {{"loss", r.loss}, {"perplexity", r.perplexity},
                              {"samples", r.samples}, {"tokens", r.tokens}};
    if (r.aux_loss) metrics["aux_loss"] = *r.aux_loss;
    if (r.z_loss) metrics["z_loss"] = *r.z_loss;
    nlohmann::json entry = {{"adapter_name", r.adapter_name}, {"task_name", r.task_name}, {"metrics", metrics}};
    if (!r.router_profile.empty()) entry["router_profile"] = r.router_profile;
    report.push_back(entry);
  }
  return report;
}

std::string report_table(const std::vector<EvalResult>& results) {
  std::string table = fmt::format("{:<20} {:<14} {:>10} {:>12} {:>10} {:>10} {:>8} {:>9}\n", "adapter",
                                  "task", "loss", "perplexity", "aux_loss", "z_loss", "samples", "tokens");
  auto optional = [](const std::optional<double>& v) { return v ? fmt::format("{:.6f}", *v) : std::string("-"); };
  for (const auto& r : results) {
    table += fmt::format("{:<20} {:<14} {:>10.5f} {:>12.4f} {:>10} {:>10} {:>8} {:>9}\n", r.adapter_name,
                         r.task_name, r.loss, r.perplexity, optional(r.aux_loss), optional(r.z_loss),
                         r.samples, r.tokens);
  }
  return table;
}

}  // namespace mixlora::eval
