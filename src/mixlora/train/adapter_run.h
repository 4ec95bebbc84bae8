// The training state of one adapter: its weights, optimizer, random generator and step plan
// (data order, steps, lr). Each adapter advances on its own (m-LoRA style); the trainer only
// fuses their micro-batches.
#pragma once

#include "mixlora/adapters/adapter.h"
#include "mixlora/data/sample.h"
#include "mixlora/train/checkpoint.h"
#include "mixlora/train/optimizer.h"
#include "mixlora/train/step_plan.h"

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
  bool done() const { return plan_.done(); }

  // The data side, as StepPlan says.
  std::vector<const data::Sample*> next_micro_batch() const { return plan_.next_micro_batch(); }
  bool finish_micro_batch() { return plan_.finish_micro_batch(); }
  bool next_micro_batch_ends_step() const { return plan_.next_micro_batch_ends_step(); }
  bool mid_step() const { return plan_.mid_step(); }
  // Clips, steps the optimizer with the scheduled lr, clears gradients. Returns the grad norm
  // before clipping, or NaN when the step was skipped: gradients not finite, or `skip` (a
  // non-finite loss). A skipped step still counts and consumes its data.
  double optimizer_step(double max_grad_norm, bool skip = false);

  int64_t step() const { return plan_.step(); }
  const std::vector<at::Tensor>& parameters() const { return parameters_; }
  int64_t total_steps() const { return plan_.total_steps(); }
  int64_t epoch() const { return plan_.epoch(); }
  int64_t accumulation() const { return plan_.accumulation(); }
  double current_lr() const { return plan_.current_lr(); }
  int64_t average_length() const { return plan_.average_length(); }

  // A finished adapter found on disk when resuming: nothing left to train.
  void mark_finished() { plan_.mark_finished(); }

  CheckpointContent checkpoint_content() const;
  void restore(const CheckpointContent& content);
  adapters::Adapter& mutable_adapter() { return adapter_; }

 private:
  adapters::Adapter adapter_;
  std::vector<at::Tensor> parameters_;  // adapter_.parameters(), built once
  std::unique_ptr<Optimizer> optimizer_;
  at::Generator generator_;  // dropout and jitter of this adapter
  StepPlan plan_;
};

}  // namespace mixlora::train
