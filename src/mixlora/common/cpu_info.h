// What the CPU is, read once from /proc/cpuinfo: its model name for every reported figure
// (CPUs differ between machines of one cluster), and the instruction-set flags that pick kernels.
#pragma once

#include <string>
#include <vector>

namespace mixlora::common {

struct CpuInfo {
  std::string model;               // "model name", e.g. "AMD EPYC"; "unknown" where unreadable
  std::vector<std::string> flags;  // every flag the kernel lists, in its order
  bool has(const std::string& flag) const;
  // The vector / matrix extensions that decide matmul speed here (avx2, avx512*, amx*, fma, f16c).
  std::vector<std::string> simd_flags() const;
};

// Parsed once per process; empty flags where /proc/cpuinfo is missing (non-Linux).
const CpuInfo& cpu_info();

}  // namespace mixlora::common
