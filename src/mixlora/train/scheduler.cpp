#include "mixlora/train/scheduler.h"

#include <algorithm>
#include <cmath>

namespace mixlora::train {

int64_t warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

double lr_factor(const Schedule& s, int64_t step) {
  // The original "constant" schedule has no warmup (transformers' get_constant_schedule).
  if (s.type == config::SchedulerType::constant) return 1.0;
  if (step < s.warmup_steps) {
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, s.warmup_steps));
  }
  if (s.type == config::SchedulerType::constant_with_warmup) return 1.0;
  const double progress = static_cast<double>(step - s.warmup_steps) /
                          static_cast<double>(std::max<int64_t>(1, s.total_steps - s.warmup_steps));
  if (s.type == config::SchedulerType::linear) return std::max(0.0, 1.0 - progress);
  // cosine, one half wave
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace mixlora::train
