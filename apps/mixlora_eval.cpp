// mixlora-eval: loss / perplexity / router losses / router profile of adapters on a data set
// (SPEC sections 2 and 8). Several adapters share one pass of the base model per batch.
#include "mixlora/adapters/adapter.h"
#include "mixlora/cli/app.h"
#include "mixlora/common/error.h"
#include "mixlora/data/pretokenized.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/model/base_model.h"

#include <nlohmann/json.hpp>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Evaluate a base model and MixLoRA / LoRA adapters on a data set.", "mixlora-eval"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  std::string base_model, data_path, task = "casual", output;
  std::vector<std::string> adapter_dirs;
  int64_t batch_size = 8;
  bool with_base = false;
  app.add_option("--base-model", base_model, "Hugging Face model directory")->required();
  app.add_option("--adapter", adapter_dirs, "adapter directory (repeatable)");
  app.add_flag("--with-base", with_base, "also evaluate the base model without adapter");
  app.add_option("--data", data_path, "JSONL / JSON rows: {\"input_ids\": [...], \"labels\"?: [...]}")
      ->required();
  app.add_option("--task", task, "task name (casual: causal language modelling)")->capture_default_str();
  app.add_option("--batch-size", batch_size, "rows per adapter per batch")->capture_default_str();
  app.add_option("--output", output, "write the JSON report here");

  return mixlora::cli::run_main(app, argc, argv, [&] {
    const auto runtime = mixlora::cli::apply_common_options(common);
    if (batch_size < 1) mixlora::fail_input("--batch-size: must be >= 1, got {}", batch_size);
    if (task != "casual" && task != "causal") {
      mixlora::fail_input("--task {}: only causal language modelling (casual) is evaluated so far", task);
    }
    if (adapter_dirs.empty()) with_base = true;
    const auto model = mixlora::model::load_base_model(base_model, runtime.dtype, runtime.device);
    std::vector<mixlora::adapters::Adapter> loaded;
    loaded.reserve(adapter_dirs.size());
    for (const auto& dir : adapter_dirs) loaded.push_back(mixlora::adapters::Adapter::load(dir, model));
    std::vector<const mixlora::adapters::Adapter*> adapters;
    if (with_base) adapters.push_back(nullptr);
    for (const auto& a : loaded) adapters.push_back(&a);

    mixlora::data::ReadOptions read_options;
    read_options.vocab_size = model.config.vocab_size;
    read_options.max_length = model.config.max_position_embeddings;
    const auto data = mixlora::data::read_pretokenized(data_path, read_options);
    spdlog::info("evaluating {} adapter(s) on {} rows of {}", adapters.size(), data.samples.size(), data_path);
    const mixlora::model::Decoder decoder(model);
    const int64_t pad_id = std::max<int64_t>(0, model.config.pad_token_id);
    const auto results = mixlora::eval::evaluate_causal_lm(decoder, adapters, data.samples, batch_size, pad_id);
    std::cout << mixlora::eval::report_table(results);
    if (!output.empty()) {
      mixlora::io::write_file_atomically(output, mixlora::eval::report_json(results).dump(2) + "\n");
    }
    return 0;
  });
}
