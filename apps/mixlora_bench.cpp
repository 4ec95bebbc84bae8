// mixlora-bench: training-step speed and memory of LoRA and MixLoRA variants on a random model
// of a preset shape or on a given base model (SPEC section 9).
#include "mixlora/bench/presets.h"
#include "mixlora/bench/report.h"
#include "mixlora/bench/runner.h"
#include "mixlora/cli/app.h"
#include "mixlora/common/error.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/model/base_model.h"

#include <nlohmann/json.hpp>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Time LoRA / MixLoRA training steps (forward, backward, optimizer).",
               "mixlora-bench"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  mixlora::bench::BenchOptions options;
  std::string preset = "small", base_model, json_path;
  bool smoke = false;
  app.add_option(
         "--preset", preset,
         "model shape built at random: tiny | small | small-128k | tinyllama-1.1b | llama2-7b")
      ->capture_default_str();
  app.add_option("--base-model", base_model, "Hugging Face model directory (instead of --preset)");
  app.add_option("--seq-len", options.seq_len, "tokens per row")->capture_default_str();
  app.add_option("--micro-batch", options.micro_batch, "rows per adapter per step")
      ->capture_default_str();
  app.add_option("--rank", options.r, "LoRA rank r (experts too)")->capture_default_str();
  app.add_option("--alpha", options.alpha, "LoRA alpha")->capture_default_str();
  app.add_option("--experts", options.num_experts, "MixLoRA experts")->capture_default_str();
  app.add_option("--top-k", options.top_k, "experts per token (mixlora)")->capture_default_str();
  app.add_option("--warmup", options.warmup, "untimed steps first")->capture_default_str();
  app.add_option("--steps", options.steps,
                 "timed rounds, one step of every run each, interleaved (medians reported)")
      ->capture_default_str();
  app.add_option("--baseline", options.baseline,
                 "run the speedup column is relative to (default: the first run)");
  app.add_option("--runs", options.runs,
                 "comma-separated subset of: lora, mixlora, mixlora-naive, "
                 "mixlora-dynamic, mixlora-switch, fused-2, sequential-2")
      ->delimiter(',');
  app.add_flag("--gradient-checkpointing", options.gradient_checkpointing,
               "recompute each layer in backward");
  app.add_flag(
      "--full-lm-loss", options.full_lm_loss,
      "LM loss over full [tokens, vocab] logits, not in chunks (to measure what chunking saves)");
  app.add_flag("--router-telemetry", options.router_telemetry,
               "gather and read router telemetry every step, as training with log_every 1 does "
               "(docs/telemetry.md)");
  app.add_option(
      "--profile", options.profile_prefix,
      "record one extra step per run with LibTorch's profiler into PREFIX<run>.trace.json");
  app.add_option("--json", json_path, "also write the results as JSON to this file");
  app.add_flag("--smoke", smoke, "a few-second check: tiny preset, seq 32, 1 warm-up + 2 steps");

  return mixlora::cli::run_main(app, argc, argv, [&] {
    const auto runtime = mixlora::cli::apply_common_options(common);
    if (smoke) {
      preset = "tiny";
      options.seq_len = std::min<int64_t>(options.seq_len, 32);
      options.warmup = 1;
      options.steps = 2;
      options.matmul_seconds = 0.05;
      options.matmul_size = 256;
    }
    if (runtime.device.is_cuda())
      options.matmul_size = std::max<int64_t>(options.matmul_size, 8192);
    options.seed = common.seed;
    mixlora::model::BaseModel model;
    if (!base_model.empty()) {
      model = mixlora::model::load_base_model(base_model, runtime.dtype, runtime.device);
      options.preset = base_model;
    } else {
      options.preset = preset;
      model = mixlora::model::random_base_model(mixlora::bench::preset_config(preset),
                                                runtime.dtype, runtime.device, common.seed);
    }
    const auto report = mixlora::bench::run_bench(model, options);
    std::cout << mixlora::bench::report_table(report);
    if (!json_path.empty()) {
      mixlora::io::write_file_atomically(json_path,
                                         mixlora::bench::report_json(report).dump(2) + "\n");
    }
    return 0;
  });
}
