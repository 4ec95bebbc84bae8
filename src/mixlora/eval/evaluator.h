// Evaluation of the base model and adapters (SPEC section 8): loss and perplexity per target
// token, accuracy for classification (head on the last token) and multiple choice (argmax over
// the choices' first tokens at the last prompt token), router losses and router profile.
// Several adapters share one pass of the frozen base per batch (their rows fused).
#pragma once

#include "mixlora/adapters/adapter.h"
#include "mixlora/data/sample.h"
#include "mixlora/model/decoder.h"
#include "mixlora/moe/router_stats.h"

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

namespace mixlora::eval {

// One adapter (nullptr = the bare base model) and the samples it is scored on.
struct EvalInput {
  const adapters::Adapter* adapter = nullptr;
  std::string task_name;
  const std::vector<data::Sample>* samples = nullptr;
};

struct EvalResult {
  std::string adapter_name;  // "base" for the bare model
  std::string task_name;
  std::optional<double> accuracy;  // classification / multiple choice
  double loss = 0.0;  // mean next-token cross-entropy per target token (classification: mean CE)
  double perplexity = 0.0;
  std::optional<double> aux_loss;  // coefficients applied, averaged over batches
  std::optional<double> z_loss;
  int64_t samples = 0;
  int64_t tokens = 0;  // target tokens scored
  // [layer][expert] fraction of routed (token, slot) assignments; MixLoRA only. The same as
  // router->layers[l].expert_share (kept for readers of the older report).
  std::vector<std::vector<double>> router_profile;
  // MixLoRA: router telemetry over the scored tokens, the schema of training's metrics.jsonl.
  std::optional<moe::RouterSummary> router;
};

// Running sums of one input over the batches scored: what the results are computed from, and
// what shards of one evaluation add up (element-wise) to.
struct EvalTotals {
  double loss_sum = 0.0;   // summed token cross-entropy (or summed classification CE)
  int64_t loss_count = 0;  // tokens (or classified rows)
  int64_t correct = 0, scored = 0;
  double aux_sum = 0.0, z_sum = 0.0;  // router losses summed over batches
  int64_t batches = 0;
  std::vector<at::Tensor> expert_counts;  // MixLoRA: per layer [num_experts], double, CPU
  moe::RouterStatSums router;             // MixLoRA: router telemetry sums (router_stats.h)

  // The sums as one row of doubles (for an all-reduce), and back from such a row.
  std::vector<double> flatten() const;
  void assign(const std::vector<double>& values);
};

// Which fused batches a process scores: batch b (rows b*batch_size.. of every input) when
// b % count == index. Every batch is scored whole, so the sum of all shards' totals is the
// totals of one process scoring everything (data-parallel training evaluates this way).
struct EvalShard {
  int64_t index = 0;
  int64_t count = 1;
};

// No dropout, no gradients. `batch_size` rows per input per fused batch.
std::vector<EvalTotals> score(const model::Decoder& decoder, const std::vector<EvalInput>& inputs,
                              int64_t batch_size, int64_t pad_id, EvalShard shard = {});
// Means, accuracy and router profile from the (summed) totals of `inputs`.
std::vector<EvalResult> results_of(const std::vector<EvalInput>& inputs,
                                   const std::vector<EvalTotals>& totals);

// score + results_of in one process.
std::vector<EvalResult> evaluate(const model::Decoder& decoder,
                                 const std::vector<EvalInput>& inputs, int64_t batch_size,
                                 int64_t pad_id);

nlohmann::json report_json(const std::vector<EvalResult>& results);
std::string report_table(const std::vector<EvalResult>& results);

}  // namespace mixlora::eval
