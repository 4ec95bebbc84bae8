// One GPU per data-parallel rank: which device a rank trains on (common/device.h). Runs on any
// build: a c10::Device is only a name until a tensor lands on it.
#include "mixlora/common/device.h"

#include "catch.h"

using mixlora::rank_device;

TEST_CASE("an unindexed cuda device means cuda:<local rank> modulo the visible GPUs",
          "[distributed][device]") {
  const c10::Device cuda0(c10::kCUDA, 0), cpu(c10::kCPU);
  // parse_device turns "cuda" and "auto" into cuda:0; the rank still gets its own GPU.
  CHECK(rank_device("cuda", cuda0, 3, 4) == c10::Device(c10::kCUDA, 3));
  CHECK(rank_device("auto", cuda0, 1, 8) == c10::Device(c10::kCUDA, 1));
  CHECK(rank_device("", cuda0, 2, 4) == c10::Device(c10::kCUDA, 2));
  // More ranks than GPUs on the node (or a launcher that binds one GPU per task): wrap around.
  CHECK(rank_device("cuda", cuda0, 5, 4) == c10::Device(c10::kCUDA, 1));
  CHECK(rank_device("cuda", cuda0, 3, 1) == c10::Device(c10::kCUDA, 0));
  CHECK(rank_device("cuda", cuda0, 3, 0) == c10::Device(c10::kCUDA, 0));
  // An explicit index and the CPU stay as given.
  CHECK(rank_device("cuda:0", cuda0, 3, 4) == cuda0);
  CHECK(rank_device("cuda:2", c10::Device(c10::kCUDA, 2), 0, 4) == c10::Device(c10::kCUDA, 2));
  CHECK(rank_device("cpu", cpu, 3, 4) == cpu);
  CHECK(rank_device("auto", cpu, 3, 0) == cpu);
}
