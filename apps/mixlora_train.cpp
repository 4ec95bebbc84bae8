// mixlora-train: trains every adapter of a MoE-PEFT style config over one pass of the frozen
// base model per batch (SPEC sections 2, 4, 6, 7). The whole job: config -> model -> data ->
// training loop -> adapters on disk. With --pretrain, the same config trains every weight of the
// base model instead (train/pretrain.h, docs/pretrain.md).
#include "mixlora/cli/app.h"
#include "mixlora/common/build_info.h"
#include "mixlora/common/device.h"
#include "mixlora/common/error.h"
#include "mixlora/config/train_config.h"
#include "mixlora/train/distributed.h"
#include "mixlora/train/pretrain_job.h"
#include "mixlora/train/train_job.h"

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Train MixLoRA / LoRA adapters on a LLaMA-family base model.", "mixlora-train"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  std::string config_path, base_model, output_dir;
  std::vector<std::string> overrides, init_adapters;
  mixlora::train::TrainerOptions options;
  bool skip_bad_rows = false, naive_moe = false;
  mixlora::train::PretrainJob pretrain;
  bool pretrain_mode = false;
  mixlora::train::RankFlags rank_flags;
  std::string dist_backend = "auto";
  double dist_timeout = 300;
  app.add_option("--config", config_path, "training config (MoE-PEFT JSON)")->required();
  app.add_option("--base-model", base_model, "Hugging Face model directory (overrides base_model)");
  app.add_option("--output-dir", output_dir, "where adapters go (overrides output_dir)");
  app.add_option("--set", overrides, "override a config value: lora[0].lr=1e-4 (repeatable)");
  app.add_option("--init-adapter", init_adapters,
                 "start from this adapter's weights: DIR (one adapter in the config) or NAME=DIR "
                 "(repeatable)");
  app.add_flag("--resume", options.resume, "continue from the newest complete checkpoints");
  app.add_flag("--overwrite", options.overwrite,
               "replace finished or unfinished runs in the output directory");
  // adapter_model.bin is written by default: the MixLoRA plugin and MoE-PEFT read only that file.
  bool no_bin = false, export_bin = false, no_report = false;
  app.add_flag("--no-bin", no_bin,
               "do not write adapter_model.bin beside adapter_model.safetensors");
  app.add_flag("--export-bin", export_bin,
               "write adapter_model.bin (the default; kept for old scripts)");
  app.add_flag("--no-report", no_report,
               "do not write OUTPUT_DIR/report.html at the end (mixlora-report)");
  app.add_flag("--skip-bad-rows", skip_bad_rows,
               "skip and count malformed data rows instead of failing");
  app.add_flag("--naive-moe", naive_moe,
               "use the naive per-expert MixLoRA FFN (reference, slower)");
  app.add_flag("--pretrain", pretrain_mode,
               "train every base-model weight with lora[0]'s optimiser and data; writes a model to "
               "--output-dir");
  app.add_option("--init-model", pretrain.init_model,
                 "with --pretrain: start from random weights of this shape (config.json keys)");
  app.add_option("--tokenizer", pretrain.tokenizer,
                 "with --pretrain: tokenizer directory or tokenizer.model file");
  // Data-parallel ranks; torchrun's or Slurm's variables give them too (flags win).
  app.add_option("--rank", rank_flags.rank,
                 "this process's rank (default: RANK or SLURM_PROCID, else 0)");
  app.add_option("--world-size", rank_flags.world_size,
                 "number of ranks (default: WORLD_SIZE or SLURM_NTASKS, else 1)");
  app.add_option("--local-rank", rank_flags.local_rank,
                 "rank on this node, picks cuda:N (default: LOCAL_RANK or SLURM_LOCALID)");
  app.add_option("--master-addr", rank_flags.master_addr,
                 "rank 0's host (default: MASTER_ADDR, the first Slurm node, or 127.0.0.1)");
  app.add_option("--master-port", rank_flags.master_port,
                 "rank 0's rendezvous port (default: MASTER_PORT or 29500)");
  app.add_option("--dist-backend", dist_backend,
                 "auto | gloo | nccl (auto: nccl on CUDA when built with it)")
      ->capture_default_str();
  app.add_option("--dist-timeout", dist_timeout,
                 "seconds a rank waits for the others (rendezvous, each collective)")
      ->capture_default_str();

  return mixlora::cli::run_main(app, argc, argv, [&] {
    if (no_bin && export_bin)
      mixlora::fail_input("--no-bin and --export-bin contradict each other; give one");
    options.export_bin = !no_bin;
    auto config = mixlora::config::load_train_config(config_path, overrides);
    if (!base_model.empty()) config.base_model = base_model;
    mixlora::config::apply_init_adapters(config, init_adapters);
    if (!output_dir.empty()) config.output_dir = output_dir;
    if (app.count("--seed")) config.seed = common.seed;
    if (!app.count("--dtype")) common.dtype = config.dtype;
    if (!pretrain_mode && (app.count("--init-model") || app.count("--tokenizer"))) {
      mixlora::fail_input("--init-model and --tokenizer need --pretrain");
    }
    const auto ranks = mixlora::train::discover_ranks(rank_flags);
    if (pretrain_mode) {
      if (ranks.world_size > 1)
        mixlora::fail_input("--pretrain runs as one process (world size {} here)",
                            ranks.world_size);
      if (options.resume) mixlora::fail_input("--pretrain has no checkpoints to --resume from");
      const auto runtime = mixlora::cli::apply_common_options(common);
      pretrain.overwrite = options.overwrite;
      pretrain.skip_bad_rows = skip_bad_rows;
      pretrain.dtype = runtime.dtype;
      pretrain.device = runtime.device;
      const auto s = mixlora::train::run_pretrain_job(config, config_path, pretrain);
      std::cout << fmt::format(
          "pretrain: {} steps, {} tokens, {:.0f} s, loss {:.4f} -> {:.4f}, saved in {}\n", s.steps,
          s.tokens, s.seconds, s.first_loss, s.last_loss, config.output_dir);
      return 0;
    }
    mixlora::config::require_training_inputs(config, config_path);
    if (options.resume && options.overwrite)
      mixlora::fail_input("--resume and --overwrite exclude each other");
    const auto runtime = mixlora::cli::apply_common_options(common);
    options.base_model_name = config.base_model;
    options.write_report = !no_report;
    options.ffn_path = naive_moe ? mixlora::moe::FfnPath::naive : mixlora::moe::FfnPath::efficient;
    mixlora::train::TrainJob job{options,       skip_bad_rows, runtime.dtype, runtime.device,
                                 common.device, ranks,         dist_backend,  dist_timeout};
    const auto summaries = mixlora::train::run_train_job(config, config_path, job);
    if (ranks.rank != 0) return 0;
    for (const auto& s : summaries) {
      std::cout << fmt::format("{}: {} steps, loss {:.4f} -> {:.4f}, saved in {}\n", s.name,
                               s.steps, s.first_loss, s.last_loss, s.output_dir);
    }
    return 0;
  });
}
