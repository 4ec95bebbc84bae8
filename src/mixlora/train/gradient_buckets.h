// One adapter's gradients in fixed buckets for the data-parallel all-reduce, sent as soon as
// they are final (SPEC section 10: "overlapped with backward where LibTorch allows").
//
// Buckets hold the parameters in reverse order (the backward pass produces the last layers'
// gradients first). Before the backward pass of the micro-batch that completes the step on
// this rank, arm() makes every parameter's gradient accumulator report when it has written
// the gradient (an autograd post hook, as torch's DistributedDataParallel does); a bucket whose
// parameters are all final starts its all-reduce at once, while the backward pass goes on.
// send_rest() starts the buckets not sent yet (a parameter without a gradient sends zeros),
// wait() collects the sums into the gradients. Buckets always start in index order, on every
// rank, whether during backward or after it: the ranks' collectives match up.
#pragma once

#include "mixlora/train/distributed.h"

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace torch::autograd {
struct Node;
}

namespace mixlora::train {

class GradientBuckets {
 public:
  // Bucket size: MIXLORA_BUCKET_MB in the environment, else this default.
  static constexpr double kDefaultBucketMb = 4.0;

  GradientBuckets(Communicator& comm, const std::vector<at::Tensor>& parameters);
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // The next backward pass writes this rank's last gradients of the step.
  void arm();
  // Starts every bucket not started yet (and disarms).
  void send_rest();
  // Waits for all buckets and writes the sums into the gradients (a parameter that had none
  // on this rank gets one). Returns, per parameter, 1 if this rank had a gradient, else 0.
  std::vector<float> wait();

  size_t buckets() const { return buckets_.size(); }
  // Over the whole run: buckets started during a backward pass, and in all.
  int64_t sent_during_backward() const { return sent_during_backward_; }
  int64_t sent() const { return sent_total_; }

 private:
  void on_gradient(size_t parameter);  // from the autograd engine
  void send_ready_locked(bool all);

  struct Bucket {
    std::vector<size_t> parameters;
    at::Tensor flat;
    std::function<void()> wait;
    std::vector<float> had;  // per parameter of the bucket
  };
  Communicator& comm_;
  std::vector<at::Tensor> parameters_;
  std::vector<Bucket> buckets_;
  std::vector<bool> final_;  // parameter's gradient written in the armed backward
  std::vector<std::shared_ptr<torch::autograd::Node>>
      accumulators_;  // kept alive: they carry the hooks
  std::mutex mutex_;
  bool armed_ = false;
  size_t next_ = 0;  // next bucket to start
  int64_t sent_during_backward_ = 0, sent_total_ = 0;
};

}  // namespace mixlora::train
