// mixlora-bench's measurements (SPEC section 9): full training steps (forward, backward,
// optimizer) of the real trainer code on synthetic token rows, timed after warm-up.
#pragma once

#include "mixlora/model/base_model.h"

#include <string>
#include <vector>

namespace mixlora::bench {

struct BenchOptions {
  std::string preset;  // informational: the shape the base model was built from
  int64_t seq_len = 256;
  int64_t micro_batch = 4;
  int64_t r = 16;
  double alpha = 32.0;
  double lora_dropout = 0.05;
  int64_t num_experts = 8;
  int64_t top_k = 2;
  int64_t warmup = 2;
  int64_t steps = 5;     // timed rounds: one step of every run each, interleaved; medians reported
  std::string baseline;  // run the speedups are relative to; empty = the first run
  bool gradient_checkpointing = false;
  bool router_telemetry = false;  // every step gathers and reads router telemetry (log_every = 1)
  bool full_lm_loss = false;      // unchunked LM loss: full logits (peak memory before chunking)
  std::vector<std::string> runs;  // names to run; empty = all (run_names())
  double matmul_seconds = 1.0;    // time spent measuring the matmul peak
  int64_t matmul_size = 1024;
  uint64_t seed = 42;
  // When set, one more step per run after the timed ones is recorded with LibTorch's profiler
  // into "<profile_prefix><run>.trace.json" (chrome://tracing format).
  std::string profile_prefix;
};

// lora, mixlora, mixlora-naive, mixlora-dynamic, mixlora-switch, fused-2, sequential-2.
const std::vector<std::string>& run_names();

struct RunResult {
  std::string name;
  double tokens_per_s = 0.0;
  double ms_per_step = 0.0;      // median; one step of fused-2 / sequential-2 covers both adapters
  double cpu_ms_per_step = 0.0;  // median process CPU time (all threads) per step
  double static_mem_mb = 0.0;    // in use before the first step: base model, adapters, data
  double peak_mem_mb = 0.0;      // peak RSS (CPU) or allocator peak (CUDA) during the run
  int64_t trainable_params = 0;  // all adapters of the run
  double flops_per_token = 0.0;  // useful FLOPs (flops.h)
  double experts_per_token = 0.0;  // MixLoRA: measured mean experts a token uses (0 for LoRA)
  double mfu = 0.0;                // achieved useful FLOP/s over the matmul peak
  double loss = 0.0;               // mean task loss of the timed steps (a sanity check)
  std::vector<double> seconds;     // wall seconds of each timed round's step
  // Per round, the baseline's step time over this run's; median, min and max over the rounds.
  double speedup = 1.0, speedup_min = 1.0, speedup_max = 1.0;
};

struct BenchReport {
  std::string device, dtype, preset;
  std::string cpu_model;               // /proc/cpuinfo (common/cpu_info.h)
  std::vector<std::string> cpu_flags;  // its SIMD / matrix extensions
  std::string baseline;                // the run speedups are relative to
  std::string allocator;     // the malloc the process runs on, tuned or not (common/allocator.h)
  int64_t threads = 0;       // LibTorch intra-op threads
  int64_t blas_threads = 0;  // OpenBLAS threads (common/threads.h)
  std::string blas;
  int64_t seq_len = 0, micro_batch = 0;
  bool gradient_checkpointing = false;
  bool full_lm_loss = false;
  double matmul_peak_gflops = 0.0;  // of the kernel the steps use: the MFU denominator
  double matmul_peak_gflops_fp32 = 0.0;
  double matmul_peak_gflops_dtype = 0.0;  // at::mm in the base dtype as LibTorch runs it
  bool native_matmul = true;              // false: base dtype upcast to fp32 (model/base_linear.h)
  std::vector<RunResult> runs;
};

// Sets up and warms up each selected run on `base` in turn, then times `steps` interleaved
// rounds of one step of every run. InputError for an unknown run name.
BenchReport run_bench(const model::BaseModel& base, const BenchOptions& options);

}  // namespace mixlora::bench
