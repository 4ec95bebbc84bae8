#include "mixlora/eval/evaluator.h"

#include "mixlora/common/error.h"
#include "mixlora/tasks/causal_lm.h"
#include "mixlora/tasks/chunked_lm_loss.h"
#include "mixlora/tasks/classification.h"

#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>

namespace mixlora::eval {

namespace {

// Multiple choice: argmax over the choices' first-token logits at the last prompt token.
void score_multiple_choice(const model::Decoder& decoder, const at::Tensor& hidden,
                           const std::vector<const data::Sample*>& rows, EvalTotals& totals) {
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto* s = rows[r];
    if (s->choice_token_ids.empty() || s->prompt_length < 1) continue;
    auto logits = decoder.logits(hidden[r][s->prompt_length - 1]);
    auto choices = at::tensor(s->choice_token_ids, at::kLong).to(logits.device());
    const int64_t picked = logits.index_select(0, choices).argmax().item<int64_t>();
    totals.correct += picked == s->answer_index;
    ++totals.scored;
  }
}

void add_router_profile(const std::vector<moe::Routing>& routings, int64_t num_experts,
                        EvalTotals& totals) {
  if (routings.size() != totals.expert_counts.size()) {
    fail_runtime("router profile: {} routed layers, {} expected", routings.size(),
                 totals.expert_counts.size());
  }
  for (size_t layer = 0; layer < routings.size(); ++layer) {
    auto experts = routings[layer].experts.reshape({-1});
    totals.expert_counts[layer] +=
        at::bincount(experts.masked_select(experts.ge(0)), {}, num_experts)
            .to(at::kCPU, at::kDouble);
  }
}

// Zero totals; a MixLoRA adapter's expert counts are sized up front so that every shard's
// totals flatten to the same length, even a shard that scored no batch.
EvalTotals empty_totals(const adapters::Adapter* adapter) {
  EvalTotals t;
  if (!adapter || !adapter->is_mixlora()) return t;
  for (const auto& layer : adapter->layers) {
    if (layer.mixlora)
      t.expert_counts.push_back(at::zeros({adapter->config.num_experts}, at::kDouble));
  }
  t.router = moe::RouterStatSums::zeros(static_cast<int64_t>(t.expert_counts.size()),
                                        adapter->config.num_experts);
  return t;
}

}  // namespace

std::vector<double> EvalTotals::flatten() const {
  std::vector<double> values = {loss_sum,
                                static_cast<double>(loss_count),
                                static_cast<double>(correct),
                                static_cast<double>(scored),
                                aux_sum,
                                z_sum,
                                static_cast<double>(batches)};
  for (const auto& counts : expert_counts) {
    values.insert(values.end(), counts.data_ptr<double>(),
                  counts.data_ptr<double>() + counts.numel());
  }
  values.insert(values.end(), router.values.begin(), router.values.end());
  return values;
}

void EvalTotals::assign(const std::vector<double>& values) {
  size_t expected = 7;
  for (const auto& counts : expert_counts) expected += static_cast<size_t>(counts.numel());
  expected += router.values.size();
  if (values.size() != expected)
    fail_runtime("eval totals: {} values for {}", values.size(), expected);
  // Counts are whole numbers far below 2^53: exact in a double, and after summing.
  loss_sum = values[0];
  loss_count = std::llround(values[1]);
  correct = std::llround(values[2]);
  scored = std::llround(values[3]);
  aux_sum = values[4];
  z_sum = values[5];
  batches = std::llround(values[6]);
  size_t at = 7;
  for (auto& counts : expert_counts) {
    std::copy(values.begin() + at, values.begin() + at + counts.numel(), counts.data_ptr<double>());
    at += counts.numel();
  }
  std::copy(values.begin() + at, values.begin() + at + router.values.size(), router.values.begin());
}

