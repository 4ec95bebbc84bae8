#include "mixlora/bench/device_stats.h"

#include "mixlora/common/build_info.h"
#include "mixlora/common/torch_compat.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>

#if MIXLORA_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace mixlora::bench {

namespace {

// A "VmHWM:" / "VmRSS:" line of /proc/self/status in MiB, or -1 when unreadable.
double proc_status_mb(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;  // kB
  }
  return -1.0;
}

}  // namespace

void reset_peak_memory(c10::Device device) {
  if (device.is_cuda()) {
#if MIXLORA_WITH_CUDA
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
    return;
  }
  // "5" resets the peak RSS to the current RSS (Linux >= 4.0).
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

double peak_memory_mb(c10::Device device) {
  if (device.is_cuda()) {
#if MIXLORA_WITH_CUDA
    const auto stats =
        c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    const auto all = static_cast<size_t>(MIXLORA_ALLOCATOR_STAT_TYPE::AGGREGATE);
    return static_cast<double>(stats.allocated_bytes[all].peak) / (1024.0 * 1024.0);
#else
    return -1.0;
#endif
  }
  const double hwm = proc_status_mb("VmHWM:");
  if (hwm >= 0.0) return hwm;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // kB on Linux
}

double current_memory_mb(c10::Device device) {
  if (device.is_cuda()) {
#if MIXLORA_WITH_CUDA
    const auto stats =
        c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    const auto all = static_cast<size_t>(MIXLORA_ALLOCATOR_STAT_TYPE::AGGREGATE);
    return static_cast<double>(stats.allocated_bytes[all].current) / (1024.0 * 1024.0);
#else
    return -1.0;
#endif
  }
  return proc_status_mb("VmRSS:");
}

void synchronize(c10::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

double matmul_peak_gflops(c10::Device device, c10::ScalarType dtype, int64_t n, double seconds) {
  const auto options = at::TensorOptions(dtype).device(device);
  auto a = at::randn({n, n}, options.dtype(at::kFloat)).to(dtype);
  auto b = at::randn({n, n}, options.dtype(at::kFloat)).to(dtype);
  auto c = at::mm(a, b);  // warm-up: thread pool, kernels
  synchronize(device);
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  double best = 0.0;
  int reps = 0;
  while (reps < 3 || std::chrono::duration<double>(clock::now() - start).count() < seconds) {
    const auto t0 = clock::now();
    at::mm_out(c, a, b);
    synchronize(device);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, 2.0 * static_cast<double>(n) * n * n / s / 1e9);
    ++reps;
  }
  return best;
}

}  // namespace mixlora::bench
