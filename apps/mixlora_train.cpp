// mixlora-train: trains every adapter of a MoE-PEFT style config over one pass of the frozen
// base model per batch (SPEC sections 2, 4, 6, 7). The whole job: config -> model -> data ->
// training loop -> adapters on disk. With --pretrain, the same config trains every weight of the
// base model instead (train/pretrain.h, docs/pretrain.md).
#include "mixlora/cli/app.h"
#include "mixlora/common/error.h"
#include "mixlora/config/train_config.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/io/json_file.h"
#include "mixlora/model/base_model.h"
#include "mixlora/train/pretrain.h"
#include "mixlora/train/trainer.h"

#include <filesystem>
#include <iostream>

namespace {

namespace fs = std::filesystem;

// cutoff_len -1 is MoE-PEFT's "as long as the model allows"; more than the model allows is an
// error rather than a silent clamp (positions past the model's context were never trained).
int64_t checked_cutoff_len(const mixlora::config::TrainConfig& config, const std::string& config_path,
                           int64_t max_positions) {
  if (config.cutoff_len < 0) return max_positions;
  if (config.cutoff_len > max_positions) {
    mixlora::fail_input("{}: cutoff_len: {} is more than the base model's max_position_embeddings ({}); use at "
                        "most {}, or -1 for the model's maximum", config_path, config.cutoff_len, max_positions,
                        max_positions);
  }
  return config.cutoff_len;
}

struct PretrainFlags {
  bool enabled = false;
  std::string init_model;  // shape JSON (config.json keys): start from random weights
  std::string tokenizer;   // tokenizer directory or tokenizer.model file
};

// --pretrain: full-parameter training of the base model (or of a random one of --init-model's
// shape) with the settings and data of the config's single lora[] entry; writes a model directory.
int run_pretrain(mixlora::config::TrainConfig config, const std::string& config_path, const PretrainFlags& flags,
                 bool overwrite, bool skip_bad_rows, const mixlora::cli::Runtime& runtime) {
  using mixlora::fail_input;
  const bool random_init = !flags.init_model.empty();
  if (random_init && !config.base_model.empty()) fail_input("--init-model and a base model (--base-model or base_model) exclude each other");
  auto check = config;
  if (random_init) check.base_model = flags.init_model;
  mixlora::config::require_training_inputs(check, config_path);
  const auto out = fs::path(config.output_dir);
  if (fs::exists(out / "model.safetensors") && !overwrite) {
    fail_input("{}: a model is already there (use --overwrite to replace it)", out.string());
  }

  auto model = random_init
      ? mixlora::model::random_base_model(
            mixlora::model::parse_model_config(mixlora::io::read_json_file(flags.init_model), flags.init_model),
            runtime.dtype, runtime.device, config.seed)
      : mixlora::model::load_base_model(config.base_model, runtime.dtype, runtime.device);
  std::string tokenizer_source = flags.tokenizer;
  if (tokenizer_source.empty() && !random_init && fs::exists(fs::path(config.base_model) / "tokenizer.model")) {
    tokenizer_source = config.base_model;
  }
  std::optional<mixlora::data::Tokenizer> tokenizer;
  if (!tokenizer_source.empty()) {
    tokenizer = fs::is_directory(tokenizer_source) ? mixlora::data::Tokenizer::from_model_dir(tokenizer_source)
                                                   : mixlora::data::Tokenizer::from_file(tokenizer_source);
    if (tokenizer->vocab_size() > model.config.vocab_size) {
      fail_input("{}: the tokenizer has {} pieces but the model's vocab_size is {}", tokenizer_source,
                 tokenizer->vocab_size(), model.config.vocab_size);
    }
  }

  mixlora::data::DatasetOptions data_options;
  data_options.cutoff_len = checked_cutoff_len(config, config_path, model.config.max_position_embeddings);
  data_options.skip_bad_rows = skip_bad_rows;
  data_options.vocab_size = model.config.vocab_size;
  std::vector<mixlora::data::Sample> samples;
  for (auto& task : mixlora::data::load_task_data(config.adapters.at(0), tokenizer ? &*tokenizer : nullptr, data_options)) {
    spdlog::info("pretraining data: {} samples from {}", task.samples.size(), task.path);
    std::move(task.samples.begin(), task.samples.end(), std::back_inserter(samples));
  }

  mixlora::train::PretrainOptions options;
  options.output_dir = config.output_dir;
  options.tokenizer_source = tokenizer_source;
  options.pad_id = tokenizer && tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;
  const auto s = mixlora::train::pretrain(config, model, std::move(samples), options);
  std::cout << fmt::format("pretrain: {} steps, {} tokens, {:.0f} s, loss {:.4f} -> {:.4f}, saved in {}\n", s.steps,
                           s.tokens, s.seconds, s.first_loss, s.last_loss, config.output_dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train MixLoRA / LoRA adapters on a LLaMA-family base model.", "mixlora-train"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  std::string config_path, base_model, output_dir;
  std::vector<std::string> overrides;
  mixlora::train::TrainerOptions options;
  bool skip_bad_rows = false, naive_moe = false;
  PretrainFlags pretrain;
  app.add_option("--config", config_path, "training config (MoE-PEFT JSON)")->required();
  app.add_option("--base-model", base_model, "Hugging Face model directory (overrides base_model)");
  app.add_option("--output-dir", output_dir, "where adapters go (overrides output_dir)");
  app.add_option("--set", overrides, "override a config value: lora[0].lr=1e-4 (repeatable)");
  app.add_flag("--resume", options.resume, "continue from the newest complete checkpoints");
  app.add_flag("--overwrite", options.overwrite, "replace finished or unfinished runs in the output directory");
  app.add_flag("--export-bin", options.export_bin, "also write adapter_model.bin (torch.load-able)");
  app.add_flag("--skip-bad-rows", skip_bad_rows, "skip and count malformed data rows instead of failing");
  app.add_flag("--naive-moe", naive_moe, "use the naive per-expert MixLoRA FFN (reference, slower)");
  app.add_flag("--pretrain", pretrain.enabled,
               "train every base-model weight with lora[0]'s optimiser and data; writes a model to --output-dir");
  app.add_option("--init-model", pretrain.init_model, "with --pretrain: start from random weights of this shape (config.json keys)");
  app.add_option("--tokenizer", pretrain.tokenizer, "with --pretrain: tokenizer directory or tokenizer.model file");

  return mixlora::cli::run_main(app, argc, argv, [&] {
    auto config = mixlora::config::load_train_config(config_path, overrides);
    if (!base_model.empty()) config.base_model = base_model;
    if (!output_dir.empty()) config.output_dir = output_dir;
    if (app.count("--seed")) config.seed = common.seed;
    if (!app.count("--dtype")) common.dtype = config.dtype;
    if (!pretrain.enabled && (app.count("--init-model") || app.count("--tokenizer"))) {
      mixlora::fail_input("--init-model and --tokenizer need --pretrain");
    }
    if (pretrain.enabled) {
      if (options.resume) mixlora::fail_input("--pretrain has no checkpoints to --resume from");
      return run_pretrain(config, config_path, pretrain, options.overwrite, skip_bad_rows,
                          mixlora::cli::apply_common_options(common));
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
    data_options.cutoff_len = checked_cutoff_len(config, config_path, model.config.max_position_embeddings);
    data_options.skip_bad_rows = skip_bad_rows;
    data_options.vocab_size = model.config.vocab_size;
    std::vector<std::vector<mixlora::data::Sample>> samples;
    for (const auto& adapter : config.adapters) {
      std::vector<mixlora::data::Sample> all;
      for (auto& task : mixlora::data::load_task_data(adapter, tokenizer ? &*tokenizer : nullptr, data_options)) {
        spdlog::info("adapter '{}': {} samples of {} from {}{}", adapter.name, task.samples.size(), task.task_name,
                     task.path, task.skipped ? fmt::format(" ({} bad rows skipped)", task.skipped) : "");
        std::move(task.samples.begin(), task.samples.end(), std::back_inserter(all));
      }
      samples.push_back(std::move(all));
    }

    const auto summaries = mixlora::train::train(config, model, std::move(samples), options);
    for (const auto& s : summaries) {
      std::cout << fmt::format("{}: {} steps, loss {:.4f} -> {:.4f}, saved in {}\n", s.name, s.steps,
                               s.first_loss, s.last_loss, s.output_dir);
    }
    return 0;
  });
}
