// mixlora-train end to end, run the way users run it: the example configs of configs/ from the
// repository root, the unchanged MoE-PEFT configs, --export-bin read back by Python's torch,
// bad input (exit 2, one line, nothing written), reruns, and --resume through the CLI.
#include "cli_runner.h"

#include "mixlora/io/json_file.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/model/base_model.h"
#include "stories_model.h"

#include "catch.h"
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace fs = std::filesystem;
using namespace mixlora;
using mixlora::test::CommandResult;
using mixlora::test::count_lines;
using mixlora::test::shell_quote;
using mixlora::test::slurp;
using mixlora::test::stories_dir;
using mixlora::test::TempDir;

namespace {

const std::string kSource = MIXLORA_TEST_SOURCE_DIR;
const std::string kCompat = MIXLORA_TEST_SOURCE_DIR "/data/moe-peft";
const std::string kTrainData = kSource + "/data/stories/train.jsonl";
const std::string kTestData = kSource + "/data/stories/test.jsonl";

// Runs `tool args...` from the build's bin dir with `cwd` as the working directory (the
// example configs name their data relative to the repository root, as users run them).
CommandResult run_in(const std::string& cwd, const std::string& tool,
                     const std::vector<std::string>& args) {
  std::string line = tool;
  for (const auto& a : args) line += " " + shell_quote(a);
  return mixlora::test::run_tool(line, cwd);
}

CommandResult train(const std::vector<std::string>& args) {
  return run_in(kSource, "mixlora-train", args);
}

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::vector<nlohmann::json> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

// Every regular file below `dir` (none when it does not exist).
std::vector<std::string> files_under(const fs::path& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ec))
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  return files;
}

using mixlora::test::stories_rows;
using mixlora::test::write_lines;

std::set<std::string> tensor_names(const std::string& path) {
  std::set<std::string> names;
  const auto file = io::SafeTensorsFile::open(path);
  for (const auto& t : file.tensors()) names.insert(t.name);
  return names;
}

// A tiny random LLaMA with the real LLaMA-2 vocabulary and tokenizer, so that text data
// (instruction rows rendered with a prompt template) can be trained on.
std::string tokenizer_model_dir(const TempDir& ws) {
  const auto config = test::tiny_llama_config(/*vocab_size=*/32000, /*max_positions=*/512);
  const auto model = model::random_base_model(config, at::kFloat, c10::Device(c10::kCPU), 1234);
  const auto dir = ws / "tiny-llama";
  model::save_base_model(model, dir);
  fs::copy_file(MIXLORA_TEST_SOURCE_DIR "/data/tokenizers/llama2/tokenizer.model",
                fs::path(dir) / "tokenizer.model");
  return dir;
}

bool any_nonzero(const io::SafeTensorsFile& file, const std::string& name) {
  return file.load(name).abs().max().item<float>() > 0.0f;
}

}  // namespace

