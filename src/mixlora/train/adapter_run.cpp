#include "mixlora/train/adapter_run.h"

#include "mixlora/adapters/adapter_init.h"
#include "mixlora/common/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <cmath>

namespace mixlora::train {

AdapterRun::AdapterRun(const config::AdapterConfig& config, const model::BaseModel& base,
                       std::vector<data::Sample> samples, uint64_t seed)
    : adapter_(adapters::Adapter::create(config, base, adapter_seed(seed, config.name))),
      parameters_(adapter_.parameters()),
      generator_(at::make_generator<at::CPUGeneratorImpl>(adapter_seed(seed, config.name) + 1)),
      plan_(config, std::move(samples), seed) {
  if (!config.init_adapter.empty()) {
    adapters::init_from_adapter(adapter_, config.init_adapter, base);
    spdlog::info("adapter '{}': starts from the weights of {}", config.name, config.init_adapter);
  }
  if (config.optim == config::Optimizer::sgd) {
    optimizer_ = make_sgd(parameters_, {config.momentum, config.weight_decay});
  } else {
    optimizer_ = make_adamw(parameters_, {0.9, 0.999, 1e-8, config.weight_decay});
  }
  if (config.loraplus_lr_ratio != 1.0) {
    optimizer_->set_lr_scales(loraplus_lr_scales(adapter_.state_dict(), config.loraplus_lr_ratio));
  }
}

double AdapterRun::optimizer_step(double max_grad_norm, bool skip) {
  const double norm = skip ? std::nan("") : clip_grad_norm(parameters_, max_grad_norm);
  if (std::isfinite(norm)) optimizer_->step(current_lr());
  optimizer_->zero_grad();
  plan_.finish_step();
  return std::isfinite(norm) ? norm : std::nan("");
}

CheckpointContent AdapterRun::checkpoint_content() const {
  CheckpointContent c;
  c.trainer_state = plan_.state();
  c.trainer_state["adapter"] = name();
  c.trainer_state["format"] = "mixlora-cpp checkpoint 2";
  c.optimizer_state = optimizer_->state();
  c.rng_state = generator_.get_state();
  return c;
}

void AdapterRun::restore(const CheckpointContent& content) {
  plan_.restore(content.trainer_state, fmt::format("adapter '{}'", name()));
  optimizer_->load_state(content.optimizer_state);
  generator_.set_state(content.rng_state);
}

}  // namespace mixlora::train
