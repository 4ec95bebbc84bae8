// Checkpoints of one adapter's training: <adapter dir>/checkpoint-<step>/ holding the adapter
// files, optimizer.safetensors (optimizer state + the adapter's RNG state) and
// trainer_state.json (progress). Written into a hidden temp directory, then renamed, so a
// checkpoint directory that exists is complete.
#pragma once

#include "mixlora/adapters/adapter.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mixlora::train {

struct CheckpointContent {
  nlohmann::json trainer_state;  // step, epoch, cursor, ...
  std::vector<std::pair<std::string, at::Tensor>> optimizer_state;
  at::Tensor rng_state;  // uint8, at::Generator::get_state()
};

// Writes <adapter_dir>/checkpoint-<step>; returns its path.
std::string save_checkpoint(const std::string& adapter_dir, int64_t step,
                            const adapters::Adapter& adapter, const std::string& base_model_name,
                            const CheckpointContent& content);

// Removes what a killed run left half-written in an adapter directory: .checkpoint-<step>.tmp
// directories and the temporary files of atomic writes (NAME.tmp.PID). Returns how many.
int remove_incomplete(const std::string& adapter_dir);

// The complete checkpoint with the highest step, if any.
std::optional<std::string> newest_checkpoint(const std::string& adapter_dir);

// Reads a checkpoint: the adapter weights are copied into `adapter` (shapes checked).
CheckpointContent load_checkpoint(const std::string& checkpoint_dir, adapters::Adapter& adapter,
                                  const model::BaseModel& base);

}  // namespace mixlora::train
