#include "mixlora/train/step_guard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace mixlora::train {

void StepGuard::add_loss(size_t adapter, double loss) {
  if (!std::isfinite(loss) && !loss_poisoned(adapter)) poisoned_.push_back(adapter);
}

bool StepGuard::loss_poisoned(size_t adapter) const {
  return std::find(poisoned_.begin(), poisoned_.end(), adapter) != poisoned_.end();
}

bool StepGuard::finish_step(size_t adapter, const std::string& name, int64_t step, bool skipped) {
  poisoned_.erase(std::remove(poisoned_.begin(), poisoned_.end(), adapter), poisoned_.end());
  auto& count = in_row_.at(adapter);
  if (!skipped) {
    count = 0;
    return false;
  }
  ++count;
  spdlog::warn("adapter '{}': step {}: non-finite loss or gradients, step skipped ({} in a row{})",
               name, step, count, limit_ > 0 ? fmt::format(", stopping at {}", limit_) : "");
  return limit_ > 0 && count >= limit_;
}

}  // namespace mixlora::train
