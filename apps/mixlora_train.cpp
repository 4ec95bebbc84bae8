// mixlora-train: trains every adapter of a MoE-PEFT style config over one pass of the frozen
// base model per batch (SPEC sections 2, 4, 6, 7). The whole job: config -> model -> data ->
// training loop -> adapters on disk. With --pretrain, the same config trains every weight of the
// base model instead (train/pretrain.h, docs/pretrain.md).
#include "mixlora/cli/app.h"
#include "mixlora/common/error.h"
#include "mixlora/config/train_config.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/model/base_model.h"
#include "mixlora/train/pretrain_job.h"
#include "mixlora/train/trainer.h"

#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Train MixLoRA / LoRA adapters on a LLaMA-family base model.", "mixlora-train"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  std::string config_path, base_model, output_dir;
  std::vector<std::string> overrides;
  mixlora::train::TrainerOptions options;
  bool skip_bad_rows = false, naive_moe = false;
  mixlora::train::PretrainJob pretrain;
  bool pretrain_mode = false;
  app.add_option("--config", config_path, "training config (MoE-PEFT JSON)")->required();
  app.add_option("--base-model", base_model, "Hugging Face model directory (overrides base_model)");
  app.add_option("--output-dir", output_dir, "where adapters go (overrides output_dir)");
  app.add_option("--set", overrides, "override a config value: lora[0].lr=1e-4 (repeatable)");
  app.add_flag("--resume", options.resume, "continue from the newest complete checkpoints");
  app.add_flag("--overwrite", options.overwrite, "replace finished or unfinished runs in the output directory");
  app.add_flag("--export-bin", options.export_bin, "also write adapter_model.bin (torch.load-able)");
  app.add_flag("--skip-bad-rows", skip_bad_rows, "skip and count malformed data rows instead of failing");
  app.add_flag("--naive-moe", naive_moe, "use the naive per-expert MixLoRA FFN (reference, slower)");
  app.add_flag("--pretrain", pretrain_mode,
               "train every base-model weight with lora[0]'s optimiser and data; writes a model to --output-dir");
  app.add_option("--init-model", pretrain.init_model, "with --pretrain: start from random weights of this shape (config.json keys)");
  app.add_option("--tokenizer", pretrain.tokenizer, "with --pretrain: tokenizer directory or tokenizer.model file");

  return mixlora::cli::run_main(app, argc, argv, [&] {
    auto config = mixlora::config::load_train_config(config_path, overrides);
    if (!base_model.empty()) config.base_model = base_model;
    if (!output_dir.empty()) config.output_dir = output_dir;
    if (app.count("--seed")) config.seed = common.seed;
    if (!app.count("--dtype")) common.dtype = config.dtype;
    if (!pretrain_mode && (app.count("--init-model") || app.count("--tokenizer"))) {
      mixlora::fail_input("--init-model and --tokenizer need --pretrain");
    }
    if (pretrain_mode) {
      if (options.resume) mixlora::fail_input("--pretrain has no checkpoints to --resume from");
      const auto runtime = mixlora::cli::apply_common_options(common);
      pretrain.overwrite = options.overwrite;
      pretrain.skip_bad_rows = skip_bad_rows;
      pretrain.dtype = runtime.dtype;
      pretrain.device = runtime.device;
      const auto s = mixlora::train::run_pretrain_job(config, config_path, pretrain);
      std::cout << fmt::format("pretrain: {} steps, {} tokens, {:.0f} s, loss {:.4f} -> {:.4f}, saved in {}\n", s.steps,
                               s.tokens, s.seconds, s.first_loss, s.last_loss, config.output_dir);
      return 0;
    }
    mixlora::config::require_training_inputs(config, config_path);
    const auto runtime = mixlora::cli::apply_common_options(common);
    if (options.resume && options.overwrite) mixlora::fail_input("--resume and --overwrite exclude each other");
    options.base_model_name = config.base_model;
    options.ffn_path = naive_moe ? mixlora::moe::FfnPath::naive : mixlora::moe::FfnPath::efficient;
    mixlora::train::prepare_output(config, options);

    const auto model = mixlora::model::load_base_model(config.base_model, runtime.dtype, runtime.device);
    std::optional<mixlora::data::Tokenizer> tokenizer;
    if (std::filesystem::exists(std::filesystem::path(config.base_model) / "tokenizer.model")) {
      tokenizer = mixlora::data::Tokenizer::from_model_dir(config.base_model);
    }
    options.pad_id = tokenizer && tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;

    mixlora::data::DatasetOptions data_options;
    // cutoff_len -1 is MoE-PEFT's "as long as the model allows".
    data_options.cutoff_len = config.cutoff_len < 0 ? model.config.max_position_embeddings
                                                    : std::min(config.cutoff_len, model.config.max_position_embeddings);
    data_options.skip_bad_rows = skip_bad_rows;
    data_options.vocab_size = model.config.vocab_size;
    std::vector<std::vector<mixlora::data::Sample>> samples;
    std::vector<std::vector<mixlora::data::TaskData>> eval_sets;
    for (const auto& adapter : config.adapters) {
      std::vector<mixlora::data::Sample> all;
      for (auto& task : mixlora::data::load_task_data(adapter, tokenizer ? &*tokenizer : nullptr, data_options)) {
        spdlog::info("adapter '{}': {} samples of {} from {}{}", adapter.name, task.samples.size(), task.task_name,
                     task.path, task.skipped ? fmt::format(" ({} bad rows skipped)", task.skipped) : "");
        std::move(task.samples.begin(), task.samples.end(), std::back_inserter(all));
      }
      samples.push_back(std::move(all));
      eval_sets.push_back(config.eval_every > 0 ? mixlora::data::load_eval_data(adapter, tokenizer ? &*tokenizer : nullptr, data_options)
                                                : std::vector<mixlora::data::TaskData>{});
    }

    const auto summaries = mixlora::train::train(config, model, std::move(samples), options, eval_sets);
    for (const auto& s : summaries) {
      std::cout << fmt::format("{}: {} steps, loss {:.4f} -> {:.4f}, saved in {}\n", s.name, s.steps,
                               s.first_loss, s.last_loss, s.output_dir);
    }
    return 0;
  });
}
