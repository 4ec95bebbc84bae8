#include "mixlora/bench/report.h"

#include "mixlora/common/threads.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace mixlora::bench {

std::string report_table(const BenchReport& r) {
  std::string out = fmt::format(
      "device {} ({}), base {}, preset {}, seq {} x micro-batch {}{}{}; matmul peak {:.1f} "
      "GFLOP/s\n",
      r.device,
      common::describe({static_cast<int>(r.threads), static_cast<int>(r.blas_threads), r.blas}),
      r.dtype, r.preset.empty() ? "-" : r.preset, r.seq_len, r.micro_batch,
      r.gradient_checkpointing ? ", gradient checkpointing" : "",
      r.full_lm_loss ? ", full LM-loss logits" : "", r.matmul_peak_gflops);
  out += fmt::format(
      "CPU {} ({}); malloc {}; {} interleaved rounds, speedup = median of per-round ratios to {} "
      "[min, max]\n",
      r.cpu_model,
      r.cpu_flags.empty() ? "no SIMD flags read" : fmt::format("{}", fmt::join(r.cpu_flags, " ")),
      r.allocator, r.runs.empty() ? 0 : r.runs.front().seconds.size(), r.baseline);
  if (!r.native_matmul) {
    out += fmt::format("({} matmuls run in fp32 here: at::mm in {} measured {:.1f} GFLOP/s)\n",
                       r.dtype, r.dtype, r.matmul_peak_gflops_dtype);
  }
  out += fmt::format("{:<16} {:>10} {:>10} {:>11} {:>20} {:>10} {:>12} {:>7} {:>8}\n", "run",
                     "tokens/s", "ms/step", "cpu ms/step", "speedup [min, max]", "peak MiB",
                     "trainable", "MFU %", "loss");
  for (const auto& run : r.runs) {
    out += fmt::format(
        "{:<16} {:>10.1f} {:>10.1f} {:>11.1f} {:>20} {:>10.0f} {:>12} {:>7.2f} {:>8.4f}\n",
        run.name, run.tokens_per_s, run.ms_per_step, run.cpu_ms_per_step,
        fmt::format("{:.2f} [{:.2f}, {:.2f}]", run.speedup, run.speedup_min, run.speedup_max),
        run.peak_mem_mb, run.trainable_params, 100.0 * run.mfu, run.loss);
  }
  return out;
}

nlohmann::json report_json(const BenchReport& r) {
  auto runs = nlohmann::json::array();
  for (const auto& run : r.runs) {
    runs.push_back({{"name", run.name},
                    {"tokens_per_s", run.tokens_per_s},
                    {"ms_per_step", run.ms_per_step},
                    {"cpu_ms_per_step", run.cpu_ms_per_step},
                    {"peak_mem_mb", run.peak_mem_mb},
                    {"static_mem_mb", run.static_mem_mb},
                    {"trainable_params", run.trainable_params},
                    {"flops_per_token", run.flops_per_token},
                    {"experts_per_token", run.experts_per_token},
                    {"mfu", run.mfu},
                    {"loss", run.loss},
                    {"step_seconds", run.seconds},
                    {"speedup", run.speedup},
                    {"speedup_min", run.speedup_min},
                    {"speedup_max", run.speedup_max}});
  }
  return {{"device", r.device},
          {"cpu_model", r.cpu_model},
          {"cpu_flags", r.cpu_flags},
          {"baseline", r.baseline},
          {"allocator", r.allocator},
          {"rounds", r.runs.empty() ? 0 : r.runs.front().seconds.size()},
          {"threads", r.threads},
          {"blas_threads", r.blas_threads},
          {"blas", r.blas},
          {"dtype", r.dtype},
          {"preset", r.preset},
          {"seq_len", r.seq_len},
          {"micro_batch", r.micro_batch},
          {"gradient_checkpointing", r.gradient_checkpointing},
          {"lm_loss", r.full_lm_loss ? "full" : "chunked"},
          {"matmul_peak_gflops", r.matmul_peak_gflops},
          {"matmul_peak_gflops_fp32", r.matmul_peak_gflops_fp32},
          {"matmul_peak_gflops_dtype", r.matmul_peak_gflops_dtype},
          {"native_matmul", r.native_matmul},
          {"runs", runs}};
}

}  // namespace mixlora::bench
