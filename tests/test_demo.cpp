// The main job's wiring (scripts/demo.sh): configs/demo.json trains its four adapters fused on the
// embedded base (data/tiny-llama), scores them during training (eval_every / eval_data), and
// mixlora-eval reproduces the in-training numbers on the saved adapters. Shortened with --set so
// it runs in seconds; the full demo's accuracies are in the README.
#include "cli_runner.h"
#include "test_helpers.h"

#include "catch.h"
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using mixlora::test::run_tool;
using mixlora::test::shell_quote;
using mixlora::test::TempDir;

namespace {

const std::string kSource = MIXLORA_TEST_SOURCE_DIR;

// The last {"eval": [...]} record of an adapter's metrics.jsonl.
nlohmann::json last_eval(const fs::path& metrics) {
  std::ifstream in(metrics);
  nlohmann::json last;
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record.contains("eval")) last = record;
  }
  return last;
}

std::string command(const std::string& tool, const std::vector<std::string>& args) {
  std::string line = tool;
  for (const auto& a : args) line += " " + shell_quote(a);
  return line;
}

// The first `rows` lines of a data file of the repository, as a file in `dir`.
std::string head_of(const std::string& file, size_t rows, const fs::path& dir) {
  std::ifstream in(kSource + "/" + file);
  const auto path =
      dir / fs::path(file).filename().replace_extension(std::to_string(rows) + ".jsonl");
  std::ofstream out_file(path);
  std::string line;
  for (size_t i = 0; i < rows && std::getline(in, line); ++i) out_file << line << "\n";
  return path.string();
}

}  // namespace

TEST_CASE("demo.json trains on the embedded base and eval_every agrees with mixlora-eval",
          "[cli][demo]") {
  TempDir ws;
  const auto out = (ws.path / "demo").string();
  fs::create_directories(ws.path / "spam");
  fs::create_directories(ws.path / "quiz");
  const auto spam_train = head_of("data/demo/spam/train.jsonl", 32, ws.path / "spam");
  const auto spam_test = head_of("data/demo/spam/test.jsonl", 40, ws.path / "spam");
  const auto quiz_train = head_of("data/demo/quiz/train.jsonl", 32, ws.path / "quiz");
  const auto quiz_test = head_of("data/demo/quiz/test.jsonl", 40, ws.path / "quiz");
  // One optimizer step per adapter on 32 rows cut to 64 tokens; the quiz rows stay whole.
  std::vector<std::string> args = {"--config", "configs/demo.json", "--output-dir", out,
                                   "--set",    "cutoff_len=64",     "--set",        "eval_every=1"};
  for (int i = 0; i < 4; ++i) {
    const bool spam = i < 2;  // mixlora-spam, lora-spam, mixlora-quiz, lora-quiz
    for (const auto& set :
         {fmt::format("data={}", spam ? spam_train : quiz_train),
          fmt::format("eval_data={}", spam ? spam_test : quiz_test), std::string("batch_size=32"),
          std::string("micro_batch_size=16"), std::string("num_epochs=1")}) {
      args.push_back("--set");
      args.push_back(fmt::format("lora[{}].{}", i, set));
    }
  }
  const auto trained = run_tool(command("mixlora-train", args), kSource);
  INFO(trained.err);
  REQUIRE(trained.exit_code == 0);

  // The run report is written, and the MixLoRA adapters' records carry router telemetry
  // (docs/telemetry.md): the last training record of mixlora-spam has every layer of tiny-llama.
  CHECK(mixlora::test::slurp(out + "/report.html").find("class=\"heatmap\"") != std::string::npos);
  {
    std::ifstream in(fs::path(out) / "mixlora-spam" / "metrics.jsonl");
    nlohmann::json router;
    for (std::string line; std::getline(in, line);) {
      const auto record = nlohmann::json::parse(line);
      if (record.contains("router")) router = record["router"];
    }
    REQUIRE(router.is_object());
    CHECK(router["layers"].size() == 4);
    CHECK(router["num_experts"] == 4);
  }

  // Spam: the in-training score of the finished adapter is mixlora-eval's score.
  const auto spam_eval = last_eval(fs::path(out) / "mixlora-spam" / "metrics.jsonl");
  REQUIRE(spam_eval["step"] == 1);
  const auto& during = spam_eval["eval"].at(0);
  CHECK(during["task_name"] == "classification");
  CHECK(during["metrics"]["samples"] == 40);
  const auto report = (ws.path / "spam.json").string();
  const auto evaluated =
      run_tool(command("mixlora-eval", {"--base-model", "data/tiny-llama", "--task",
                                        "classification", "--data", spam_test, "--cutoff-len", "64",
                                        "--adapter", out + "/mixlora-spam", "--output", report}),
               kSource);
  INFO(evaluated.err);
  REQUIRE(evaluated.exit_code == 0);
  const auto after = nlohmann::json::parse(mixlora::test::slurp(report)).at(0);
  CHECK(after["metrics"]["accuracy"].get<double>() ==
        Approx(during["metrics"]["accuracy"].get<double>()));
  CHECK(after["router"]["layers"].size() ==
        4);  // mixlora-eval's router object, the schema of metrics.jsonl
  CHECK(after["metrics"]["loss"].get<double>() ==
        Approx(during["metrics"]["loss"].get<double>()).epsilon(1e-5));

  // Quiz: answers only (train_on_inputs false in the config, --responses-only in mixlora-eval).
  const auto quiz_eval = last_eval(fs::path(out) / "lora-quiz" / "metrics.jsonl")["eval"].at(0);
  CHECK(quiz_eval["task_name"] == "casual");
  const auto quiz_report = (ws.path / "quiz.json").string();
  const auto quiz =
      run_tool(command("mixlora-eval", {"--base-model", "data/tiny-llama", "--data", quiz_test,
                                        "--responses-only", "--with-base", "--cutoff-len", "64",
                                        "--adapter", out + "/lora-quiz", "--output", quiz_report}),
               kSource);
  INFO(quiz.err);
  REQUIRE(quiz.exit_code == 0);
  const auto quiz_results = nlohmann::json::parse(mixlora::test::slurp(quiz_report));
  REQUIRE(quiz_results.size() == 2);
  const auto& base = quiz_results[0]["metrics"];
  const auto& lora = quiz_results[1]["metrics"];
  CHECK(lora["tokens"] == quiz_eval["metrics"]["tokens"]);
  CHECK(lora["loss"].get<double>() ==
        Approx(quiz_eval["metrics"]["loss"].get<double>()).epsilon(1e-5));
  CHECK(base["tokens"] == lora["tokens"]);  // the same answer tokens scored for every model
}
