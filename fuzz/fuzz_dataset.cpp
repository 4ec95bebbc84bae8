// libFuzzer harness: every dataset reader. Input byte 0 picks the task (kTasks: "casual" reads
// instruction / text / pre-tokenized rows; classification; GLUE; each multiple-choice format),
// byte 1 the options (train_on_inputs, a short cutoff_len, --skip-bad-rows), the rest is the
// data file. Rows are tokenized with the tiny-llama SentencePiece model, as in training. A bad
// file must be an InputError; what is accepted must respect the limits the trainer relies on.
#include "fuzz_input.h"
#include "mixlora/config/train_config.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"

#include <spdlog/spdlog.h>

#include <memory>

namespace {

const char* const kTasks[] = {"casual",    "classification", "glue:mrpc", "glue:sst2",
                              "glue:mnli", "arc-e",          "obqa",      "boolq",
                              "piqa",      "siqa",           "hellaswag", "winogrande"};
constexpr size_t kNumTasks = sizeof(kTasks) / sizeof(kTasks[0]);

const mixlora::data::Tokenizer* tokenizer() {
  static const std::unique_ptr<mixlora::data::Tokenizer> loaded = [] {
    std::unique_ptr<mixlora::data::Tokenizer> t;
    try {
      t = std::make_unique<mixlora::data::Tokenizer>(mixlora::data::Tokenizer::from_file(
          MIXLORA_FUZZ_SOURCE_DIR "/data/tiny-llama/tokenizer.model"));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz_dataset: no tokenizer (%s); text rows will be refused\n",
                   e.what());
    }
    return t;
  }();
  return loaded.get();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  (void)tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto path = mixlora::fuzz::write_input(data + 2, size - 2, ".jsonl");
  mixlora::config::AdapterConfig adapter;
  adapter.name = "fuzz";
  adapter.task_name = kTasks[data[0] % kNumTasks];
  if (adapter.task_name == "classification") {
    adapter.labels = {"negative", "positive", "neutral"};
    adapter.num_labels = 3;
  }
  const uint8_t mode = data[1];
  adapter.train_on_inputs = (mode & 1) != 0;
  mixlora::data::DatasetOptions options;
  options.cutoff_len = (mode & 2) ? 16 : 256;
  options.skip_bad_rows = (mode & 4) != 0;
  options.vocab_size = 2048;
  mixlora::fuzz::expect_input_errors_only([&] {
    const auto task =
        mixlora::data::load_task_file(adapter.task_name, path, adapter, tokenizer(), options);
    for (const auto& s : task.samples) {
      // Accepted samples are within the limits the trainer relies on.
      if (s.input_ids.empty() || static_cast<int64_t>(s.input_ids.size()) > options.cutoff_len)
        __builtin_trap();
      if (s.labels.size() != s.input_ids.size()) __builtin_trap();
      for (auto id : s.input_ids)
        if (id < 0 || id >= options.vocab_size) __builtin_trap();
      if (s.class_label >= 3) __builtin_trap();
      if (s.answer_index >= static_cast<int64_t>(s.choice_token_ids.size())) __builtin_trap();
    }
  });
  return 0;
}
