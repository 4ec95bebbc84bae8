// Non-finite steps: an optimizer step whose loss or gradients are NaN / Inf is skipped (no
// update; the gradients are cleared) and logged with the adapter and step. After
// `max_nonfinite_steps` such steps in a row for one adapter, the run stops: the adapter's
// weights are still the last finite ones, so the checkpoint written then is the last good state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mixlora::train {

class StepGuard {
 public:
  // `limit` 0 = never stop (skip forever).
  StepGuard(size_t adapters, int64_t limit) : in_row_(adapters, 0), limit_(limit) {}

  // Called once per micro-batch with its loss: a non-finite one poisons the step it belongs to.
  void add_loss(size_t adapter, double loss);
  // True when the coming optimizer step of `adapter` must be skipped because of its losses.
  bool loss_poisoned(size_t adapter) const;
  // Called after each optimizer step; `skipped` says it was not applied (non-finite loss or
  // gradients). Logs a skip, and returns true when the adapter reached the limit in a row.
  bool finish_step(size_t adapter, const std::string& name, int64_t step, bool skipped);

  int64_t in_row(size_t adapter) const { return in_row_.at(adapter); }

 private:
  std::vector<int64_t> in_row_;
  std::vector<size_t> poisoned_;
  int64_t limit_;
};

}  // namespace mixlora::train