TEST_CASE("every example config trains stories260K from the repository root", "[cli][train]") {
  TempDir ws;
  for (const std::string name :
       {"mixlora", "mixlora-dynamic", "mixlora-switch", "lora", "multi-task"}) {
    DYNAMIC_SECTION(name << ".json") {
      const auto config = io::read_json_file(kSource + "/configs/" + name + ".json");
      const auto out_dir = ws / name;
      // The config's own data file (data/stories/train.jsonl, relative to the repository root),
      // one epoch of 512 rows per step: 4 steps per adapter. Rows are cut to 4 tokens to keep
      // the run short.
      std::vector<std::string> args = {"--config",     "configs/" + name + ".json",
                                       "--base-model", stories_dir(),
                                       "--output-dir", out_dir,
                                       "--set",        "log_every=1",
                                       "--set",        "cutoff_len=4"};
      const size_t adapters = config["lora"].size();
      for (size_t i = 0; i < adapters; ++i) {
        CHECK(config["lora"][i]["data"] == "data/stories/train.jsonl");
        for (const auto& set : {"batch_size=512", "micro_batch_size=512", "num_epochs=1"}) {
          args.push_back("--set");
          args.push_back(fmt::format("lora[{}].{}", i, set));
        }
      }
      const auto result = train(args);
      INFO(result.err);
      REQUIRE(result.exit_code == 0);
      CHECK(adapters == (name == "multi-task" ? 3u : 1u));
      for (const auto& adapter : config["lora"]) {
        const auto adapter_name = adapter["name"].get<std::string>();
        INFO("adapter " << adapter_name);
        const fs::path dir = fs::path(out_dir) / adapter_name;
        REQUIRE(fs::is_regular_file(dir / "adapter_config.json"));
        REQUIRE(fs::is_regular_file(dir / "adapter_model.safetensors"));
        REQUIRE(fs::is_regular_file(dir / "metrics.jsonl"));
        CHECK_THAT(result.out, Catch::Matchers::Contains(adapter_name + ": 4 steps"));
        CHECK_THAT(result.err,
                   Catch::Matchers::Contains("adapter '" + adapter_name + "': 2048 samples"));
        const auto metrics = read_metrics((dir / "metrics.jsonl").string());
        REQUIRE(metrics.size() == 4);
        for (size_t s = 0; s < metrics.size(); ++s) CHECK(metrics[s]["step"] == s + 1);
        CHECK(metrics.back()["total_steps"] == 4);
        for (const auto& m : metrics) {
          CHECK(m["adapter"] == adapter_name);
          CHECK(std::isfinite(m["loss"].get<double>()));
          CHECK(m["loss"].get<double>() > 0.0);
        }
        const auto written = io::read_json_file((dir / "adapter_config.json").string());
        const bool mixlora = adapter.contains("routing_strategy");
        CHECK(written["peft_type"] == (mixlora ? "MIXLORA" : "LORA"));
        CHECK(written["r"] == adapter["r"]);
        if (mixlora) {
          CHECK(written["routing_strategy"] == adapter["routing_strategy"]);
          CHECK(written["num_experts"] == adapter["num_experts"]);
        }
        // Trained: the zero-initialised lora_B weights moved.
        const auto file = io::SafeTensorsFile::open((dir / "adapter_model.safetensors").string());
        const auto b_name = mixlora
                                ? "mixlora.layers.0.mlp.up_proj.experts.0.lora_B.weight"
                                : "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight";
        REQUIRE(file.find(b_name) != nullptr);
        CHECK(any_nonzero(file, b_name));
        // No checkpoint left behind by a run shorter than save_step.
        for (const auto& entry : fs::directory_iterator(dir))
          CHECK(entry.path().filename().string().rfind("checkpoint", 0) == std::string::npos);
      }
    }
  }
}

TEST_CASE("mixlora.json learns: loss falls and the adapter beats the base model on held-out data",
          "[cli][train]") {
  TempDir ws;
  const auto out_dir = ws / "out";
  // data/stories/train.jsonl (2048 rows, cut to 12 tokens for speed), 64 rows per step: 32 steps.
  const auto result =
      train({"--config", "configs/mixlora.json", "--base-model", stories_dir(), "--output-dir",
             out_dir, "--set", "lora[0].lr=0.005", "--set", "lora[0].batch_size=64", "--set",
             "lora[0].micro_batch_size=64", "--set", "lora[0].num_epochs=1", "--set", "log_every=1",
             "--set", "cutoff_len=12"});
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  const auto adapter_dir = out_dir + "/mixlora";
  const auto metrics = read_metrics(adapter_dir + "/metrics.jsonl");
  REQUIRE(metrics.size() == 32);
  for (size_t i = 0; i < metrics.size(); ++i) CHECK(metrics[i]["step"] == i + 1);
  const double first = metrics.front()["loss"], last = metrics.back()["loss"];
  INFO("first loss " << first << ", last loss " << last);
  CHECK(last < first - 0.3);
  // MixLoRA top-2 over 4 experts, router_aux_loss_coef 0.001: perfectly balanced routing gives
  // 2 * coef = 0.002, the most unbalanced top_k * num_experts * coef = 0.008.
  const double aux = metrics.back()["aux_loss"];
  CHECK(aux > 0.0015);
  CHECK(aux < 0.008);
  CHECK(metrics.back()["lr"].get<double>() == Approx(0.005));

  const auto report_path = ws / "report.json";
  const auto eval = run_in(kSource, "mixlora-eval",
                           {"--base-model", stories_dir(), "--adapter", adapter_dir, "--with-base",
                            "--data", "data/stories/test.jsonl", "--output", report_path});
  INFO(eval.err);
  REQUIRE(eval.exit_code == 0);
  const auto report = io::read_json_file(report_path);
  REQUIRE(report.size() == 2);
  CHECK(report[0]["adapter_name"] == "base");
  CHECK(report[1]["adapter_name"] == "mixlora");
  CHECK(report[1]["metrics"]["samples"] == 128);
  const double base_loss = report[0]["metrics"]["loss"],
               adapter_loss = report[1]["metrics"]["loss"];
  INFO("held-out loss: base " << base_loss << ", adapter " << adapter_loss);
  CHECK(adapter_loss < base_loss - 0.1);
}

