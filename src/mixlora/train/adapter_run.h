// The training state of one adapter: its data order, optimizer, schedule and progress. Each
// adapter advances on its own (m-LoRA style); the trainer only fuses their micro-batches.
#pragma once

#include "mixlora/adapters/adapter.h"
#include "mixlora/data/sample.h"
#include "mixlora/train/checkpoint.h"
#include "mixlora/train/optimizer.h"
#include "mixlora/train/scheduler.h"

#include <memory>
#include <string>
#include <vector>

namespace mixlora::train {

class AdapterRun {
 public:
  AdapterRun(const config::AdapterConfig& config, const model::BaseModel& base,
             std::vector<data::Sample> samples, uint64_t seed);

  const std::string& name() const { return adapter_.config.name; }
  const adapters::Adapter& adapter() const { return adapter_; }
  const at::Generator& generator() const { return generator_; }
  bool done() const { return epoch_ >= config().num_epochs; }

  // The next micro-batch of samples (never empty while !done()).
  std::vector<const data::Sample*> next_micro_batch() const;
  // Records that the micro-batch was consumed (backward done). Returns true when an optimizer
  // step is due: the accumulation is full or the epoch ended.
  bool finish_micro_batch();
  // Clips, steps the optimizer with the scheduled lr, clears gradients. Returns the grad norm
  // before clipping, or NaN when the step was skipped: gradients not finite, or `skip` (a
  // non-finite loss). A skipped step still counts and consumes its data.
  double optimizer_step(double max_grad_norm, bool skip = false);
  // Whether finishing the next micro-batch will make an optimizer step due.
  bool next_micro_batch_ends_step() const;
  // Micro-batches accumulated towards a step not yet taken: a checkpoint now would lose them.
  bool mid_step() const { return micro_step_ > 0; }

  int64_t step() const { return step_; }
  const std::vector<at::Tensor>& parameters() const { return parameters_; }
  int64_t total_steps() const { return schedule_.total_steps; }
  int64_t epoch() const { return epoch_; }
  int64_t accumulation() const { return accumulation_; }
  double current_lr() const;
  int64_t average_length() const { return average_length_; }

  // A finished adapter found on disk when resuming: nothing left to train.
  void mark_finished() {
    epoch_ = config().num_epochs;
    step_ = schedule_.total_steps;
  }

  CheckpointContent checkpoint_content() const;
  void restore(const CheckpointContent& content);
  adapters::Adapter& mutable_adapter() { return adapter_; }

 private:
  const config::AdapterConfig& config() const { return adapter_.config; }
  void start_epoch();

  adapters::Adapter adapter_;
  std::vector<at::Tensor> parameters_;  // adapter_.parameters(), built once
  std::vector<data::Sample> samples_;
  std::unique_ptr<Optimizer> optimizer_;
  Schedule schedule_;
  at::Generator generator_;  // dropout and jitter of this adapter
  uint64_t data_seed_;
  int64_t accumulation_ = 1;
  int64_t average_length_ = 0;

  // progress
  std::vector<int64_t> order_;  // sample indices of the current epoch
  int64_t epoch_ = 0;
  int64_t cursor_ = 0;      // next position in order_
  int64_t micro_step_ = 0;  // micro-batches accumulated towards the next step
  int64_t step_ = 0;        // optimizer steps taken
};

// A stable 64-bit seed for one adapter: it depends on the run seed and the adapter's name only,
// so an adapter trains the same whichever adapters share the run.
uint64_t adapter_seed(uint64_t seed, const std::string& name);

}  // namespace mixlora::train
