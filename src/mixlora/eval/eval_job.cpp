#include "mixlora/eval/eval_job.h"

#include "mixlora/adapters/adapter.h"
#include "mixlora/common/error.h"
#include "mixlora/config/task_names.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/model/base_model.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <optional>

namespace mixlora::eval {

std::vector<EvalResult> run_eval_job(EvalJob job) {
  if (job.batch_size < 1) fail_input("--batch-size: must be >= 1, got {}", job.batch_size);
  if (job.adapter_dirs.empty()) job.with_base = true;
  const auto model = model::load_base_model(job.base_model, job.dtype, job.device);
  std::optional<data::Tokenizer> tokenizer;
  if (data::Tokenizer::model_dir_has_tokenizer(job.base_model)) {
    tokenizer = data::Tokenizer::from_model_dir(job.base_model);
  }
  std::vector<adapters::Adapter> loaded;
  loaded.reserve(job.adapter_dirs.size());
  for (const auto& dir : job.adapter_dirs) loaded.push_back(adapters::Adapter::load(dir, model));
  if (job.task.empty()) {
    const auto tasks = loaded.empty() ? std::vector<std::string>{}
                                      : config::split_tasks(loaded[0].config.task_name);
    job.task = tasks.size() == 1 ? tasks[0] : config::kCausalTask;
  }

  data::DatasetOptions data_options;
  data_options.cutoff_len = job.cutoff_len > 0
                                ? std::min(job.cutoff_len, model.config.max_position_embeddings)
                                : model.config.max_position_embeddings;
  data_options.vocab_size = model.config.vocab_size;
  const auto* tokenizer_ptr = tokenizer ? &*tokenizer : nullptr;
  // The base model reads the file like the first adapter (labels, template) when there is one.
  auto reading_of = [&](const config::AdapterConfig* adapter) {
    auto reading = adapter ? *adapter : loaded.empty() ? config::AdapterConfig{} : loaded[0].config;
    if (!adapter) reading.task_name = job.task;
    if (job.responses_only) reading.train_on_inputs = false;
    return reading;
  };
  std::vector<data::TaskData> data;
  std::vector<EvalInput> inputs;
  data.reserve(loaded.size() + 1);  // inputs point into it
  if (job.with_base) {
    data.push_back(data::load_task_file(job.task, job.data_path, reading_of(nullptr), tokenizer_ptr,
                                        data_options));
    inputs.push_back({nullptr, job.task, &data.back().samples});
  }
  for (const auto& adapter : loaded) {
    data.push_back(data::load_task_file(job.task, job.data_path, reading_of(&adapter.config),
                                        tokenizer_ptr, data_options));
    inputs.push_back({&adapter, job.task, &data.back().samples});
  }
  spdlog::info("evaluating {} model(s) on {} rows of {} ({})", inputs.size(),
               inputs[0].samples->size(), job.data_path, job.task);
  const model::Decoder decoder(model);
  const int64_t pad_id = tokenizer && tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;
  return evaluate(decoder, inputs, job.batch_size, pad_id);
}

}  // namespace mixlora::eval
