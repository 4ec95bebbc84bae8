// `mixlora-train` for adapters as one call: checks the output directories (rank 0), loads the
// base model, its tokenizer and every adapter's data (and eval_data when eval_every is set), then
// runs the trainer. Nothing is written before all of it has loaded. The app parses flags and sets
// up the ranks around it.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/train/trainer.h"

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

namespace mixlora::train {

struct TrainJob {
  TrainerOptions trainer;  // pad_id is set from the tokenizer
  bool skip_bad_rows = false;
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
};

// One summary per adapter (on every rank; rank 0 alone wrote the files).
std::vector<AdapterSummary> run_train_job(const config::TrainConfig& config, const std::string& config_path,
                                          TrainJob job);

}  // namespace mixlora::train
