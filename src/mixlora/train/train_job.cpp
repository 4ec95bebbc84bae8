#include "mixlora/train/train_job.h"

#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/model/base_model.h"
#include "mixlora/train/distributed.h"

#include <filesystem>
#include <optional>

namespace mixlora::train {

std::vector<AdapterSummary> run_train_job(const config::TrainConfig& config, const std::string& config_path,
                                          TrainJob job) {
  auto& options = job.trainer;
  if (!options.comm || options.comm->rank() == 0) prepare_output(config, options);
  const auto model = model::load_base_model(config.base_model, job.dtype, job.device);
  std::optional<data::Tokenizer> tokenizer;
  if (data::Tokenizer::model_dir_has_tokenizer(config.base_model)) {
    tokenizer = data::Tokenizer::from_model_dir(config.base_model);
  }
  const auto* tokens = tokenizer ? &*tokenizer : nullptr;
  options.pad_id = tokenizer && tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;

  data::DatasetOptions data_options;
  data_options.cutoff_len = config::resolve_cutoff_len(config, config_path, model.config.max_position_embeddings);
  data_options.skip_bad_rows = job.skip_bad_rows;
  data_options.vocab_size = model.config.vocab_size;
  std::vector<std::vector<data::Sample>> samples;
  std::vector<std::vector<data::TaskData>> eval_sets;
  for (const auto& adapter : config.adapters) {
    std::vector<data::Sample> all;
    for (auto& task : data::load_task_data(adapter, tokens, data_options)) {
      spdlog::info("adapter '{}': {} samples of {} from {}{}", adapter.name, task.samples.size(), task.task_name,
                   task.path, task.skipped ? fmt::format(" ({} bad rows skipped)", task.skipped) : "");
      std::move(task.samples.begin(), task.samples.end(), std::back_inserter(all));
    }
    samples.push_back(std::move(all));
    eval_sets.push_back(config.eval_every > 0 ? data::load_eval_data(adapter, tokens, data_options)
                                              : std::vector<data::TaskData>{});
  }
  return train(config, model, std::move(samples), options, eval_sets);
}

}  // namespace mixlora::train
