#include "mixlora/train/optimizer.h"

#include "mixlora/common/error.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>

namespace mixlora::train {

void Optimizer::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

namespace {

// Per-parameter state buffers, created on first use, serialised as "<kind>.<index>".
class StateBuffers {
 public:
  at::Tensor& get(const std::string& kind, size_t index, const at::Tensor& like) {
    auto& slot = buffers_[kind];
    if (slot.size() <= index) slot.resize(index + 1);
    if (!slot[index].defined()) slot[index] = at::zeros_like(like, at::MemoryFormat::Contiguous);
    return slot[index];
  }
  void save(std::vector<std::pair<std::string, at::Tensor>>& out) const {
    for (const auto& [kind, list] : buffers_)
      for (size_t i = 0; i < list.size(); ++i)
        if (list[i].defined()) out.emplace_back(fmt::format("{}.{}", kind, i), list[i]);
  }
  void load(const std::vector<std::pair<std::string, at::Tensor>>& state,
            const std::vector<at::Tensor>& params) {
    buffers_.clear();
    for (const auto& [name, tensor] : state) {
      const auto dot = name.rfind('.');
      if (dot == std::string::npos) continue;  // scalar entries belong to the optimizer
      const auto kind = name.substr(0, dot);
      const size_t index = std::stoul(name.substr(dot + 1));
      if (index >= params.size() || tensor.sizes() != params[index].sizes()) {
        fail_input("optimizer state '{}' does not fit parameter {} of this adapter (checkpoint from "
                   "another config?)", name, index);
      }
      get(kind, index, params[index]).copy_(tensor);
    }
  }

 private:
  std::map<std::string, std::vector<at::Tensor>> buffers_;
};

int64_t scalar_state(const std::vector<std::pair<std::string, at::Tensor>>& state, const std::string& key) {
  for (const auto& [name, tensor] : state)
    if (name == key) return tensor.item<int64_t>();
  fail_input("optimizer state has no '{}' entry", key);
}

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<at::Tensor> params, AdamWOptions options)
      : Optimizer(std::move(params)), options_(options) {}

  void step(double lr) override {
    torch::NoGradGuard no_grad;
    ++steps_;
    const double bias1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
    const double bias2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& p = params_[i];
      const auto& grad = p.grad();
      if (!grad.defined()) continue;
      auto& exp_avg = buffers_.get("exp_avg", i, p);
      auto& exp_avg_sq = buffers_.get("exp_avg_sq", i, p);
      // torch.optim.AdamW (decoupled weight decay), step for step.
      p.mul_(1.0 - lr * options_.weight_decay);
      exp_avg.lerp_(grad, 1.0 - options_.beta1);
      exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
      auto denom = (exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(options_.eps);
      p.addcdiv_(exp_avg, denom, -lr / bias1);
    }
  }

  std::vector<std::pair<std::string, at::Tensor>> state() const override {
    std::vector<std::pair<std::string, at::Tensor>> out{{"step", at::tensor(steps_, at::kLong)}};
    buffers_.save(out);
    return out;
  }

  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& state) override {
    steps_ = scalar_state(state, "step");
    buffers_.load(state, params_);
  }

 private:
  AdamWOptions options_;
  int64_t steps_ = 0;
  StateBuffers buffers_;
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<at::Tensor> params, SgdOptions options) : Optimizer(std::move(params)), options_(options) {}

  void step(double lr) override {
    torch::NoGradGuard no_grad;
    ++steps_;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& p = params_[i];
      if (!p.grad().defined()) continue;
      auto grad = p.grad();
      if (options_.weight_decay != 0.0) grad = grad.add(p, options_.weight_decay);
      if (options_.momentum != 0.0) {
        // torch.optim.SGD: the first step's buffer is the gradient itself.
        auto& buffer = buffers_.get("momentum_buffer", i, p);
        if (steps_ == 1) buffer.copy_(grad);
        else buffer.mul_(options_.momentum).add_(grad);
        grad = buffer;
      }
      p.add_(grad, -lr);
    }
  }

  std::vector<std::pair<std::string, at::Tensor>> state() const override {
    std::vector<std::pair<std::string, at::Tensor>> out{{"step", at::tensor(steps_, at::kLong)}};
    buffers_.save(out);
    return out;
  }

  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& state) override {
    steps_ = scalar_state(state, "step");
    buffers_.load(state, params_);
  }

 private:
  SgdOptions options_;
  int64_t steps_ = 0;
  StateBuffers buffers_;
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
