// mixlora-eval: accuracy / loss / perplexity / router losses / router profile of adapters on a
// data set (SPEC sections 2 and 8). Several adapters share one pass of the base model per batch.
#include "mixlora/adapters/adapter.h"
#include "mixlora/cli/app.h"
#include "mixlora/common/error.h"
#include "mixlora/config/task_names.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/model/base_model.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Evaluate a base model and MixLoRA / LoRA adapters on a data set.", "mixlora-eval"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  std::string base_model, data_path, task, output;
  std::vector<std::string> adapter_dirs;
  int64_t batch_size = 8, cutoff_len = 0;
  bool with_base = false, responses_only = false;
  app.add_option("--base-model", base_model, "Hugging Face model directory")->required();
  app.add_option("--adapter", adapter_dirs, "adapter directory (repeatable)");
  app.add_flag("--with-base", with_base, "also evaluate the base model without adapter");
  app.add_option("--data", data_path, "JSONL / JSON data file in any format of the README")->required();
  app.add_option("--task", task, "task of the data (default: the first adapter's task, else casual)");
  app.add_option("--batch-size", batch_size, "rows per adapter per batch")->capture_default_str();
  app.add_option("--cutoff-len", cutoff_len, "truncate samples to this many tokens (0 = the model's context)");
  app.add_option("--output", output, "write the JSON report here");
  app.add_flag("--responses-only", responses_only,
               "instruction rows: score the response tokens only (train_on_inputs false), not the prompt");

  return mixlora::cli::run_main(app, argc, argv, [&] {
    const auto runtime = mixlora::cli::apply_common_options(common);
    if (batch_size < 1) mixlora::fail_input("--batch-size: must be >= 1, got {}", batch_size);
    if (adapter_dirs.empty()) with_base = true;
    const auto model = mixlora::model::load_base_model(base_model, runtime.dtype, runtime.device);
    std::optional<mixlora::data::Tokenizer> tokenizer;
    if (mixlora::data::Tokenizer::model_dir_has_tokenizer(base_model)) {
      tokenizer = mixlora::data::Tokenizer::from_model_dir(base_model);
    }
    std::vector<mixlora::adapters::Adapter> loaded;
    loaded.reserve(adapter_dirs.size());
    for (const auto& dir : adapter_dirs) loaded.push_back(mixlora::adapters::Adapter::load(dir, model));
    if (task.empty()) {
      const auto tasks = loaded.empty() ? std::vector<std::string>{} : mixlora::config::split_tasks(loaded[0].config.task_name);
      task = tasks.size() == 1 ? tasks[0] : mixlora::config::kCausalTask;
    }

    // Each adapter reads the file with its own prompt template and labels.
    mixlora::data::DatasetOptions data_options;
    data_options.cutoff_len = cutoff_len > 0 ? std::min(cutoff_len, model.config.max_position_embeddings)
                                             : model.config.max_position_embeddings;
    data_options.vocab_size = model.config.vocab_size;
    const auto tokenizer_ptr = tokenizer ? &*tokenizer : nullptr;
    std::vector<mixlora::data::TaskData> data;
    std::vector<mixlora::eval::EvalInput> inputs;
    data.reserve(loaded.size() + 1);
    if (with_base) {
      // The base model reads the file like the first adapter (labels, template) when there is one.
      auto plain = loaded.empty() ? mixlora::config::AdapterConfig{} : loaded[0].config;
      plain.task_name = task;
      if (responses_only) plain.train_on_inputs = false;
      data.push_back(mixlora::data::load_task_file(task, data_path, plain, tokenizer_ptr, data_options));
      inputs.push_back({nullptr, task, &data.back().samples});
    }
    for (const auto& adapter : loaded) {
      auto reading = adapter.config;
      if (responses_only) reading.train_on_inputs = false;
      data.push_back(mixlora::data::load_task_file(task, data_path, reading, tokenizer_ptr, data_options));
      inputs.push_back({&adapter, task, &data.back().samples});
    }
    spdlog::info("evaluating {} model(s) on {} rows of {} ({})", inputs.size(), inputs[0].samples->size(),
                 data_path, task);
    const mixlora::model::Decoder decoder(model);
    const int64_t pad_id = tokenizer && tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;
    const auto results = mixlora::eval::evaluate(decoder, inputs, batch_size, pad_id);
    std::cout << mixlora::eval::report_table(results);
    if (!output.empty()) {
      mixlora::io::write_file_atomically(output, mixlora::eval::report_json(results).dump(2) + "\n");
    }
    return 0;
  });
}
