#include "mixlora/train/data_parallel.h"

#include "mixlora/common/error.h"
#include "mixlora/train/adapter_run.h"

#include <cmath>

namespace mixlora::train {

DataParallel::DataParallel(Communicator* comm, size_t adapters) : comm_(comm) {
  buckets_.reserve(adapters);
}

bool DataParallel::owns_next_batch() {
  const int64_t t = batches_++;
  return !comm_ || static_cast<int>(t % comm_->world_size()) == comm_->rank();
}

void DataParallel::synchronize_start(const std::vector<std::unique_ptr<AdapterRun>>& runs) {
  if (!comm_) return;
  // Progress first: weights of different steps must not be mixed.
  std::vector<int64_t> mine;
  for (const auto& run : runs) {
    mine.push_back(run->step());
    mine.push_back(run->epoch());
  }
  auto rank0 = at::tensor(mine, at::kLong);
  comm_->broadcast({rank0}, 0);
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto step = rank0[static_cast<int64_t>(2 * i)].item<int64_t>();
    if (step != runs[i]->step()) {
      fail_runtime(
          "rank {}: adapter '{}' starts at step {} but rank 0 at step {}: with --resume every rank "
          "must "
          "read the same output_dir (put it on a shared file system)",
          comm_->rank(), runs[i]->name(), runs[i]->step(), step);
    }
  }
  std::vector<at::Tensor> weights;
  for (const auto& run : runs) {
    for (const auto& p : run->parameters()) weights.push_back(p);
    buckets_.push_back(std::make_unique<GradientBuckets>(*comm_, run->parameters()));
  }
  at::NoGradGuard no_grad;
  comm_->broadcast(weights, 0);
  for (const auto& run : runs) {
    const int64_t micro_batches = run->accumulation();
    if (comm_->rank() == 0 && micro_batches % comm_->world_size() != 0) {
      spdlog::warn(
          "adapter '{}': {} micro-batches per step do not divide among {} ranks, so ranks idle in "
          "turn; "
          "make batch_size / micro_batch_size a multiple of the world size",
          run->name(), micro_batches, comm_->world_size());
    }
  }
}

void DataParallel::before_backward(const std::vector<std::unique_ptr<AdapterRun>>& runs,
                                   const std::vector<size_t>& active) {
  if (!comm_) return;
  for (size_t k : active) {
    if (!runs[k]->next_micro_batch_ends_step()) continue;
    buckets_[k]->arm();
    return;
  }
}

LossSums DataParallel::reduce_step(AdapterRun& run, size_t adapter, const LossSums& losses) {
  if (!comm_) return losses;
  const auto& params = run.parameters();
  if (params.empty()) return losses;
  const auto device = params.front().device();
  // The gradient sums (buckets already sent during backward are only waited for); then which
  // parameters had a gradient on any rank, and the held losses, in one more collective.
  auto& buckets = *buckets_[adapter];
  buckets.send_rest();
  const auto has_grad = buckets.wait();
  auto flags = at::tensor(has_grad).to(device);
  auto stats = at::tensor(std::vector<double>{losses.task, losses.aux, losses.z,
                                              static_cast<double>(losses.tokens),
                                              static_cast<double>(losses.micro_batches)})
                   .to(device);
  comm_->all_reduce_sum({flags, stats});

  const auto flags_cpu = flags.cpu();
  for (size_t i = 0; i < params.size(); ++i) {
    if (flags_cpu[static_cast<int64_t>(i)].item<float>() == 0.0f) {
      at::Tensor p = params[i];
      p.mutable_grad() = at::Tensor();
    }
  }
  const auto s = stats.cpu();
  LossSums all;
  all.task = s[0].item<double>();
  all.aux = s[1].item<double>();
  all.z = s[2].item<double>();
  all.tokens = static_cast<int64_t>(s[3].item<double>());
  all.micro_batches = static_cast<int64_t>(s[4].item<double>());
  return all;
}

void DataParallel::check_in_sync(const AdapterRun& run) {
  if (!comm_) return;
  std::vector<at::Tensor> rank0;
  for (const auto& p : run.parameters()) rank0.push_back(p.detach().clone());
  comm_->broadcast(rank0, 0);
  for (size_t i = 0; i < rank0.size(); ++i) {
    if (!at::equal(rank0[i], run.parameters()[i].detach())) {
      const double diff = (rank0[i] - run.parameters()[i].detach()).abs().max().item<double>();
      fail_runtime(
          "rank {}: adapter '{}' ended with weights that differ from rank 0's (parameter {}, max "
          "difference {:.3g}): the ranks diverged",
          comm_->rank(), run.name(), i, diff);
    }
  }
}

eval::EvalShard DataParallel::eval_shard() const {
  if (!comm_) return {};
  return {comm_->rank(), comm_->world_size()};
}

void DataParallel::sum_over_ranks(std::vector<std::vector<double>>& rows) {
  std::vector<at::Tensor> sums;
  for (const auto& row : rows) sums.push_back(at::tensor(row, at::kDouble));
  comm_->all_reduce_sum(sums);  // host tensors: the communicator moves its buckets to its device
  for (size_t i = 0; i < rows.size(); ++i) {
    const double* sum = sums[i].data_ptr<double>();
    rows[i].assign(sum, sum + sums[i].numel());
  }
}

void DataParallel::sum_eval_totals(std::vector<eval::EvalTotals>& totals) {
  if (!comm_) return;
  std::vector<std::vector<double>> rows;
  for (const auto& t : totals) rows.push_back(t.flatten());
  sum_over_ranks(rows);
  for (size_t i = 0; i < totals.size(); ++i) totals[i].assign(rows[i]);
}

void DataParallel::barrier() {
  if (comm_) comm_->barrier();
}

void DataParallel::log_overlap() {
  if (!comm_) return;
  std::vector<std::vector<double>> counts = {{0.0, 0.0}};  // buckets sent early, in all
  for (const auto& b : buckets_) {
    counts[0][0] += static_cast<double>(b->sent_during_backward());
    counts[0][1] += static_cast<double>(b->sent());
  }
  sum_over_ranks(counts);
  spdlog::info(
      "data-parallel: {} of {} gradient buckets (all ranks) were sent during the backward pass",
      std::llround(counts[0][0]), std::llround(counts[0][1]));
}

}  // namespace mixlora::train