TEST_CASE("the MoE-PEFT configs run unchanged on a model with the LLaMA tokenizer",
          "[cli][train]") {
  TempDir ws;
  const auto model_dir = tokenizer_model_dir(ws);
  struct Case {
    std::string config, prompt;
    bool mixlora;
    std::string routing;
  };
  const std::vector<Case> cases = {
      {"mixlora.json", "mlora.json", true, "mixlora"},
      {"mixlora_dynamic.json", "mlora.json", true, "mixlora-dynamic"},
      {"lora.json", "mlora.json", false, ""},
      {"mixlora.json", "alpaca.json", true, "mixlora"},
  };
  int index = 0;
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.config << " with " << c.prompt) {
      const auto config_path = kCompat + "/" + c.config;
      const auto config = io::read_json_file(config_path);
      const auto& adapter = config["lora"][0];
      const auto out_dir = ws / fmt::format("out-{}", index);
      const auto result = train({"--config", config_path, "--base-model", model_dir, "--output-dir",
                                 out_dir, "--set", "lora[0].data=" + kCompat + "/dummy_data.json",
                                 "--set", "lora[0].prompt=" + kCompat + "/" + c.prompt, "--set",
                                 "cutoff_len=64", "--set", "lora[0].batch_size=4", "--set",
                                 "lora[0].micro_batch_size=2", "--set", "lora[0].num_epochs=1"});
      INFO(result.err);
      REQUIRE(result.exit_code == 0);
      const auto name = adapter["name"].get<std::string>();
      // 64 rows of dummy_data.json, 4 per step.
      CHECK_THAT(result.out, Catch::Matchers::Contains(name + ": 16 steps"));
      const fs::path dir = fs::path(out_dir) / name;
      REQUIRE(fs::is_regular_file(dir / "metrics.jsonl"));
      const auto written = io::read_json_file((dir / "adapter_config.json").string());
      CHECK(written["peft_type"] == (c.mixlora ? "MIXLORA" : "LORA"));
      CHECK(written["task_type"] == "CAUSAL_LM");
      CHECK(written["r"] == adapter["r"]);
      CHECK(written["lora_alpha"] == adapter["lora_alpha"]);
      CHECK(written["lora_dropout"].get<double>() == Approx(adapter["lora_dropout"].get<double>()));
      CHECK(written["base_model_name_or_path"] == model_dir);
      const auto targets = written["target_modules"].get<std::set<std::string>>();
      CHECK(targets == std::set<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                             "up_proj", "down_proj"});

      const auto path = (dir / "adapter_model.safetensors").string();
      const auto file = io::SafeTensorsFile::open(path);
      const auto names = tensor_names(path);
      const int64_t r = adapter["r"];
      for (const auto& t : file.tensors()) CHECK(t.dtype == io::DType::F32);
      auto shape = [&](const std::string& n) {
        const auto* info = file.find(n);
        INFO("tensor " << n);
        REQUIRE(info != nullptr);
        return info->shape;
      };
      if (c.mixlora) {
        CHECK(written["routing_strategy"] == c.routing);
        CHECK(written["num_experts"] == 8);
        if (c.routing == "mixlora")
          CHECK(written["top_k"] == 2);
        else
          CHECK(written["top_p"].get<double>() == Approx(0.8));
        // Per layer: router, 3 MLP projections x 8 experts x (A, B), 4 attention projections x (A,
        // B).
        CHECK(names.size() == 2 * (1 + 3 * 8 * 2 + 4 * 2));
        for (int layer = 0; layer < 2; ++layer) {
          const auto mlp = fmt::format("mixlora.layers.{}.mlp.", layer);
          CHECK(shape(mlp + "moe_gate.weight") == std::vector<int64_t>{8, 32});
          for (int e = 0; e < 8; ++e) {
            CHECK(shape(fmt::format("{}gate_proj.experts.{}.lora_A.weight", mlp, e)) ==
                  std::vector<int64_t>{r, 32});
            CHECK(shape(fmt::format("{}gate_proj.experts.{}.lora_B.weight", mlp, e)) ==
                  std::vector<int64_t>{64, r});
            CHECK(shape(fmt::format("{}up_proj.experts.{}.lora_B.weight", mlp, e)) ==
                  std::vector<int64_t>{64, r});
            CHECK(shape(fmt::format("{}down_proj.experts.{}.lora_A.weight", mlp, e)) ==
                  std::vector<int64_t>{r, 64});
            CHECK(shape(fmt::format("{}down_proj.experts.{}.lora_B.weight", mlp, e)) ==
                  std::vector<int64_t>{32, r});
          }
          const auto attn = fmt::format("mixlora.layers.{}.self_attn.", layer);
          CHECK(shape(attn + "q_proj.lora_A.weight") == std::vector<int64_t>{r, 32});
          CHECK(shape(attn + "k_proj.lora_B.weight") == std::vector<int64_t>{16, r});
          CHECK(shape(attn + "o_proj.lora_B.weight") == std::vector<int64_t>{32, r});
        }
        CHECK(any_nonzero(file, "mixlora.layers.1.mlp.down_proj.experts.3.lora_B.weight"));
      } else {
        CHECK_FALSE(written.contains("routing_strategy"));
        CHECK_FALSE(written.contains("num_experts"));
        CHECK(r == 80);  // wider than the model (hidden 32): accepted, as PEFT does
        CHECK(names.size() == 2 * 7 * 2);
        for (int layer = 0; layer < 2; ++layer) {
          const auto p = fmt::format("base_model.model.model.layers.{}.", layer);
          CHECK(shape(p + "self_attn.q_proj.lora_A.weight") == std::vector<int64_t>{r, 32});
          CHECK(shape(p + "self_attn.q_proj.lora_B.weight") == std::vector<int64_t>{32, r});
          CHECK(shape(p + "self_attn.v_proj.lora_B.weight") == std::vector<int64_t>{16, r});
          CHECK(shape(p + "mlp.gate_proj.lora_B.weight") == std::vector<int64_t>{64, r});
          CHECK(shape(p + "mlp.down_proj.lora_A.weight") == std::vector<int64_t>{r, 64});
        }
        CHECK(any_nonzero(file, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
      }
    }
    ++index;
  }
}

