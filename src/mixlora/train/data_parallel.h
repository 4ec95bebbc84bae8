// Data parallelism in the trainer's loop (SPEC section 10): which rank computes which fused
// batch, and what the ranks agree on around each optimizer step.
//
// Every rank walks the same sequence of fused batches (the data order depends on the seed and
// the config alone) and advances every adapter's cursor, but fused batch t is computed --
// forward and backward -- by rank t mod world_size alone. Its micro-batches, their partners and
// their losses are then exactly the single process's (token mean over the micro-batch's rows,
// router losses over its tokens, scaled by 1/accumulation), so the SUM of the ranks' gradients
// is the single-process accumulated gradient: no division by the world size, no reweighting of
// token means. With two micro-batches per step on two ranks the sum is even bit for bit the
// single process's; otherwise it is added in another order (fp32 rounding). Splitting the rows of a
// micro-batch instead would change the router's load-balancing loss (a product of means over
// the micro-batch's tokens) and the fused batches. Hence: batch_size / micro_batch_size should
// be a multiple of the world size, or ranks idle in turn.
#pragma once

#include "mixlora/eval/evaluator.h"
#include "mixlora/train/distributed.h"
#include "mixlora/train/gradient_buckets.h"
#include "mixlora/train/step.h"

#include <memory>
#include <vector>

namespace mixlora::train {

class AdapterRun;

class DataParallel {
 public:
  // `comm` null: a single process; every method is then a pass-through or a no-op.
  DataParallel(Communicator* comm, size_t adapters);

  bool enabled() const { return comm_ != nullptr; }
  // This rank writes adapters, checkpoints and metrics: rank 0, or the single process.
  bool writes() const { return comm_ == nullptr || comm_->rank() == 0; }
  // Whether this rank computes the next fused batch (call once per fused batch).
  bool owns_next_batch();

  // Before the first step: rank 0's adapter weights go to every rank, and every rank must have
  // resumed at the same steps (checkpoints are read from a shared output_dir).
  void synchronize_start(const std::vector<std::unique_ptr<AdapterRun>>& runs);

  // Before the backward pass of a fused batch this rank computes: the first of `active`'s
  // adapters (in order) whose step this micro-batch completes sends its gradient buckets while
  // the backward pass runs (gradient_buckets.h). Only that one: every rank starts the step-end
  // collectives in the trainer's adapter order, and a later adapter's buckets cannot start
  // before the earlier adapter's loss sums, which are known only after the backward pass.
  void before_backward(const std::vector<std::unique_ptr<AdapterRun>>& runs,
                       const std::vector<size_t>& active);

  // Before `run` steps its optimizer: sums its gradients over the ranks and returns the sum of
  // every rank's `losses` (this rank's micro-batches of the step; a single process gets its own
  // back). A parameter no rank produced a gradient for keeps none (the optimizer skips it, as
  // alone).
  LossSums reduce_step(AdapterRun& run, size_t adapter, const LossSums& losses);

  // When an adapter finished: its weights on this rank must equal rank 0's bit for bit (the
  // ranks took the same steps on the same gradients); a difference is a bug, reported as such.
  void check_in_sync(const AdapterRun& run);

  // Held-out scoring during training is sharded the same way: rank r scores eval batches
  // r, r + N, ... (eval::EvalShard), then the ranks' totals are summed, so every rank holds the
  // one-process totals.
  eval::EvalShard eval_shard() const;
  void sum_eval_totals(std::vector<eval::EvalTotals>& totals);

  // Around files rank 0 writes: the others wait, and learn if writing failed.
  void barrier();

  // At the end (every rank): how many gradient buckets went out during backward passes.
  void log_overlap();

 private:
  // Each row summed element-wise over the ranks, in place (one collective).
  void sum_over_ranks(std::vector<std::vector<double>>& rows);

  Communicator* comm_;
  std::vector<std::unique_ptr<GradientBuckets>> buckets_;  // per adapter, made in synchronize_start
  int64_t batches_ = 0;                                    // fused batches walked so far
};

}  // namespace mixlora::train
