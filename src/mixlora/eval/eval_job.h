// `mixlora-eval` as one call: loads the base model, its tokenizer and the adapters, reads the
// data file once per adapter (each with its own prompt template and labels) and scores them all
// over shared passes of the base model. The app parses flags and prints around it.
#pragma once

#include "mixlora/eval/evaluator.h"

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlora::eval {

struct EvalJob {
  std::string base_model;
  std::vector<std::string> adapter_dirs;
  std::string data_path;
  std::string task;             // "": the first adapter's task, else causal LM
  int64_t batch_size = 8;       // rows per adapter per batch
  int64_t cutoff_len = 0;       // 0: the model's context
  bool with_base = false;       // also score the base model alone (always when no adapter)
  bool responses_only = false;  // instruction rows: score the response tokens only
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
};

// The base model's result first (with_base), then one per adapter in the given order.
std::vector<EvalResult> run_eval_job(EvalJob job);

}  // namespace mixlora::eval
