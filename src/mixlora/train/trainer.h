// The multi-adapter training loop: micro-batches of up to train_lora_simultaneously_num
// adapters are fused into one batch over one pass of the frozen base; each adapter keeps its
// own loss, optimizer, schedule, steps and epochs (SPEC sections 4, 6, 7).
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/sample.h"
#include "mixlora/model/base_model.h"
#include "mixlora/moe/mixlora_ffn.h"
#include "mixlora/train/distributed.h"

#include <map>
#include <string>
#include <vector>

namespace mixlora::train {

struct TrainerOptions {
  std::string base_model_name;  // written into adapter_config.json
  bool resume = false;
  bool overwrite = false;
  bool export_bin =
      true;  // adapter_model.bin beside the safetensors (the plugin and MoE-PEFT read only it)
  bool write_report = true;  // OUTPUT_DIR/report.html at the end (mixlora-report; --no-report)
  moe::FfnPath ffn_path = moe::FfnPath::efficient;
  int64_t pad_id = 0;
  // Data-parallel ranks (train/data_parallel.h); null for a single process.
  Communicator* comm = nullptr;
};

struct AdapterSummary {
  std::string name;
  int64_t steps = 0;
  double first_loss = 0.0;  // mean task loss of the first logged window
  double last_loss = 0.0;   // ... and of the last
  std::string output_dir;
};

// Checks the output directories before any training: writable, not a finished run unless
// --overwrite, a run with checkpoints only with --resume or --overwrite. Throws InputError.
// Creates and removes nothing: train() does that once the model and data have loaded.
void prepare_output(const config::TrainConfig& config, const TrainerOptions& options);

// Trains every adapter of `config` on its samples (same order as config.adapters) and writes
// the results. With config.eval_every > 0, an adapter with held-out sets in `eval_sets` (same
// order; empty = none) is scored on them every eval_every of its steps and when it finishes.
// Returns one summary per adapter. A SIGINT / SIGTERM during training finishes the step,
// checkpoints every unfinished adapter and throws common::Interrupted; too many non-finite
// steps in a row (max_nonfinite_steps) checkpoint likewise and throw RuntimeError.
std::vector<AdapterSummary> train(const config::TrainConfig& config, const model::BaseModel& base,
                                  std::vector<std::vector<data::Sample>> samples,
                                  const TrainerOptions& options,
                                  const std::vector<std::vector<data::TaskData>>& eval_sets = {});

}  // namespace mixlora::train
