#include "mixlora/train/gradient_buckets.h"

#include "mixlora/common/error.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cstdlib>

namespace mixlora::train {

namespace {

int64_t bucket_bytes() {
  double mb = GradientBuckets::kDefaultBucketMb;
  if (const char* env = std::getenv("MIXLORA_BUCKET_MB"); env && *env) {
    char* end = nullptr;
    mb = std::strtod(env, &end);
    if (*end != '\0' || !(mb > 0.0))
      fail_input("MIXLORA_BUCKET_MB: expected a positive number of MiB, got '{}'", env);
  }
  return std::max<int64_t>(1, static_cast<int64_t>(mb * 1024.0 * 1024.0));
}

}  // namespace

GradientBuckets::GradientBuckets(Communicator& comm, const std::vector<at::Tensor>& parameters)
    : comm_(comm), parameters_(parameters), final_(parameters.size(), false) {
  const int64_t limit = bucket_bytes();
  int64_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const int64_t size = parameters_[k].numel() * parameters_[k].element_size();
    if (buckets_.empty() || (bytes > 0 && bytes + size > limit)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().parameters.push_back(k);
    bytes += size;
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    auto accumulator = torch::autograd::impl::grad_accumulator(parameters_[k]);
    if (!accumulator) fail_runtime("internal: parameter {} has no gradient accumulator", k);
    accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, k](const torch::autograd::variable_list& outputs,
                  const torch::autograd::variable_list&) {
          on_gradient(k);
          return outputs;
        }));
    accumulators_.push_back(std::move(accumulator));
  }
}

void GradientBuckets::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
}

void GradientBuckets::on_gradient(size_t parameter) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;
  final_[parameter] = true;
  send_ready_locked(/*all=*/false);
}

void GradientBuckets::send_rest() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
  send_ready_locked(/*all=*/true);
}

void GradientBuckets::send_ready_locked(bool all) {
  at::NoGradGuard no_grad;
  for (; next_ < buckets_.size(); ++next_) {
    auto& bucket = buckets_[next_];
    if (!all) {
      for (size_t k : bucket.parameters)
        if (!final_[k]) return;
    }
    std::vector<at::Tensor> parts;
    bucket.had.clear();
    for (size_t k : bucket.parameters) {
      const auto& grad = parameters_[k].grad();
      bucket.had.push_back(grad.defined() ? 1.0f : 0.0f);
      parts.push_back(grad.defined()
                          ? grad.reshape({-1})
                          : at::zeros({parameters_[k].numel()}, parameters_[k].options()));
    }
    bucket.flat = at::cat(parts).to(comm_.device());
    bucket.wait = comm_.start_all_reduce_sum(bucket.flat);
    sent_during_backward_ += all ? 0 : 1;
    ++sent_total_;
  }
}

std::vector<float> GradientBuckets::wait() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (next_ != buckets_.size())
    fail_runtime("internal: gradient buckets waited for before all were sent");
  at::NoGradGuard no_grad;
  std::vector<float> had(parameters_.size(), 0.0f);
  for (auto& bucket : buckets_) {
    bucket.wait();
    int64_t offset = 0;
    for (size_t i = 0; i < bucket.parameters.size(); ++i) {
      at::Tensor p = parameters_[bucket.parameters[i]];  // a handle: its grad is the parameter's
      const int64_t n = p.numel();
      auto sum = bucket.flat.narrow(0, offset, n).view(p.sizes()).to(p.device());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(sum);
      } else {
        p.mutable_grad() = sum.clone();
      }
      had[bucket.parameters[i]] = bucket.had[i];
      offset += n;
    }
    bucket.flat = at::Tensor();
    bucket.wait = nullptr;
  }
  next_ = 0;
  std::fill(final_.begin(), final_.end(), false);
  return had;
}

}  // namespace mixlora::train
