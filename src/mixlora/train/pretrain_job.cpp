#include "mixlora/train/pretrain_job.h"

#include "mixlora/common/error.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/io/json_file.h"
#include "mixlora/model/base_model.h"

#include <filesystem>
#include <optional>

namespace mixlora::train {

namespace fs = std::filesystem;

PretrainSummary run_pretrain_job(const config::TrainConfig& config, const std::string& config_path,
                                 const PretrainJob& job) {
  const bool random_init = !job.init_model.empty();
  if (random_init && !config.base_model.empty()) {
    fail_input("--init-model and a base model (--base-model or base_model) exclude each other");
  }
  auto check = config;
  if (random_init) check.base_model = job.init_model;
  config::require_training_inputs(check, config_path);
  const auto out = fs::path(config.output_dir);
  if (fs::exists(out / "model.safetensors") && !job.overwrite) {
    fail_input("{}: a model is already there (use --overwrite to replace it)", out.string());
  }

  auto model =
      random_init
          ? model::random_base_model(
                model::parse_model_config(io::read_json_file(job.init_model), job.init_model),
                job.dtype, job.device, config.seed)
          : model::load_base_model(config.base_model, job.dtype, job.device);
  std::string tokenizer_source = job.tokenizer;
  if (tokenizer_source.empty() && !random_init &&
      data::Tokenizer::model_dir_has_tokenizer(config.base_model)) {
    tokenizer_source = config.base_model;
  }
  std::optional<data::Tokenizer> tokenizer;
  if (!tokenizer_source.empty()) {
    tokenizer = fs::is_directory(tokenizer_source)
                    ? data::Tokenizer::from_model_dir(tokenizer_source)
                    : data::Tokenizer::from_file(tokenizer_source);
    if (tokenizer->vocab_size() > model.config.vocab_size) {
      fail_input("{}: the tokenizer has {} pieces but the model's vocab_size is {}",
                 tokenizer_source, tokenizer->vocab_size(), model.config.vocab_size);
    }
  }

  data::DatasetOptions data_options;
  data_options.cutoff_len =
      config::resolve_cutoff_len(config, config_path, model.config.max_position_embeddings);
  data_options.skip_bad_rows = job.skip_bad_rows;
  data_options.vocab_size = model.config.vocab_size;
  std::vector<data::Sample> samples;
  for (auto& task : data::load_task_data(config.adapters.at(0), tokenizer ? &*tokenizer : nullptr,
                                         data_options)) {
    spdlog::info("pretraining data: {} samples from {}", task.samples.size(), task.path);
    std::move(task.samples.begin(), task.samples.end(), std::back_inserter(samples));
  }

  PretrainOptions options;
  options.output_dir = config.output_dir;
  options.tokenizer_source = tokenizer_source;
  options.pad_id = tokenizer && tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;
  return pretrain(config, model, std::move(samples), options);
}

}  // namespace mixlora::train
