// `mixlora-train` for adapters as one call: joins the other data-parallel ranks (if any), checks
// the output directories (rank 0), loads the base model, its tokenizer and every adapter's data
// (and eval_data when eval_every is set), then runs the trainer. Nothing is written before all of
// it has loaded. The app only parses flags.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/train/rank_discovery.h"
#include "mixlora/train/trainer.h"

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

namespace mixlora::train {

struct TrainJob {
  TrainerOptions trainer;  // pad_id is set from the tokenizer, comm from `ranks`
  bool skip_bad_rows = false;
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device =
      c10::Device(c10::kCPU);        // with several ranks, "cuda" means cuda:<local rank>
  std::string device_flag = "auto";  // as given (--device): says whether an index was chosen
  // Data-parallel: world_size > 1 connects the ranks over c10d (train/distributed.h).
  RankInfo ranks;
  std::string dist_backend = "auto";  // auto | gloo | nccl
  double dist_timeout_s = 300;        // rendezvous and each collective
};

// One summary per adapter (on every rank; rank 0 alone wrote the files). A failure on one rank
// reaches the others at their next collective.
std::vector<AdapterSummary> run_train_job(const config::TrainConfig& config,
                                          const std::string& config_path, TrainJob job);

}  // namespace mixlora::train
