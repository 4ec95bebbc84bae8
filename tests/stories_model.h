// The real stories260K model, loaded once per test process (fp32, on the CPU) and shared by the
// test cases that run it.
#pragma once

#include "mixlora/model/base_model.h"
#include "test_helpers.h"

namespace mixlora::test {

inline const model::BaseModel& stories() {
  static const auto model = model::load_base_model(stories_dir(), at::kFloat, c10::Device(c10::kCPU));
  return model;
}

}  // namespace mixlora::test