TEST_CASE("mixlora-train --export-bin writes an adapter_model.bin that torch.load reads back equal",
          "[cli][train]") {
  const std::string python = "/usr/bin/python3";
  if (std::system((python + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0) {
    FAIL(python
         << " cannot import torch: install Debian's python3-torch (apt-get install python3-torch)");
  }
  TempDir ws;
  write_lines(ws / "rows.jsonl", stories_rows(8));
  const auto out_dir = ws / "out";
  const auto result =
      train({"--config", "configs/mixlora.json", "--base-model", stories_dir(), "--output-dir",
             out_dir, "--set", "lora[0].data=" + (ws / "rows.jsonl"), "--set",
             "lora[0].batch_size=4", "--set", "lora[0].micro_batch_size=4", "--export-bin"});
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  const auto dir = out_dir + "/mixlora";
  REQUIRE(fs::is_regular_file(dir + "/adapter_model.bin"));
  const auto names = tensor_names(dir + "/adapter_model.safetensors");
  REQUIRE(names.size() == 5 * (1 + 3 * 4 * 2 + 4 * 2));

  // Reads the safetensors file by hand (8-byte little-endian header length, JSON header, data)
  // and compares every tensor with torch.load's, bit for bit.
  const auto script = ws.write("compare.py", R"PY(
import json, struct, sys, torch
bin_path, st_path = sys.argv[1], sys.argv[2]
sd = torch.load(bin_path, map_location="cpu", weights_only=True)
raw = open(st_path, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
header.pop("__metadata__", None)
data = raw[8 + n:]
assert isinstance(sd, dict), type(sd)
assert set(sd) == set(header), (sorted(set(sd) ^ set(header)))[:5]
for name, info in header.items():
    assert info["dtype"] == "F32", (name, info["dtype"])
    begin, end = info["data_offsets"]
    expected = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).reshape(info["shape"])
    got = sd[name]
    assert got.dtype == torch.float32, (name, got.dtype)
    assert list(got.shape) == info["shape"], (name, list(got.shape), info["shape"])
    assert torch.equal(got, expected), name
nonzero_b = sum(1 for k, v in sd.items() if "lora_B" in k and bool(v.abs().max() > 0))
print(len(sd), nonzero_b)
)PY");
  const auto out = ws / "compare.out";
  const int status =
      std::system(fmt::format("{} {} {} {} >{} 2>&1", python, shell_quote(script),
                              shell_quote(dir + "/adapter_model.bin"),
                              shell_quote(dir + "/adapter_model.safetensors"), shell_quote(out))
                      .c_str());
  const auto text = slurp(out);
  INFO("python: " << text);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  std::istringstream parsed(text);
  size_t keys = 0, nonzero_b = 0;
  parsed >> keys >> nonzero_b;
  CHECK(keys == names.size());
  CHECK(nonzero_b > 0);  // the values compared are trained ones, not just zeros
}

TEST_CASE("mixlora-train rejects bad input with exit code 2 and one line and writes nothing",
          "[cli][train]") {
  TempDir ws;
  const auto good = stories_rows(6);
  // Five good rows and a malformed line in the middle (line 4).
  write_lines(ws / "malformed.jsonl",
              {good[0], good[1], good[2], "{\"input_ids\": [1, 2, 3", good[3], good[4]});
  write_lines(ws / "missing.jsonl", {good[0], good[1], "{\"labels\": [1, 2, 3]}", good[2]});
  write_lines(ws / "oov.jsonl", {good[0], "{\"input_ids\": [1, 261, 600, 262]}", good[1]});
  write_lines(ws / "empty.jsonl", {});
  write_lines(ws / "good.jsonl", good);
  {
    auto config = io::read_json_file(kSource + "/configs/mixlora.json");
    config["lora"][0]["num_expert"] = 8;  // a typo of num_experts
    ws.write("typo.json", config.dump(4));
  }

  struct Case {
    std::string what;
    std::vector<std::string> extra;  // after --config, --base-model, --output-dir and batch sizes
    std::vector<std::string> messages;
    std::string config = "configs/mixlora.json";
    std::string base_model = stories_dir();
    std::string out_dir = "";  // default: a fresh directory in the workspace
  };
  auto data = [&](const std::string& file) {
    return std::vector<std::string>{"--set", "lora[0].data=" + (ws / file)};
  };
  const std::vector<Case> cases = {
      {"malformed JSON line",
       data("malformed.jsonl"),
       {ws / "malformed.jsonl" + ":4: malformed JSON"}},
      {"row without input_ids",
       data("missing.jsonl"),
       {ws / "missing.jsonl" +
            ":3: expected {instruction, input?, output?}, {text} or {input_ids, labels?}",
        "got an object with keys [labels]"}},
      {"token id out of vocabulary",
       data("oov.jsonl"),
       {ws / "oov.jsonl" + ":2: input_ids: token id 600 is outside the vocabulary [0, 512)"}},
      {"empty data file", data("empty.jsonl"), {ws / "empty.jsonl" + ": no usable rows"}},
      {"unknown config key",
       data("good.jsonl"),
       {ws / "typo.json" + ": lora[0].num_expert: unknown key", "did you mean 'num_experts'"},
       ws / "typo.json",
       stories_dir(),
       ""},
      {"top_k > num_experts",
       {"--set", "lora[0].data=" + (ws / "good.jsonl"), "--set", "lora[0].num_experts=8", "--set",
        "lora[0].top_k=9"},
       {"configs/mixlora.json: lora[0].top_k: must be in 1..num_experts (8), got 9"}},
      {"unwritable output dir",
       data("good.jsonl"),
       {"/proc/xyz: cannot create the output directory"},
       "configs/mixlora.json",
       stories_dir(),
       "/proc/xyz"},
      {"missing base model",
       data("good.jsonl"),
       {"/nonexistent-model: base model directory not found"},
       "configs/mixlora.json",
       "/nonexistent-model",
       ""},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto out_dir = c.out_dir.empty() ? ws / fmt::format("out-{}", i) : c.out_dir;
    std::vector<std::string> args = {
        "--config", c.config, "--base-model",         c.base_model, "--output-dir",
        out_dir,    "--set",  "lora[0].batch_size=4", "--set",      "lora[0].micro_batch_size=4"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    DYNAMIC_SECTION(c.what) {
      const auto result = train(args);
      INFO("stderr: " << result.err);
      CHECK(result.exit_code == 2);
      CHECK(count_lines(result.err) == 1);
      CHECK(result.out.empty());
      for (const auto& m : c.messages) CHECK_THAT(result.err, Catch::Matchers::Contains(m));
      CHECK_THAT(result.err, !Catch::Matchers::Contains("terminate") &&
                                 !Catch::Matchers::Contains("Exception raised"));
      // Nothing written for the adapter: no adapter files, no metrics, no half checkpoint.
      const auto written = files_under(fs::path(out_dir));
      INFO("written: " << fmt::format("{}", fmt::join(written, ", ")));
      CHECK(written.empty());
    }
  }

  SECTION("--skip-bad-rows skips the malformed line, counts it and trains on the rest") {
    const auto out_dir = ws / "skip";
    const auto result =
        train({"--config", "configs/mixlora.json", "--base-model", stories_dir(), "--output-dir",
               out_dir, "--set", "lora[0].data=" + (ws / "malformed.jsonl"), "--set",
               "lora[0].batch_size=4", "--set", "lora[0].micro_batch_size=4", "--skip-bad-rows"});
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    CHECK_THAT(result.err, Catch::Matchers::Contains("5 samples"));
    CHECK_THAT(result.err, Catch::Matchers::Contains("1 bad row"));
    CHECK_THAT(result.err, Catch::Matchers::Contains("skipped"));
    CHECK_THAT(result.out, Catch::Matchers::Contains("mixlora: 2 steps"));  // 5 rows, 4 per step
    CHECK(fs::is_regular_file(out_dir + "/mixlora/adapter_model.safetensors"));
  }
}

TEST_CASE(
    "mixlora-train into a finished output dir: refused unless --overwrite and kept by --resume",
    "[cli][train]") {
  TempDir ws;
  write_lines(ws / "rows.jsonl", stories_rows(8));
  const auto out_dir = ws / "out";
  const std::vector<std::string> args = {"--config",     "configs/mixlora.json",
                                         "--base-model", stories_dir(),
                                         "--output-dir", out_dir,
                                         "--set",        "lora[0].data=" + (ws / "rows.jsonl"),
                                         "--set",        "lora[0].batch_size=4",
                                         "--set",        "lora[0].micro_batch_size=4",
                                         "--set",        "log_every=1"};
  auto with = [&](std::vector<std::string> flags) {
    auto a = args;
    a.insert(a.end(), flags.begin(), flags.end());
    return a;
  };
  const auto first = train(args);
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  const auto model_path = out_dir + "/mixlora/adapter_model.safetensors";
  const auto metrics_path = out_dir + "/mixlora/metrics.jsonl";
  const auto bytes = slurp(model_path);
  const auto metrics = slurp(metrics_path);
  const auto mtime = fs::last_write_time(model_path);
  REQUIRE(read_metrics(metrics_path).size() == 2);

  // A plain rerun exits 2 naming --overwrite and leaves the adapter alone.
  const auto again = train(args);
  {
    INFO(again.err);
    CHECK(again.exit_code == 2);
    CHECK(count_lines(again.err) == 1);
    CHECK_THAT(again.err, Catch::Matchers::Contains("--overwrite"));
    CHECK_THAT(again.err, Catch::Matchers::Contains(out_dir + "/mixlora"));
    CHECK(slurp(model_path) == bytes);
    CHECK(slurp(metrics_path) == metrics);
  }
  // --resume and --overwrite together: a usage error, nothing touched.
  const auto both = train(with({"--resume", "--overwrite"}));
  {
    INFO(both.err);
    CHECK(both.exit_code == 2);
    CHECK(count_lines(both.err) == 1);
    CHECK(slurp(model_path) == bytes);
  }
  // --resume on a finished run exits 0 without retraining: file and metrics untouched.
  const auto resumed = train(with({"--resume"}));
  {
    INFO(resumed.err);
    CHECK(resumed.exit_code == 0);
    CHECK_THAT(resumed.err, Catch::Matchers::Contains("already finished"));
    CHECK(slurp(model_path) == bytes);
    CHECK(fs::last_write_time(model_path) == mtime);
    CHECK(slurp(metrics_path) == metrics);
  }
  // --overwrite trains again from scratch: a fresh metrics file, the same deterministic adapter.
  const auto overwritten = train(with({"--overwrite"}));
  {
    INFO(overwritten.err);
    CHECK(overwritten.exit_code == 0);
    CHECK_THAT(overwritten.out, Catch::Matchers::Contains("mixlora: 2 steps"));
    CHECK(read_metrics(metrics_path).size() == 2);
    CHECK(slurp(model_path) == bytes);
  }
}

TEST_CASE("mixlora-train --resume through the CLI reaches the bytes of an uninterrupted run",
          "[cli][train]") {
  TempDir ws;
  // 12 rows, 4 per step (2 micro-batches of 2), 2 epochs: 6 steps, checkpoints at 2 and 4.
  write_lines(ws / "rows.jsonl", stories_rows(12));
  auto args = [&](const std::string& out_dir) {
    return std::vector<std::string>{"--config",     "configs/mixlora.json",
                                    "--base-model", stories_dir(),
                                    "--output-dir", out_dir,
                                    "--set",        "lora[0].data=" + (ws / "rows.jsonl"),
                                    "--set",        "lora[0].batch_size=4",
                                    "--set",        "lora[0].micro_batch_size=2",
                                    "--set",        "lora[0].num_epochs=2",
                                    "--set",        "save_step=2",
                                    "--set",        "lora[0].lr=0.01",
                                    "--set",        "log_every=1"};
  };
  const auto a_dir = ws / "A", b_dir = ws / "B";
  const fs::path a_adapter = fs::path(a_dir) / "mixlora", b_adapter = fs::path(b_dir) / "mixlora";
  const auto a = train(args(a_dir));
  {
    INFO(a.err);
    REQUIRE(a.exit_code == 0);
  }
  CHECK_THAT(a.out, Catch::Matchers::Contains("mixlora: 6 steps"));
  CHECK(fs::is_directory(a_adapter / "checkpoint-2"));
  CHECK(fs::is_directory(a_adapter / "checkpoint-4"));
  CHECK_FALSE(fs::exists(a_adapter / "checkpoint-6"));  // the final adapter, not a checkpoint

  const auto b = train(args(b_dir));
  {
    INFO(b.err);
    REQUIRE(b.exit_code == 0);
  }
  const auto a_bytes = slurp((a_adapter / "adapter_model.safetensors").string());
  REQUIRE(a_bytes.size() > 1000);
  REQUIRE(slurp((b_adapter / "adapter_model.safetensors").string()) == a_bytes);  // deterministic
  // Interrupted after the checkpoint at step 2: the final adapter and the newest checkpoint are
  // gone.
  fs::remove(b_adapter / "adapter_model.safetensors");
  fs::remove(b_adapter / "adapter_config.json");
  fs::remove_all(b_adapter / "checkpoint-4");

  // Without --resume the unfinished run is refused.
  const auto refused = train(args(b_dir));
  {
    INFO(refused.err);
    CHECK(refused.exit_code == 2);
    CHECK(count_lines(refused.err) == 1);
    CHECK_THAT(refused.err, Catch::Matchers::Contains("--resume"));
    CHECK_FALSE(fs::exists(b_adapter / "adapter_model.safetensors"));
  }
  // --resume continues from checkpoint-2 and reaches the uninterrupted run's bytes.
  auto resume_args = args(b_dir);
  resume_args.push_back("--resume");
  const auto resumed = train(resume_args);
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.err, Catch::Matchers::Contains("checkpoint-2 (step 2)"));
  CHECK_THAT(resumed.out, Catch::Matchers::Contains("mixlora: 6 steps"));
  CHECK(slurp((b_adapter / "adapter_model.safetensors").string()) == a_bytes);
  CHECK(slurp((a_adapter / "adapter_config.json").string()) ==
        slurp((b_adapter / "adapter_config.json").string()));
  // The checkpoint at step 4 was written again on the way, identical to A's.
  CHECK(slurp((a_adapter / "checkpoint-4" / "adapter_model.safetensors").string()) ==
        slurp((b_adapter / "checkpoint-4" / "adapter_model.safetensors").string()));
  CHECK(slurp((a_adapter / "checkpoint-4" / "optimizer.safetensors").string()) ==
        slurp((b_adapter / "checkpoint-4" / "optimizer.safetensors").string()));
}

TEST_CASE("mixlora-train --resume of a multi-task run whose adapters stop at different steps",
          "[cli][train]") {
  TempDir ws;
  write_lines(ws / "rows.jsonl", stories_rows(12));
  // multi-task.json's three adapters fused: stories-mixlora 6 steps (2 epochs of 3), stories-switch
  // 3 steps, stories-lora 6 steps; checkpoints every 2 steps.
  auto args = [&](const std::string& out_dir) {
    std::vector<std::string> a = {"--config",     "configs/multi-task.json",
                                  "--base-model", stories_dir(),
                                  "--output-dir", out_dir,
                                  "--set",        "save_step=2",
                                  "--set",        "log_every=1",
                                  "--set",        "lora[0].batch_size=4",
                                  "--set",        "lora[0].micro_batch_size=2",
                                  "--set",        "lora[0].num_epochs=2",
                                  "--set",        "lora[1].batch_size=4",
                                  "--set",        "lora[1].micro_batch_size=4",
                                  "--set",        "lora[2].batch_size=2",
                                  "--set",        "lora[2].micro_batch_size=2"};
    for (int i = 0; i < 3; ++i) {
      a.push_back("--set");
      a.push_back(fmt::format("lora[{}].data={}", i, ws / "rows.jsonl"));
    }
    return a;
  };
  const auto a_dir = ws / "A", b_dir = ws / "B";
  for (const auto& dir : {a_dir, b_dir}) {
    const auto run = train(args(dir));
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Catch::Matchers::Contains("stories-mixlora: 6 steps"));
    CHECK_THAT(run.out, Catch::Matchers::Contains("stories-switch: 3 steps"));
    CHECK_THAT(run.out, Catch::Matchers::Contains("stories-lora: 6 steps"));
  }
  // Interrupted during the fifth fused step: stories-switch had finished, the two others had
  // written checkpoint-4 (lost here) and checkpoint-2.
  const fs::path b(b_dir);
  const auto switch_bytes = slurp((b / "stories-switch" / "adapter_model.safetensors").string());
  for (const std::string name : {"stories-mixlora", "stories-lora"}) {
    fs::remove(b / name / "adapter_model.safetensors");
    fs::remove(b / name / "adapter_config.json");
    REQUIRE(fs::remove_all(b / name / "checkpoint-4") > 0);
  }
  auto resume_args = args(b_dir);
  resume_args.push_back("--resume");
  const auto resumed = train(resume_args);
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.err, Catch::Matchers::Contains("adapter 'stories-switch': already finished"));
  CHECK_THAT(resumed.err, Catch::Matchers::Contains("stories-mixlora/checkpoint-2 (step 2)"));
  CHECK_THAT(resumed.err, Catch::Matchers::Contains("stories-lora/checkpoint-2 (step 2)"));
  CHECK(slurp((b / "stories-switch" / "adapter_model.safetensors").string()) == switch_bytes);
  // After the resume the adapters share fused batches with different partners than before, so
  // the weights agree within fp32 rounding (as fused and alone training do), not bit for bit.
  for (const std::string name : {"stories-mixlora", "stories-switch", "stories-lora"}) {
    INFO("adapter " << name);
    const auto fa =
        io::SafeTensorsFile::open((fs::path(a_dir) / name / "adapter_model.safetensors").string());
    const auto fb = io::SafeTensorsFile::open((b / name / "adapter_model.safetensors").string());
    REQUIRE(fa.tensors().size() == fb.tensors().size());
    double worst = 0.0;
    for (const auto& t : fa.tensors()) {
      const auto x = fa.load(t.name), y = fb.load(t.name);
      REQUIRE(x.sizes() == y.sizes());
      const double scale = std::max(1e-6, x.abs().max().item<double>());
      worst = std::max(worst, (x - y).abs().max().item<double>() / scale);
    }
    CHECK(worst < 1e-5);
  }
}
