// Our adapters in the Python tools, and theirs here (docs/compatibility.md lists what these pin):
//   PEFT loads our LoRA and DoRA adapters and gives our logits;
//   the MixLoRA plugin loads a default mixlora-train adapter and gives mixlora-eval's loss;
//   MoE-PEFT loads our adapters of the three routing strategies and our classifier, and scores
//   mixlora-eval's loss where MoE-PEFT is right; where it is not, the difference is pinned;
//   mixlora-eval loads MoE-PEFT's own adapters (its adapter_model.bin, through the restricted
//   reader) and scores MoE-PEFT's loss.
// Each needs the Python reference venv (MIXLORA_PYTHON, scripts/setup-python-refs.sh) and skips
// without it. The Python scripts are in tests/reference/.
#include "mixlora/adapters/adapter.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/model/decoder.h"

#include "cli_runner.h"
#include "stories_model.h"
#include "test_helpers.h"

#include "catch.h"
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include <ATen/CPUGeneratorImpl.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>

using namespace mixlora;
using namespace mixlora::test;
using Json = nlohmann::json;

namespace {

const std::string kReference = MIXLORA_TEST_SOURCE_DIR "/tests/reference/";

double relative(double a, double b) { return std::abs(a - b) / std::abs(b); }

// Runs a reference script with the venv's python; a FAIL with its stderr if it fails.
void run_script(const std::string& python, const std::string& script,
                const std::vector<std::string>& args, const TempDir& ws) {
  std::string line = shell_quote(python) + " " + shell_quote(kReference + script);
  for (const auto& a : args) line += " " + shell_quote(a);
  const std::string err = ws / (script + ".stderr");
  line += " 2>" + shell_quote(err);
  const int status = std::system(line.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != 0) {
    const auto text = slurp(err);
    FAIL(script << " exited with " << code << ":\n"
                << text.substr(text.size() > 4000 ? text.size() - 4000 : 0));
  }
}

// The same, returning the JSON the script wrote to `out`.
Json run_python(const std::string& python, const std::string& script,
                const std::vector<std::string>& args, const TempDir& ws, const std::string& out) {
  run_script(python, script, args, ws);
  return Json::parse(slurp(out));
}

// mixlora-eval's loss of one adapter on `data`.
Json eval_metrics(const TempDir& ws, const std::string& adapter_dir, const std::string& data,
                  const std::string& flags = "") {
  const std::string report = ws / "eval.json";
  const auto r = run_tool("mixlora-eval --base-model " + shell_quote(stories_dir()) +
                          " --adapter " + shell_quote(adapter_dir) + " --data " +
                          shell_quote(data) + " --output " + shell_quote(report) + flags);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return Json::parse(slurp(report)).at(0).at("metrics");
}

double eval_loss(const TempDir& ws, const std::string& adapter_dir, const std::string& data) {
  return eval_metrics(ws, adapter_dir, data).at("loss").get<double>();
}

// Held-out causal rows of different lengths (20..30 tokens), so that a padded batch has pads.
std::string causal_rows(const TempDir& ws) {
  std::ifstream in(MIXLORA_TEST_SOURCE_DIR "/data/stories/test.jsonl");
  std::vector<std::string> rows;
  std::string line;
  for (int i = 0; i < 6 && std::getline(in, line); ++i) {
    auto ids = Json::parse(line).at("input_ids").get<std::vector<int64_t>>();
    ids.resize(std::min<size_t>(ids.size(), 20 + 2 * i));
    rows.push_back(Json{{"input_ids", ids}}.dump());
  }
  const auto path = ws / "causal.jsonl";
  write_lines(path, rows);
  return path;
}

// Classification rows {input_ids, label} over the same token streams.
std::string classification_rows(const TempDir& ws) {
  std::ifstream in(MIXLORA_TEST_SOURCE_DIR "/data/stories/test.jsonl");
  std::vector<std::string> rows;
  std::string line;
  for (int i = 0; i < 6 && std::getline(in, line); ++i) {
    auto ids = Json::parse(line).at("input_ids").get<std::vector<int64_t>>();
    ids.resize(std::min<size_t>(ids.size(), 12 + i));
    rows.push_back(Json{{"input_ids", ids}, {"label", i % 2}}.dump());
  }
  const auto path = ws / "classification.jsonl";
  write_lines(path, rows);
  return path;
}

// Non-zero random weights everywhere (a fresh adapter's lora_B is zero: it would hide errors).
void randomize(adapters::Adapter& adapter, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& [name, t] : adapter.state_dict()) {
    if (name.find("lora_B") != std::string::npos) {
      t.normal_(0.0, 0.05, generator);
    } else if (name.find("moe_gate") != std::string::npos) {
      t.normal_(0.0, 1.0, generator);
    } else if (name.find("magnitude") != std::string::npos) {
      t.mul_(at::randn(t.sizes(), generator).mul_(0.2).add_(1.0));
    } else if (name == "classifier") {
      t.normal_(0.0, 0.5, generator);
    }
  }
}

