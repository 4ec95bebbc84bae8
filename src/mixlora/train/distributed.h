// The collectives data-parallel training needs, over LibTorch's c10d (SPEC section 10): a
// TCPStore rendezvous (rank 0 serves it, or torchrun's agent does), then ProcessGroupGloo for
// CPU tensors or ProcessGroupNCCL for CUDA tensors when this LibTorch was built with NCCL.
// Every collective is bounded by the timeout: a lost or stuck peer becomes a RuntimeError on
// every other rank, never a hang.
#pragma once

#include "mixlora/train/rank_discovery.h"

#include <ATen/ATen.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mixlora::train {

struct CommunicatorOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};  // rendezvous and each collective
  std::string backend =
      "auto";  // auto (nccl for a CUDA device when built with it, else gloo) | gloo | nccl
  c10::Device device{c10::kCPU};  // where the training tensors live
};

class Communicator {
 public:
  // Joins the world of `ranks` (blocks until every rank has arrived or the timeout passed).
  static std::unique_ptr<Communicator> connect(const RankInfo& ranks,
                                               const CommunicatorOptions& options);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const std::string& backend() const { return backend_; }

  // Sums each tensor over the ranks, in place. Tensors of one dtype travel flattened together in
  // buckets of at most kBucketBytes: few large messages instead of one per parameter.
  void all_reduce_sum(const std::vector<at::Tensor>& tensors);
  // Starts summing one flat tensor (on device()) in place over the ranks and returns at once;
  // the returned call waits for the result (and fails as all_reduce_sum does). Collectives run
  // in the order they were started, so every rank must start the same ones in the same order.
  std::function<void()> start_all_reduce_sum(const at::Tensor& flat);
  // Where the tensors of collectives live: the CPU for Gloo, the GPU for NCCL.
  c10::Device device() const;
  // Copies rank `root`'s tensors into every rank's, in place (same bucketing).
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  void barrier();

  // Leaves this rank's error where the other ranks look when their next collective fails, so
  // that they can say why instead of only "peer lost". Never throws.
  void report_failure(const std::string& message) noexcept;

  static constexpr int64_t kBucketBytes = 32 << 20;

 private:
  struct Impl;
  Communicator(std::unique_ptr<Impl> impl, int rank, int world_size, std::string backend);
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_size_ = 1;
  std::string backend_;
};

}  // namespace mixlora::train