std::vector<EvalTotals> score(const model::Decoder& decoder, const std::vector<EvalInput>& inputs,
                              int64_t batch_size, int64_t pad_id, EvalShard shard) {
  torch::NoGradGuard no_grad;
  const size_t n = inputs.size();
  std::vector<EvalTotals> totals;
  for (const auto& in : inputs) totals.push_back(empty_totals(in.adapter));
  size_t longest = 0;
  for (const auto& in : inputs) longest = std::max(longest, in.samples->size());
  for (size_t begin = 0, b = 0; begin < longest; begin += batch_size, ++b) {
    if (static_cast<int64_t>(b % shard.count) != shard.index) continue;
    // Each input's next rows, fused into one batch.
    std::vector<const data::Sample*> rows;
    std::vector<adapters::AdapterSegment> segments;
    std::vector<size_t> owners;
    for (size_t a = 0; a < n; ++a) {
      const auto& samples = *inputs[a].samples;
      if (begin >= samples.size()) continue;
      const size_t end = std::min(samples.size(), begin + static_cast<size_t>(batch_size));
      segments.push_back({inputs[a].adapter, static_cast<int64_t>(rows.size()),
                          static_cast<int64_t>(end - begin), c10::nullopt});
      owners.push_back(a);
      for (size_t i = begin; i < end; ++i) rows.push_back(&samples[i]);
    }
    const auto batch = data::make_batch(rows, pad_id);
    const auto mask = batch.attention_mask.to(decoder.model().device);
    adapters::AdapterHooks hooks(segments, mask, /*training=*/false);
    hooks.keep_routing(true);
    const auto hidden = decoder.hidden_states(batch.input_ids, mask, nullptr, &hooks);
    for (size_t k = 0; k < segments.size(); ++k) {
      const auto& seg = segments[k];
      auto& t = totals[owners[k]];
      const auto* adapter = inputs[owners[k]].adapter;
      auto rows_of = [&](const at::Tensor& x) { return x.narrow(0, seg.row_begin, seg.row_count); };
      const auto h = rows_of(hidden);
      const auto labels = rows_of(batch.labels);
      const auto class_labels = rows_of(batch.class_labels);
      ++t.batches;
      if (labels.ne(data::kIgnoreIndex).any().item<bool>()) {
        const tasks::LogitsFn logits_of = [&](const at::Tensor& x) { return decoder.logits(x); };
        const auto chunk = tasks::lm_loss_chunk_rows(decoder.model().config.vocab_size);
        auto loss = tasks::chunked_causal_lm_loss(logits_of, h, labels, chunk);
        t.loss_sum += loss.sum.item<double>();
        t.loss_count += loss.count.item<int64_t>();
      }
      if (adapter && adapter->classifier.defined() && class_labels.ge(0).any().item<bool>()) {
        auto logits =
            tasks::classification_logits(h, rows_of(batch.last_token), adapter->classifier);
        auto valid = class_labels.ge(0).to(logits.device());
        auto targets = class_labels.to(logits.device());
        t.loss_sum +=
            at::cross_entropy_loss(logits, targets, {}, at::Reduction::Sum, -1).item<double>();
        t.loss_count += valid.sum().item<int64_t>();
        t.correct += (logits.argmax(-1).eq(targets) & valid).sum().item<int64_t>();
        t.scored += valid.sum().item<int64_t>();
      }
      std::vector<const data::Sample*> segment_rows(rows.begin() + seg.row_begin,
                                                    rows.begin() + seg.row_begin + seg.row_count);
      score_multiple_choice(decoder, h, segment_rows, t);
      if (!adapter || !(adapter->is_mixlora() || adapter->config.is_lora_mixture())) continue;
      const auto losses = adapters::router_losses(*adapter, hooks.router_records(k));
      t.aux_sum += losses.aux.item<double>();
      t.z_sum += losses.z.item<double>();
      if (!adapter->is_mixlora()) continue;  // the profile and telemetry are per MixLoRA layer
      add_router_profile(hooks.routings(k), adapter->config.num_experts, t);
      const auto stats =
          moe::router_batch_stats(hooks.router_records(k), adapter->config.moe_options());
      if (stats.defined()) t.router.add(stats.device_sums.to(at::kCPU), stats.routed_counts);
    }
  }
  return totals;
}

