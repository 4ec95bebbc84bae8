// Which samples each micro-batch takes, when an optimizer step falls due, and the learning rate
// of every step: the data side of a training run, shared by the adapter trainer (AdapterRun)
// and full-parameter pretraining. Epochs are reshuffled from the seed and the epoch number
// alone (or sorted longest first with group_by_length, as MoE-PEFT groups), so a checkpoint
// needs only the step, the epoch and the cursor to continue exactly.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/data/sample.h"
#include "mixlora/train/scheduler.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlora::train {

// A stable 64-bit seed for one config entry: it depends on the run seed and the entry's name
// only, so an adapter trains the same whichever adapters share the run. An entry draws its
// initial weights from it, dropout and jitter from +1, its data order from +2.
uint64_t adapter_seed(uint64_t seed, const std::string& name);

class StepPlan {
 public:
  // Reads batch_size, micro_batch_size, num_epochs, group_by_length, lr, scheduler_type and
  // warmup_steps / warmup_ratio from `config`; the data order comes from the run's `seed` and
  // the entry's name. `samples` must not be empty.
  StepPlan(const config::AdapterConfig& config, std::vector<data::Sample> samples, uint64_t seed);

  bool done() const { return epoch_ >= num_epochs_; }
  // The next micro-batch of samples (never empty while !done()).
  std::vector<const data::Sample*> next_micro_batch() const;
  // Records that the micro-batch was consumed (backward done). Returns true when an optimizer
  // step is due: the accumulation is full or the epoch ended.
  bool finish_micro_batch();
  // Whether finishing the next micro-batch will make an optimizer step due.
  bool next_micro_batch_ends_step() const;
  // Micro-batches accumulated towards a step not yet taken: a checkpoint now would lose them.
  bool mid_step() const { return micro_step_ > 0; }
  // After the optimizer step (taken or skipped): counts it and starts the next epoch when this
  // one has run out.
  void finish_step();

  // The learning rate of the step under way: base lr times the schedule's factor.
  double current_lr() const { return lr_ * lr_factor(schedule_, step_); }
  int64_t step() const { return step_; }
  int64_t total_steps() const { return schedule_.total_steps; }
  int64_t epoch() const { return epoch_; }
  int64_t accumulation() const { return accumulation_; }
  int64_t average_length() const { return average_length_; }
  size_t num_samples() const { return samples_.size(); }

  // Nothing left to train (a finished run found on disk).
  void mark_finished();
  // step, epoch, cursor, total_steps and samples: what restore() needs to continue.
  nlohmann::json state() const;
  // Continues from state() at a step boundary; the sample count must match (`who` names the
  // run in the error).
  void restore(const nlohmann::json& state, const std::string& who);

 private:
  void start_epoch();

  std::vector<data::Sample> samples_;
  uint64_t data_seed_;
  bool group_by_length_;
  int64_t micro_batch_size_;
  int64_t num_epochs_;
  double lr_;
  Schedule schedule_;
  int64_t accumulation_ = 1;
  int64_t average_length_ = 0;

  std::vector<int64_t> order_;  // sample indices of the current epoch
  int64_t epoch_ = 0;
  int64_t cursor_ = 0;      // next position in order_
  int64_t micro_step_ = 0;  // micro-batches accumulated towards the next step
  int64_t step_ = 0;        // optimizer steps taken
};

}  // namespace mixlora::train
