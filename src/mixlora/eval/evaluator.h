// Evaluation of the base model and adapters (SPEC section 8): loss and perplexity per target
// token, accuracy for classification (head on the last token) and multiple choice (argmax over
// the choices' first tokens at the last prompt token), router losses and router profile.
// Several adapters share one pass of the frozen base per batch (their rows fused).
#pragma once

#include "mixlora/adapters/adapter.h"
#include "mixlora/data/sample.h"
#include "mixlora/model/decoder.h"

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
  // [layer][expert] fraction of routed (token, slot) assignments; MixLoRA only.
  std::vector<std::vector<double>> router_profile;
};

// No dropout, no gradients. `batch_size` rows per input per fused batch.
std::vector<EvalResult> evaluate(const model::Decoder& decoder, const std::vector<EvalInput>& inputs,
                                 int64_t batch_size, int64_t pad_id);

nlohmann::json report_json(const std::vector<EvalResult>& results);
std::string report_table(const std::vector<EvalResult>& results);

}  // namespace mixlora::eval
