#include "mixlora/train/optimizer.h"

#include "mixlora/common/error.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>

namespace mixlora::train {

void Optimizer::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

void Optimizer::set_lr_scales(std::vector<double> scales) {
  if (!scales.empty() && scales.size() != params_.size()) {
    fail_runtime("optimizer: {} learning-rate scales for {} parameters", scales.size(),
                 params_.size());
  }
  lr_scales_ = std::move(scales);
}

std::vector<double> loraplus_lr_scales(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                       double ratio) {
  std::vector<double> scales;
  for (const auto& [name, tensor] : named) {
    const bool group_b = name.find("lora_B") != std::string::npos || tensor.dim() == 1;
    scales.push_back(group_b ? ratio : 1.0);
  }
  return scales;
}

at::Tensor& Optimizer::buffer(const std::string& kind, size_t index) {
  auto& slot = buffers_[kind];
  if (slot.size() <= index) slot.resize(index + 1);
  if (!slot[index].defined())
    slot[index] = at::zeros_like(params_[index], at::MemoryFormat::Contiguous);
  return slot[index];
}

std::vector<std::pair<std::string, at::Tensor>> Optimizer::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out{
      {"format_version", at::tensor(kStateFormat, at::kLong)},
      {"step", at::tensor(steps_, at::kLong)}};
  for (size_t i = 0; i < param_steps_.size(); ++i)
    if (param_steps_[i] > 0)
      out.emplace_back(fmt::format("step.{}", i), at::tensor(param_steps_[i], at::kLong));
  for (const auto& [kind, list] : buffers_)
    for (size_t i = 0; i < list.size(); ++i)
      if (list[i].defined()) out.emplace_back(fmt::format("{}.{}", kind, i), list[i]);
  return out;
}

void Optimizer::load_state(const std::vector<std::pair<std::string, at::Tensor>>& state) {
  buffers_.clear();
  std::fill(param_steps_.begin(), param_steps_.end(), 0);
  bool has_step = false;
  int64_t format = 1;  // format 1 had no version entry
  for (const auto& [name, tensor] : state) {
    if (name == "format_version") format = tensor.item<int64_t>();
  }
  if (format < 1 || format > kStateFormat) {
    fail_input(
        "optimizer state has format_version {}; this build reads 1..{} (checkpoint from a newer "
        "mixlora-cpp?)",
        format, kStateFormat);
  }
  for (const auto& [name, tensor] : state) {
    if (name == "format_version") continue;
    if (name == "step") {
      steps_ = tensor.item<int64_t>();
      has_step = true;
      continue;
    }
    const auto dot = name.rfind('.');
    const auto index_text = dot == std::string::npos ? std::string() : name.substr(dot + 1);
    if (index_text.empty() || index_text.find_first_not_of("0123456789") != std::string::npos) {
      fail_input("optimizer state has an unknown entry '{}'", name);
    }
    const size_t index = std::stoul(index_text);
    const auto kind = name.substr(0, dot);
    if (kind == "step" && format >= 2) {
      if (index >= params_.size() || tensor.numel() != 1) {
        fail_input(
            "optimizer state '{}' does not fit parameter {} of this adapter (checkpoint from "
            "another config?)",
            name, index);
      }
      param_steps_[index] = tensor.item<int64_t>();
      continue;
    }
    if (index >= params_.size() || tensor.sizes() != params_[index].sizes()) {
      fail_input(
          "optimizer state '{}' does not fit parameter {} of this adapter (checkpoint from "
          "another config?)",
          name, index);
    }
    torch::NoGradGuard no_grad;
    buffer(kind, index).copy_(tensor);
  }
  if (!has_step) fail_input("optimizer state has no 'step' entry");
  if (format == 1) {
    // Format 1 counted steps globally and used that count for every parameter's bias
    // correction: continuing with it keeps the run's trajectory as it was begun.
    for (const auto& [kind, list] : buffers_)
      for (size_t i = 0; i < list.size(); ++i)
        if (list[i].defined()) param_steps_[i] = steps_;
  }
}

namespace {

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<at::Tensor> params, AdamWOptions options)
      : Optimizer(std::move(params)), options_(options) {}

  void step(double lr) override {
    torch::NoGradGuard no_grad;
    ++steps_;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& p = params_[i];
      const auto& grad = p.grad();
      if (!grad.defined()) continue;  // torch.optim skips p.grad is None: no decay, no step
      const double lr_i = lr * lr_scale(i);
      // torch.optim.AdamW keeps state['step'] per parameter: bias corrections count only the
      // updates this parameter has had.
      const auto t = static_cast<double>(++param_steps_[i]);
      const double bias1 = 1.0 - std::pow(options_.beta1, t);
      const double bias2 = 1.0 - std::pow(options_.beta2, t);
      auto& exp_avg = buffer("exp_avg", i);
      auto& exp_avg_sq = buffer("exp_avg_sq", i);
      // torch.optim.AdamW (decoupled weight decay), step for step.
      p.mul_(1.0 - lr_i * options_.weight_decay);
      exp_avg.lerp_(grad, 1.0 - options_.beta1);
      exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
      auto denom = (exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(options_.eps);
      p.addcdiv_(exp_avg, denom, -lr_i / bias1);
    }
  }

 private:
  AdamWOptions options_;
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<at::Tensor> params, SgdOptions options)
      : Optimizer(std::move(params)), options_(options) {}

  void step(double lr) override {
    torch::NoGradGuard no_grad;
    ++steps_;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& p = params_[i];
      if (!p.grad().defined()) continue;
      auto grad = p.grad();
      const bool first = ++param_steps_[i] == 1;
      if (options_.weight_decay != 0.0) grad = grad.add(p, options_.weight_decay);
      if (options_.momentum != 0.0) {
        // torch.optim.SGD: the buffer of a parameter's first update is the gradient itself.
        auto& momentum = buffer("momentum_buffer", i);
        if (first)
          momentum.copy_(grad);
        else
          momentum.mul_(options_.momentum).add_(grad);
        grad = momentum;
      }
      p.add_(grad, -lr * lr_scale(i));
    }
  }

 private:
  SgdOptions options_;
};

}  // namespace

std::unique_ptr<Optimizer> make_adamw(std::vector<at::Tensor> params, AdamWOptions options) {
  return std::make_unique<AdamW>(std::move(params), options);
}

std::unique_ptr<Optimizer> make_sgd(std::vector<at::Tensor> params, SgdOptions options) {
  return std::make_unique<Sgd>(std::move(params), options);
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().norm(2));
  if (norms.empty()) return 0.0;
  const double total = at::stack(norms).norm(2).item<double>();
  if (max_norm > 0.0 && total > max_norm) {
    const double factor = max_norm / (total + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(factor);
  }
  return total;
}

}  // namespace mixlora::train