config::AdapterConfig mixlora_config(const std::string& name, config::RoutingStrategy strategy) {
  config::AdapterConfig c;
  c.name = name;
  c.peft_type = config::PeftType::mixlora;
  c.routing_strategy = strategy;
  c.num_experts = 4;
  c.top_k = 2;
  c.top_p = 0.6;
  c.lora.r = 4;
  c.lora.lora_alpha = 8;
  c.lora.lora_dropout = 0.05;
  c.target_modules = {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
  return c;
}

}  // namespace

TEST_CASE("PEFT loads our LoRA and DoRA adapters and gives our logits", "[python][interop][peft]") {
  const auto python = reference_python_or_skip();
  if (python.empty()) return;
  for (const bool dora : {false, true}) {
    DYNAMIC_SECTION((dora ? "DoRA" : "LoRA")) {
      TempDir ws;
      config::AdapterConfig c;
      c.name = dora ? "dora" : "lora";
      c.lora.r = 4;
      c.lora.lora_alpha = 8;
      c.use_dora = dora;
      c.target_modules = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                          "gate_proj", "up_proj", "down_proj"};
      auto adapter = adapters::Adapter::create(c, stories(), 3);
      randomize(adapter, 4);
      const auto dir = ws / "adapter";
      adapter.save(dir, stories_dir());

      std::vector<at::Tensor> rows;
      for (const auto& s : copy_task_rows(3))
        rows.push_back(at::tensor(s.input_ids, at::kLong).narrow(0, 0, 24));
      const auto ids = at::stack(rows);
      const model::Decoder decoder(stories());
      adapters::AdapterHooks hooks({{&adapter, 0, ids.size(0)}}, at::Tensor(), false);
      torch::NoGradGuard no_grad;
      const auto logits = decoder.logits(decoder.hidden_states(ids, at::Tensor(), nullptr, &hooks));
      io::save_safetensors(ws / "expected.safetensors",
                           {{"input_ids", ids}, {"logits", logits.contiguous()}});

      const auto out = ws / "peft.json";
      const auto r = run_python(python, "peft_interop.py",
                                {stories_dir(), dir, ws / "expected.safetensors", out}, ws, out);
      INFO(r.dump());
      CHECK(r.at("max_rel_diff").get<double>() < 1e-4);
      if (dora) CHECK(r.at("magnitude_keys").get<int>() == 5 * 7);  // every layer, every target
    }
  }
}

