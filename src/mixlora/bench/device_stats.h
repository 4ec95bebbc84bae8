// What the benchmark measures about the device itself: peak memory of a run and the speed of
// a large matmul (the denominator of MFU).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace mixlora::bench {

// Starts a new peak-memory window: on CPU the process's peak RSS (Linux clear_refs; where that
// is refused the peak stays the process-lifetime one), on CUDA the caching allocator's peak.
void reset_peak_memory(c10::Device device);
// Peak of the current window in MiB.
double peak_memory_mb(c10::Device device);

// Memory in use now in MiB: RSS on CPU, allocated bytes on CUDA.
double current_memory_mb(c10::Device device);

// Waits for queued device work (timing boundaries); nothing to do on CPU.
void synchronize(c10::Device device);

// GFLOP/s of the best of several n x n x n matmuls in `dtype`, run for about `seconds`.
double matmul_peak_gflops(c10::Device device, c10::ScalarType dtype, int64_t n, double seconds);

}  // namespace mixlora::bench