std::vector<EvalResult> results_of(const std::vector<EvalInput>& inputs,
                                   const std::vector<EvalTotals>& totals) {
  const size_t n = inputs.size();
  std::vector<EvalResult> results(n);
  for (size_t a = 0; a < n; ++a) {
    const auto& t = totals[a];
    const auto* adapter = inputs[a].adapter;
    auto& r = results[a];
    r.adapter_name = adapter ? adapter->config.name : "base";
    r.task_name = inputs[a].task_name;
    r.samples = static_cast<int64_t>(inputs[a].samples->size());
    r.tokens = t.loss_count;
    r.loss = t.loss_sum / std::max<int64_t>(1, t.loss_count);
    r.perplexity = std::exp(r.loss);
    if (t.scored > 0) r.accuracy = static_cast<double>(t.correct) / static_cast<double>(t.scored);
    // MixLoRA always reports its balance loss; MoLA when its router loss is on.
    const bool mola_loss = adapter && adapter->config.peft_type == config::PeftType::mola &&
                           adapter->config.router_loss;
    if (adapter && (adapter->is_mixlora() || mola_loss))
      r.aux_loss = t.aux_sum / std::max<int64_t>(1, t.batches);
    if (adapter && adapter->is_mixlora()) {
      if (adapter->config.routing_strategy == config::RoutingStrategy::mixlora_switch) {
        r.z_loss = t.z_sum / std::max<int64_t>(1, t.batches);
      }
      for (const auto& counts : t.expert_counts) {
        auto fractions = counts / counts.sum().clamp_min(1.0);
        r.router_profile.emplace_back(fractions.data_ptr<double>(),
                                      fractions.data_ptr<double>() + fractions.numel());
      }
      if (!t.router.empty()) r.router = moe::summarize(t.router, adapter->config.moe_options());
    }
  }
  return results;
}

std::vector<EvalResult> evaluate(const model::Decoder& decoder,
                                 const std::vector<EvalInput>& inputs, int64_t batch_size,
                                 int64_t pad_id) {
  return results_of(inputs, score(decoder, inputs, batch_size, pad_id));
}

nlohmann::json report_json(const std::vector<EvalResult>& results) {
  auto report = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json metrics = {{"loss", r.loss},
                              {"perplexity", r.perplexity},
                              {"samples", r.samples},
                              {"tokens", r.tokens}};
    if (r.accuracy) metrics["accuracy"] = *r.accuracy;
    if (r.aux_loss) metrics["aux_loss"] = *r.aux_loss;
    if (r.z_loss) metrics["z_loss"] = *r.z_loss;
    nlohmann::json entry = {
        {"adapter_name", r.adapter_name}, {"task_name", r.task_name}, {"metrics", metrics}};
    if (!r.router_profile.empty()) entry["router_profile"] = r.router_profile;
    if (r.router) entry["router"] = moe::router_json(*r.router);
    report.push_back(entry);
  }
  return report;
}

std::string report_table(const std::vector<EvalResult>& results) {
  std::string table = fmt::format("{:<20} {:<14} {:>9} {:>10} {:>12} {:>10} {:>10} {:>8} {:>9}\n",
                                  "adapter", "task", "accuracy", "loss", "perplexity", "aux_loss",
                                  "z_loss", "samples", "tokens");
  auto optional = [](const std::optional<double>& v, const char* format) {
    return v ? fmt::format(fmt::runtime(format), *v) : std::string("-");
  };
  for (const auto& r : results) {
    table += fmt::format("{:<20} {:<14} {:>9} {:>10.5f} {:>12.4f} {:>10} {:>10} {:>8} {:>9}\n",
                         r.adapter_name, r.task_name, optional(r.accuracy, "{:.4f}"), r.loss,
                         r.perplexity, optional(r.aux_loss, "{:.6f}"), optional(r.z_loss, "{:.6f}"),
                         r.samples, r.tokens);
  }
  return table;
}

}  // namespace mixlora::eval
