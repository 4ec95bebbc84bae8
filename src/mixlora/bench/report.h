// mixlora-bench output: a table for people, JSON for tools (SPEC section 9).
#pragma once

#include "mixlora/bench/runner.h"

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace mixlora::bench {

std::string report_table(const BenchReport& report);

// {device, cpu_model, cpu_flags, baseline, allocator, rounds, threads, blas_threads, blas, dtype,
// preset, seq_len, micro_batch, gradient_checkpointing,
//  matmul_peak_gflops, matmul_peak_gflops_fp32, matmul_peak_gflops_dtype, native_matmul,
//  runs: [{name, tokens_per_s, ms_per_step, cpu_ms_per_step, peak_mem_mb, static_mem_mb,
//  trainable_params, flops_per_token, experts_per_token, mfu, loss,
//          step_seconds, speedup, speedup_min, speedup_max}]}
nlohmann::json report_json(const BenchReport& report);

}  // namespace mixlora::bench
