// Evaluation of the base model and adapters on tokenized data (SPEC section 8): loss and
// perplexity per target token, router losses, router profile. Several adapters share one pass
// of the frozen base per batch (their rows fused into one batch).
#pragma once

#include "mixlora/adapters/adapter.h"
#include "mixlora/data/sample.h"
#include "mixlora/model/decoder.h"

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

namespace mixlora::eval {

struct EvalResult {
  std::string adapter_name;  // "base" for the bare model
  std::string task_name;
  double loss = 0.0;  // mean next-token cross-entropy per target token
  double perplexity = 0.0;
  std::optional<double> aux_loss;  // coefficients applied, averaged over batches
  std::optional<double> z_loss;
  int64_t samples = 0;
  int64_t tokens = 0;  // target tokens scored
  // [layer][expert] fraction of routed (token, slot) assignments; MixLoRA only.
  std::vector<std::vector<double>> router_profile;
};

// `adapters` may hold nullptr for the base model. No dropout, no gradients.
std::vector<EvalResult> evaluate_causal_lm(const model::Decoder& decoder,
                                           const std::vector<const adapters::Adapter*>& adapters,
                                           const std::vector<data::Sample>& samples,
                                           int64_t batch_size, int64_t pad_id);

nlohmann::json report_json(const std::vector<EvalResult>& results);
std::string report_table(const std::vector<EvalResult>& results);

}  // namespace mixlora::eval
