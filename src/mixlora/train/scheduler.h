// Learning-rate schedules by name (transformers' get_scheduler semantics): the factor that
// multiplies the base lr at optimizer step `step` (0-based) of `total_steps`.
#pragma once

#include "mixlora/config/train_config.h"

#include <cstdint>

namespace mixlora::train {

struct Schedule {
  config::SchedulerType type = config::SchedulerType::constant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
};

// warmup_steps when > 0, else ceil(warmup_ratio * total_steps) (MoE-PEFT honours only the
// ratio; we honour both, the explicit count first).
int64_t warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total_steps);

double lr_factor(const Schedule& schedule, int64_t step);

}  // namespace mixlora::train
