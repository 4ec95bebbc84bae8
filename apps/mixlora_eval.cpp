// mixlora-eval: accuracy / loss / perplexity / router losses / router profile of adapters on a
// data set (SPEC sections 2 and 8). Several adapters share one pass of the base model per batch.
#include "mixlora/cli/app.h"
#include "mixlora/eval/eval_job.h"
#include "mixlora/io/atomic_file.h"

#include <nlohmann/json.hpp>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Evaluate a base model and MixLoRA / LoRA adapters on a data set.", "mixlora-eval"};
  mixlora::cli::CommonOptions common;
  mixlora::cli::add_common_options(app, common);
  mixlora::eval::EvalJob job;
  std::string output;
  app.add_option("--base-model", job.base_model, "Hugging Face model directory")->required();
  app.add_option("--adapter", job.adapter_dirs, "adapter directory (repeatable)");
  app.add_flag("--with-base", job.with_base, "also evaluate the base model without adapter");
  app.add_option("--data", job.data_path,
                 "JSONL / JSON data file in any format of docs/data-formats.md")
      ->required();
  app.add_option("--task", job.task,
                 "task of the data (default: the first adapter's task, else casual)");
  app.add_option("--batch-size", job.batch_size, "rows per adapter per batch")
      ->capture_default_str();
  app.add_option("--cutoff-len", job.cutoff_len,
                 "truncate samples to this many tokens (0 = the model's context)");
  app.add_option("--output", output, "write the JSON report here");
  app.add_flag(
      "--responses-only", job.responses_only,
      "instruction rows: score the response tokens only (train_on_inputs false), not the prompt");

  return mixlora::cli::run_main(app, argc, argv, [&] {
    const auto runtime = mixlora::cli::apply_common_options(common);
    job.dtype = runtime.dtype;
    job.device = runtime.device;
    const auto results = mixlora::eval::run_eval_job(job);
    std::cout << mixlora::eval::report_table(results);
    if (!output.empty()) {
      mixlora::io::write_file_atomically(output,
                                         mixlora::eval::report_json(results).dump(2) + "\n");
    }
    return 0;
  });
}
