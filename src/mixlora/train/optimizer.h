// AdamW and SGD with PyTorch's exact update rules, over a fixed list of fp32 parameters, with
// their state as named tensors so that checkpoints are plain safetensors (we never unpickle).
// As in torch.optim, each parameter counts its own steps and a parameter without a gradient
// (an expert that got no tokens) is skipped: no decay, no moment update, no step counted. Its
// first update, whenever it comes, is then a first step (AdamW bias corrections of step 1).
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mixlora::train {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate `lr` from the gradients in param.grad(); params without a
  // gradient (undefined, as autograd leaves a parameter that took no part) are skipped.
  virtual void step(double lr) = 0;
  // State tensors under stable names, for checkpoints (format kStateFormat): "format_version",
  // "step" (calls of step()), and per parameter i that has been updated "step.i" (its own
  // update count), "exp_avg.i", "exp_avg_sq.i" (AdamW) or "momentum_buffer.i" (SGD).
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  // Restores what state() returned; shapes are checked (InputError naming the tensor). State
  // without "format_version" is format 1 (one global step count): every parameter that has a
  // buffer gets the global step as its own, which is what format 1 used for its updates.
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& state);
  void zero_grad();
  // How many updates parameter i has had (tests).
  int64_t parameter_steps(size_t index) const { return param_steps_.at(index); }
  // Per-parameter learning-rate factors (LoRA+: lora_B and 1-D parameters train with
  // lr * loraplus_lr_ratio); empty = 1 for every parameter. Weight decay uses the scaled lr too,
  // as in a torch param group with its own lr.
  void set_lr_scales(std::vector<double> scales);

  static constexpr int64_t kStateFormat = 2;

 protected:
  explicit Optimizer(std::vector<at::Tensor> params)
      : params_(std::move(params)), param_steps_(params_.size(), 0) {}
  // The per-parameter buffer `kind` of parameter `index`, zeros on first use.
  at::Tensor& buffer(const std::string& kind, size_t index);
  double lr_scale(size_t index) const {
    return index < lr_scales_.size() ? lr_scales_[index] : 1.0;
  }

  std::vector<at::Tensor> params_;
  int64_t steps_ = 0;                 // calls of step()
  std::vector<int64_t> param_steps_;  // updates of each parameter (torch.optim's state['step'])

 private:
  std::vector<double> lr_scales_;
  std::map<std::string, std::vector<at::Tensor>> buffers_;
};

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};
struct SgdOptions {
  double momentum = 0.0, weight_decay = 0.0;
};

std::unique_ptr<Optimizer> make_adamw(std::vector<at::Tensor> params, AdamWOptions options);
std::unique_ptr<Optimizer> make_sgd(std::vector<at::Tensor> params, SgdOptions options);

// The global L2 norm of all gradients; when max_norm > 0 and the norm exceeds it, scales the
// gradients down to max_norm (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
// MoE-PEFT's LoRA+ grouping (trainer.py _optimizer_grouped_parameters): a parameter whose name
// contains "lora_B" or that is 1-D (DoRA magnitudes) gets `ratio`, every other one 1.
std::vector<double> loraplus_lr_scales(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                       double ratio);

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace mixlora::train
