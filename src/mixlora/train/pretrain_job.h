// `mixlora-train --pretrain` as one call: checks the inputs, loads (or makes at random) the base
// model and the tokenizer, reads the pretraining rows of the config's single lora[] entry, runs
// pretrain() and writes the model directory. The app only parses flags around it.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/train/pretrain.h"

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace mixlora::train {

struct PretrainJob {
  std::string
      init_model;  // shape JSON (config.json keys): start from random weights instead of base_model
  std::string tokenizer;  // tokenizer directory or tokenizer.model file (default: the base model's)
  bool overwrite = false;
  bool skip_bad_rows = false;
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
};

// Throws InputError on a bad combination (init_model with a base model, an existing model
// without overwrite, a tokenizer larger than the model's vocabulary) or bad data.
PretrainSummary run_pretrain_job(const config::TrainConfig& config, const std::string& config_path,
                                 const PretrainJob& job);

}  // namespace mixlora::train
