#include "mixlora/train/step_plan.h"

#include "mixlora/common/error.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace mixlora::train {

uint64_t adapter_seed(uint64_t seed, const std::string& name) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) hash = (hash ^ c) * 1099511628211ull;
  return seed ^ hash;
}

StepPlan::StepPlan(const config::AdapterConfig& config, std::vector<data::Sample> samples,
                   uint64_t seed)
    : samples_(std::move(samples)),
      data_seed_(adapter_seed(seed, config.name) + 2),
      group_by_length_(config.group_by_length),
      micro_batch_size_(config.micro_batch_size),
      num_epochs_(config.num_epochs),
      lr_(config.lr) {
  if (samples_.empty()) fail_input("adapter '{}': no training samples", config.name);
  accumulation_ = config.batch_size / config.micro_batch_size;
  const int64_t micro_batches =
      (static_cast<int64_t>(samples_.size()) + micro_batch_size_ - 1) / micro_batch_size_;
  const int64_t steps_per_epoch = (micro_batches + accumulation_ - 1) / accumulation_;
  schedule_.type = config.scheduler_type;
  schedule_.total_steps = steps_per_epoch * num_epochs_;
  schedule_.warmup_steps =
      warmup_steps(config.warmup_steps, config.warmup_ratio, schedule_.total_steps);
  int64_t tokens = 0;
  for (const auto& s : samples_) tokens += static_cast<int64_t>(s.input_ids.size());
  average_length_ = tokens / static_cast<int64_t>(samples_.size());
  start_epoch();
}

void StepPlan::start_epoch() {
  order_.resize(samples_.size());
  std::iota(order_.begin(), order_.end(), 0);
  if (group_by_length_) {
    // Longest first, as MoE-PEFT groups: similar lengths share batches, little padding.
    std::stable_sort(order_.begin(), order_.end(), [&](int64_t a, int64_t b) {
      return samples_[a].input_ids.size() > samples_[b].input_ids.size();
    });
  } else {
    // A fresh permutation each epoch, reproducible from the seed and the epoch number alone.
    std::mt19937_64 rng(data_seed_ + static_cast<uint64_t>(epoch_));
    std::shuffle(order_.begin(), order_.end(), rng);
  }
  cursor_ = 0;
}

std::vector<const data::Sample*> StepPlan::next_micro_batch() const {
  std::vector<const data::Sample*> batch;
  const int64_t end = std::min<int64_t>(cursor_ + micro_batch_size_, order_.size());
  for (int64_t i = cursor_; i < end; ++i) batch.push_back(&samples_[order_[i]]);
  return batch;
}

bool StepPlan::next_micro_batch_ends_step() const {
  return micro_step_ + 1 >= accumulation_ ||
         cursor_ + micro_batch_size_ >= static_cast<int64_t>(order_.size());
}

bool StepPlan::finish_micro_batch() {
  cursor_ = std::min<int64_t>(cursor_ + micro_batch_size_, order_.size());
  ++micro_step_;
  const bool epoch_end = cursor_ >= static_cast<int64_t>(order_.size());
  return micro_step_ >= accumulation_ || epoch_end;
}

void StepPlan::finish_step() {
  micro_step_ = 0;
  ++step_;
  if (cursor_ >= static_cast<int64_t>(order_.size())) {
    ++epoch_;
    if (!done()) start_epoch();
  }
}

void StepPlan::mark_finished() {
  epoch_ = num_epochs_;
  step_ = schedule_.total_steps;
}

nlohmann::json StepPlan::state() const {
  return {{"step", step_},
          {"epoch", epoch_},
          {"cursor", cursor_},
          {"total_steps", schedule_.total_steps},
          {"samples", samples_.size()}};
}

void StepPlan::restore(const nlohmann::json& state, const std::string& who) {
  if (state.value("samples", static_cast<size_t>(0)) != samples_.size()) {
    fail_input(
        "{}: the checkpoint was taken on {} samples but the data now has {} (data "
        "changed? use --overwrite to start over)",
        who, state.value("samples", 0), samples_.size());
  }
  step_ = state.at("step").get<int64_t>();
  epoch_ = state.at("epoch").get<int64_t>();
  micro_step_ = 0;
  if (!done()) {
    start_epoch();  // rebuilds this epoch's order from the seed
    cursor_ = state.at("cursor").get<int64_t>();
  }
}

}  // namespace mixlora::train