TEST_CASE("the MixLoRA plugin loads a default mixlora-train adapter and scores mixlora-eval's loss",
          "[python][interop][plugin][cli]") {
  const auto python = reference_python_or_skip();
  if (python.empty()) return;
  TempDir ws;
  write_lines(ws / "train.jsonl", stories_rows(8));
  const Json config = {
      {"cutoff_len", 64},
      {"save_step", 1000},
      {"lora",
       {{{"name", "topk"},
         {"data", ws / "train.jsonl"},
         {"peft_type", "MIXLORA"},
         {"routing_strategy", "mixlora"},
         {"num_experts", 4},
         {"top_k", 2},
         {"batch_size", 4},
         {"micro_batch_size", 4},
         {"num_epochs", 2},
         {"lr", 0.05},
         {"r", 4},
         {"lora_alpha", 8},
         {"lora_dropout", 0.05},
         {"target_modules", {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"}}}}}};
  ws.write("config.json", config.dump());
  const auto train = [&](const std::string& out, const std::string& flags) {
    return run_tool("mixlora-train --config " + shell_quote(ws / "config.json") + " --base-model " +
                    shell_quote(stories_dir()) + " --output-dir " + shell_quote(out) + flags);
  };
  const auto r = train(ws / "out", "");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto dir = ws / "out/topk";
  REQUIRE(std::filesystem::is_regular_file(dir + "/adapter_model.bin"));  // written by default

  const auto rows = causal_rows(ws);
  const double ours = eval_loss(ws, dir, rows);
  const auto out = ws / "plugin.json";
  const auto plugin =
      run_python(python, "plugin_interop.py", {stories_dir(), dir, rows, out}, ws, out);
  INFO("ours " << ours << ", plugin " << plugin.dump());
  CHECK(relative(plugin.at("loss").get<double>(), ours) < 1e-4);
  // Pinned plugin defect: model.eval() leaves the experts' dropout on (docs/compatibility.md).
  CHECK(relative(plugin.at("loss_as_is").get<double>(), ours) > 1e-4);

  SECTION("--no-bin writes no adapter_model.bin") {
    const auto again = train(ws / "out-nobin", " --no-bin");
    REQUIRE(again.exit_code == 0);
    CHECK(std::filesystem::is_regular_file(ws / "out-nobin/topk/adapter_model.safetensors"));
    CHECK_FALSE(std::filesystem::exists(ws / "out-nobin/topk/adapter_model.bin"));
  }
}

TEST_CASE("MoE-PEFT loads our adapters of every routing strategy and our classifier",
          "[python][interop][moe-peft]") {
  const auto python = reference_python_or_skip();
  if (python.empty()) return;
  TempDir ws;
  const auto causal = causal_rows(ws);
  const auto classification = classification_rows(ws);
  using config::RoutingStrategy;

  struct Made {
    std::string name, data;
  };
  std::vector<Made> made;
  const auto save = [&](config::AdapterConfig c, const std::string& data, uint64_t seed) {
    auto adapter = adapters::Adapter::create(c, stories(), seed);
    randomize(adapter, seed + 100);
    adapter.save(ws / c.name, stories_dir(), /*export_bin=*/true);
    made.push_back({c.name, data});
  };
  config::AdapterConfig lora;
  lora.name = "lora";
  lora.lora.r = 4;
  lora.lora.lora_alpha = 8;
  lora.target_modules = {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
  save(lora, causal, 1);
  save(mixlora_config("topk", RoutingStrategy::mixlora), causal, 2);
  save(mixlora_config("dynamic", RoutingStrategy::mixlora_dynamic), causal, 3);
  auto hot = mixlora_config("dynamic-t2", RoutingStrategy::mixlora_dynamic);
  hot.temperature = 2.0;
  save(hot, causal, 3);
  auto switch_config = mixlora_config("switch", RoutingStrategy::mixlora_switch);
  switch_config.expert_capacity = 6;  // rows of 20..30 tokens over 4 experts: some tokens overflow
  switch_config.jitter_noise = 0.0;
  save(switch_config, causal, 4);
  auto glue = mixlora_config("glue", RoutingStrategy::mixlora);
  glue.task_name = "glue:sst2";
  glue.num_labels = 2;
  save(glue, classification, 5);
  // MoE-PEFT's LoRAMoE (plain LoRA on q/v, dense mixtures on the MLP) and MoLA (top-2 mixtures on
  // every target, with its router loss).
  auto loramoe = mixlora_config("loramoe", RoutingStrategy::mixlora);
  loramoe.peft_type = config::PeftType::loramoe;
  loramoe.num_experts = 3;
  loramoe.router_init_range = 5.0;
  loramoe.router_loss = false;
  save(loramoe, causal, 6);
  auto mola = mixlora_config("mola", RoutingStrategy::mixlora);
  mola.peft_type = config::PeftType::mola;
  mola.router_init_range = 5.0;
  mola.router_aux_loss_coef = 0.01;
  save(mola, causal, 7);

  std::vector<std::string> specs;
  for (const auto& m : made) specs.push_back(ws / m.name + ":" + m.data);
  const auto out = ws / "moe_peft.json";
  std::vector<std::string> args = {"score", stories_dir(), out};
  args.insert(args.end(), specs.begin(), specs.end());
  const auto theirs = run_python(python, "moe_peft_interop.py", args, ws, out);

  std::map<std::string, double> ours;
  for (const auto& m : made) ours[m.name] = eval_loss(ws, ws / m.name, m.data);
  const auto their = [&](const std::string& name, const char* key) {
    return theirs.at(ws / name).at(key).get<double>();
  };
  std::string ours_text;
  for (const auto& [name, loss] : ours) ours_text += fmt::format("{}: {:.8f}; ", name, loss);
  INFO("theirs " << theirs.dump(1) << "\nours " << ours_text);

  // Where MoE-PEFT is right (dropout off by hand, one row per batch): the same loss.
  for (const char* name : {"lora", "topk", "dynamic", "glue", "loramoe", "mola"}) {
    INFO(name);
    CHECK(relative(their(name, "loss"), ours[name]) < 1e-4);
    CHECK(their(name, "loss_again") == their(name, "loss"));
  }
  // MoLA's load-balancing loss over all its projections' routers, one row per batch as there.
  const double our_aux =
      eval_metrics(ws, ws / "mola", causal, " --batch-size 1").at("aux_loss").get<double>();
  CHECK(our_aux > 0.01);  // top-2 of 4: the loss is near k = 2 times the coefficient
  CHECK(relative(their("mola", "aux"), our_aux) < 1e-5);
  // Switch routes only in MoE-PEFT's training mode (capacity overflow included): the same loss
  // there.
  CHECK(relative(their("switch", "loss_train_mode"), ours["switch"]) < 1e-4);

  // Pinned MoE-PEFT defects (docs/compatibility.md); a change on either side shows here.
  // 1. Switch returns its input at inference: the FFN is skipped, the loss is another model's.
  CHECK(relative(their("switch", "loss"), ours["switch"]) > 1e-3);
  // 2. Dynamic routing divides the softmax probabilities by the temperature (we divide the logits).
  CHECK(relative(their("dynamic-t2", "loss"), ours["dynamic-t2"]) > 1e-4);
  // 3. A padded batch counts its pads as targets.
  CHECK(relative(their("topk", "loss_padded"), ours["topk"]) > 1e-3);
  // 4. LoRA dropout stays on in inference mode: two passes differ, and neither is ours.
  CHECK(their("topk", "loss_as_is") != their("topk", "loss_as_is_again"));
  CHECK(relative(their("topk", "loss_as_is"), ours["topk"]) > 1e-5);
}

TEST_CASE(
    "mixlora-eval loads MoE-PEFT's own adapters (adapter_model.bin, GLUE head) and scores its loss",
    "[python][interop][moe-peft][cli]") {
  const auto python = reference_python_or_skip();
  if (python.empty()) return;
  TempDir ws;
  const auto causal = causal_rows(ws);
  const auto classification = classification_rows(ws);
  const auto made = ws / "made";
  std::filesystem::create_directories(made);
  run_script(python, "moe_peft_interop.py", {"make", stories_dir(), made}, ws);
  // MoE-PEFT's GLUE adapter has no task_name in its config: its own loader needs to be told.
  const std::vector<std::pair<std::string, std::string>> adapters = {
      {"lora", causal + ""},
      {"mixlora", causal},
      {"mixlora-dynamic", causal},
      {"mixlora-switch", causal},
      {"glue_sst2", classification + ":glue:sst2"},
      {"loramoe", causal},
      {"mola", causal}};
  const auto out = ws / "moe_peft.json";
  std::vector<std::string> args = {"score", stories_dir(), out};
  for (const auto& [name, spec] : adapters) args.push_back(made + "/" + name + ":" + spec);
  const auto theirs = run_python(python, "moe_peft_interop.py", args, ws, out);
  INFO(theirs.dump(1));
  for (const auto& [name, spec] : adapters) {
    INFO(name);
    const auto data = name == "glue_sst2" ? classification : causal;
    const double ours = eval_loss(ws, made + "/" + name, data);
    // Switch routes only in MoE-PEFT's training mode (see the test above).
    const char* key = name == "mixlora-switch" ? "loss_train_mode" : "loss";
    CHECK(relative(theirs.at(made + "/" + name).at(key).get<double>(), ours) < 1e-4);
  }
}

TEST_CASE("mixlora-train warns about the config values the Python tools refuse, naming the key",
          "[interop][config][cli]") {
  TempDir ws;
  write_lines(ws / "train.jsonl", stories_rows(4));
  const Json config = {{"cutoff_len", 64},
                       {"lora",
                        {{{"name", "a"},
                          {"data", ws / "train.jsonl"},
                          {"batch_size", 4},
                          {"num_epochs", 1},
                          {"r", 2},
                          {"lora_alpha", 16.5},
                          {"lora_dropout", 0},
                          {"target_modules", {"q_proj"}}}}}};
  ws.write("config.json", config.dump());
  const auto r =
      run_tool("mixlora-train --config " + shell_quote(ws / "config.json") + " --base-model " +
               shell_quote(stories_dir()) + " --output-dir " + shell_quote(ws / "out"));
  // Config warnings come before the app's logger is set up (spdlog's default logger: stdout).
  const auto printed = r.err + r.out;
  INFO(printed);
  REQUIRE(r.exit_code == 0);  // a warning, not an error: the adapter is fine here
  CHECK_THAT(printed, Catch::Matchers::Contains("lora[0].lora_alpha: 16.5 is not an integer"));
  CHECK_THAT(printed, Catch::Matchers::Contains("lora[0].lora_dropout: 0"));
  CHECK_THAT(printed, Catch::Matchers::Contains("MixLoRA plugin and MoE-PEFT refuse"));
}
