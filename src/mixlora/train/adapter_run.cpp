#include "mixlora/train/adapter_run.h"

#include "mixlora/adapters/adapter_init.h"
#include "mixlora/common/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace mixlora::train {

uint64_t adapter_seed(uint64_t seed, const std::string& name) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) hash = (hash ^ c) * 1099511628211ull;
  return seed ^ hash;
}

AdapterRun::AdapterRun(const config::AdapterConfig& config, const model::BaseModel& base,
                       std::vector<data::Sample> samples, uint64_t seed)
    : adapter_(adapters::Adapter::create(config, base, adapter_seed(seed, config.name))),
      parameters_(adapter_.parameters()),
      samples_(std::move(samples)),
      generator_(at::make_generator<at::CPUGeneratorImpl>(adapter_seed(seed, config.name) + 1)),
      data_seed_(adapter_seed(seed, config.name) + 2) {
  if (samples_.empty()) fail_input("adapter '{}': no training samples", config.name);
  if (!config.init_adapter.empty()) {
    adapters::init_from_adapter(adapter_, config.init_adapter, base);
    spdlog::info("adapter '{}': starts from the weights of {}", config.name, config.init_adapter);
  }
  accumulation_ = config.batch_size / config.micro_batch_size;
  const int64_t micro_batches =
      (static_cast<int64_t>(samples_.size()) + config.micro_batch_size - 1) /
      config.micro_batch_size;
  const int64_t steps_per_epoch = (micro_batches + accumulation_ - 1) / accumulation_;
  schedule_.type = config.scheduler_type;
  schedule_.total_steps = steps_per_epoch * config.num_epochs;
  schedule_.warmup_steps =
      warmup_steps(config.warmup_steps, config.warmup_ratio, schedule_.total_steps);
  int64_t tokens = 0;
  for (const auto& s : samples_) tokens += static_cast<int64_t>(s.input_ids.size());
  average_length_ = tokens / static_cast<int64_t>(samples_.size());
  if (config.optim == config::Optimizer::sgd) {
    optimizer_ = make_sgd(parameters_, {config.momentum, config.weight_decay});
  } else {
    optimizer_ = make_adamw(parameters_, {0.9, 0.999, 1e-8, config.weight_decay});
  }
  if (config.loraplus_lr_ratio != 1.0) {
    optimizer_->set_lr_scales(loraplus_lr_scales(adapter_.state_dict(), config.loraplus_lr_ratio));
  }
  start_epoch();
}

void AdapterRun::start_epoch() {
  order_.resize(samples_.size());
  std::iota(order_.begin(), order_.end(), 0);
  if (config().group_by_length) {
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

std::vector<const data::Sample*> AdapterRun::next_micro_batch() const {
  std::vector<const data::Sample*> batch;
  const int64_t end = std::min<int64_t>(cursor_ + config().micro_batch_size, order_.size());
  for (int64_t i = cursor_; i < end; ++i) batch.push_back(&samples_[order_[i]]);
  return batch;
}

bool AdapterRun::next_micro_batch_ends_step() const {
  return micro_step_ + 1 >= accumulation_ ||
         cursor_ + config().micro_batch_size >= static_cast<int64_t>(order_.size());
}

bool AdapterRun::finish_micro_batch() {
  cursor_ = std::min<int64_t>(cursor_ + config().micro_batch_size, order_.size());
  ++micro_step_;
  const bool epoch_end = cursor_ >= static_cast<int64_t>(order_.size());
  return micro_step_ >= accumulation_ || epoch_end;
}

double AdapterRun::current_lr() const { return config().lr * lr_factor(schedule_, step_); }

double AdapterRun::optimizer_step(double max_grad_norm, bool skip) {
  const double norm = skip ? std::nan("") : clip_grad_norm(parameters_, max_grad_norm);
  if (std::isfinite(norm)) optimizer_->step(current_lr());
  optimizer_->zero_grad();
  micro_step_ = 0;
  ++step_;
  if (cursor_ >= static_cast<int64_t>(order_.size())) {
    ++epoch_;
    if (!done()) start_epoch();
  }
  return std::isfinite(norm) ? norm : std::nan("");
}

CheckpointContent AdapterRun::checkpoint_content() const {
  CheckpointContent c;
  c.trainer_state = {{"adapter", name()},
                     {"step", step_},
                     {"epoch", epoch_},
                     {"cursor", cursor_},
                     {"total_steps", schedule_.total_steps},
                     {"samples", samples_.size()},
                     {"format", "mixlora-cpp checkpoint 2"}};
  c.optimizer_state = optimizer_->state();
  c.rng_state = generator_.get_state();
  return c;
}

void AdapterRun::restore(const CheckpointContent& content) {
  const auto& s = content.trainer_state;
  if (s.value("samples", static_cast<size_t>(0)) != samples_.size()) {
    fail_input(
        "adapter '{}': the checkpoint was taken on {} samples but the data now has {} (data "
        "changed? use --overwrite to start over)",
        name(), s.value("samples", 0), samples_.size());
  }
  optimizer_->load_state(content.optimizer_state);
  generator_.set_state(content.rng_state);
  step_ = s.at("step").get<int64_t>();
  epoch_ = s.at("epoch").get<int64_t>();
  micro_step_ = 0;
  if (!done()) {
    start_epoch();  // rebuilds this epoch's order from the seed
    cursor_ = s.at("cursor").get<int64_t>();
  }
}

}  // namespace mixlora::train
