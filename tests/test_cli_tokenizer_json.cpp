// A model directory with tokenizer.json trains on text: data/tiny-llama-bytelevel (tiny-llama's
// weights with the byte-level BPE of data/tokenizers/tiny-bytelevel) and
// configs/tokenizer-json.json (docs/tokenizers.md).
#include "cli_runner.h"
#include "mixlora/config/train_config.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/tokenizer.h"
#include "test_helpers.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

namespace fs = std::filesystem;
using mixlora::test::shell_quote;
using mixlora::test::TempDir;

namespace {

const std::string kSource = MIXLORA_TEST_SOURCE_DIR;

}  // namespace

TEST_CASE("text rows of a tokenizer.json model are tokenized with tokenizer.json",
          "[hf_tokenizer][dataset]") {
  const auto tokenizer =
      mixlora::data::Tokenizer::from_model_dir(kSource + "/data/tiny-llama-bytelevel");
  REQUIRE(tokenizer.is_tokenizer_json());
  auto config = mixlora::config::load_train_config(kSource + "/configs/tokenizer-json.json");
  auto adapter = config.adapters.at(0);
  for (auto& file : adapter.data) file = kSource + "/" + file;
  mixlora::data::DatasetOptions options;
  options.cutoff_len = 128;
  options.vocab_size = 2048;
  const auto tasks = mixlora::data::load_task_data(adapter, &tokenizer, options);
  REQUIRE(tasks.size() == 1);
  REQUIRE(tasks[0].samples.size() == 600);
  std::ifstream rows(adapter.data[0]);
  std::string first;
  std::getline(rows, first);
  const std::string instruction = nlohmann::json::parse(first).at("instruction");
  const auto& sample = tasks[0].samples[0];
  CHECK(sample.input_ids.front() == tokenizer.bos_id());  // the post-processor's <|bos|>
  CHECK_THAT(tokenizer.decode(sample.input_ids), Catch::Matchers::Contains(instruction));
  for (const auto& task_sample : tasks[0].samples) {
    for (const int64_t id : task_sample.input_ids)
      REQUIRE((id >= 0 && id < tokenizer.vocab_size()));
  }
}

TEST_CASE("mixlora-train --config configs/tokenizer-json.json trains on text",
          "[cli][train][hf_tokenizer]") {
  TempDir out;
  const std::vector<std::string> args = {"--config",     "configs/tokenizer-json.json",
                                         "--output-dir", out.str(),
                                         "--set",        "log_every=1",
                                         "--set",        "lora[0].batch_size=200",
                                         "--set",        "lora[0].micro_batch_size=200"};
  std::string line = "mixlora-train";
  for (const auto& arg : args) line += " " + shell_quote(arg);
  const auto result = mixlora::test::run_tool(line, kSource);
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  CHECK_THAT(result.err,
             Catch::Matchers::Contains("adapter 'mixlora-quiz-bytelevel': 600 samples"));
  const fs::path dir = out.path / "mixlora-quiz-bytelevel";
  REQUIRE(fs::is_regular_file(dir / "adapter_model.safetensors"));
  std::ifstream metrics(dir / "metrics.jsonl");
  std::vector<double> losses;
  for (std::string row; std::getline(metrics, row);)
    losses.push_back(nlohmann::json::parse(row).at("loss"));
  REQUIRE(losses.size() == 3);  // 600 rows / 200 per step
  for (const double loss : losses) CHECK(std::isfinite(loss));
}
