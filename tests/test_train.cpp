// The training loop: optimizers and schedules against hand-computed values, fused training
// equal to training alone, exact resume, determinism, and output-directory safety.
#include "mixlora/adapters/adapter.h"
#include "mixlora/common/error.h"
#include "mixlora/data/pretokenized.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/model/base_model.h"
#include "mixlora/train/optimizer.h"
#include "mixlora/train/scheduler.h"
#include "mixlora/train/trainer.h"

#include "catch.h"
#include "stories_model.h"
#include "test_helpers.h"
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace mixlora;
using mixlora::test::stories;

namespace {

using mixlora::test::copy_task_rows;

config::AdapterConfig adapter(const std::string& name, config::PeftType type,
                              config::RoutingStrategy strategy = config::RoutingStrategy::mixlora) {
  config::AdapterConfig c;
  c.name = name;
  c.peft_type = type;
  c.routing_strategy = strategy;
  c.lora = {4, 8.0, 0.05};  // dropout on: each adapter draws from its own generator
  c.num_experts = 4;
  c.top_k = 2;
  c.lr = 5e-3;
  c.batch_size = 8;
  c.micro_batch_size = 4;
  c.num_epochs = 1;
  c.target_modules = {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
  return c;
}

struct Run {
  test::TempDir scratch;
  const fs::path dir = scratch.path;

  std::vector<train::AdapterSummary> train(
      std::vector<config::AdapterConfig> adapters, size_t rows, int64_t simultaneous = 4,
      int64_t save_step = 1000, bool resume = false, int64_t eval_every = 0,
      const std::vector<std::vector<data::TaskData>>& eval_sets = {}) {
    config::TrainConfig c;
    c.adapters = adapters;
    c.output_dir = dir.string();
    c.train_lora_simultaneously_num = simultaneous;
    c.save_step = save_step;
    c.log_every = 1;
    c.eval_every = eval_every;
    train::TrainerOptions options;
    options.base_model_name = test::stories_dir();
    options.resume = resume;
    train::prepare_output(c, options);
    std::vector<std::vector<data::Sample>> samples;
    for (size_t i = 0; i < adapters.size(); ++i) samples.push_back(copy_task_rows(rows));
    return train::train(c, stories(), samples, options, eval_sets);
  }

  std::map<std::string, at::Tensor> weights(const std::string& name) const {
    auto file = io::SafeTensorsFile::open((dir / name / "adapter_model.safetensors").string());
    std::map<std::string, at::Tensor> out;
    for (const auto& info : file.tensors()) out[info.name] = file.load(info.name);
    return out;
  }
  std::string bytes(const std::string& name) const {
    return test::slurp((dir / name / "adapter_model.safetensors").string());
  }
};

double max_difference(const std::map<std::string, at::Tensor>& a,
                      const std::map<std::string, at::Tensor>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (const auto& [name, t] : a)
    worst = std::max(worst, (t - b.at(name)).abs().max().item<double>());
  return worst;
}

}  // namespace

TEST_CASE("AdamW and SGD follow PyTorch's update rules", "[train][optim]") {
  auto p = at::tensor(std::vector<float>{1.0f, -2.0f}).requires_grad_(true);
  p.mutable_grad() = at::tensor(std::vector<float>{0.5f, -0.25f});
  auto adamw = train::make_adamw({p}, {0.9, 0.999, 1e-8, 0.01});
  adamw->step(0.1);
  // Step 1: p *= (1 - lr*wd); m = 0.1 g; v = 0.001 g^2; p -= lr * (m / 0.1) / (sqrt(v / 0.001) +
  // eps) = p - 0.1 * sign(g) (up to eps).
  CHECK(p[0].item<double>() == Approx(1.0 * (1 - 0.001) - 0.1).epsilon(1e-6));
  CHECK(p[1].item<double>() == Approx(-2.0 * (1 - 0.001) + 0.1).epsilon(1e-6));
  const auto state = adamw->state();
  CHECK(state.size() == 5);  // format_version, step, step.0, exp_avg.0, exp_avg_sq.0

  auto q = at::tensor(std::vector<float>{1.0f}).requires_grad_(true);
  auto sgd = train::make_sgd({q}, {0.9, 0.1});
  q.mutable_grad() = at::tensor(std::vector<float>{1.0f});
  sgd->step(0.5);  // g' = 1 + 0.1*1 = 1.1; buf = 1.1; q = 1 - 0.55
  CHECK(q.item<double>() == Approx(0.45));
  q.mutable_grad() = at::tensor(std::vector<float>{1.0f});
  sgd->step(0.5);  // g' = 1 + 0.045 = 1.045; buf = 0.99 + 1.045 = 2.035; q = 0.45 - 1.0175
  CHECK(q.item<double>() == Approx(0.45 - 0.5 * 2.035));

  auto r = at::tensor(std::vector<float>{0.0f, 0.0f}).requires_grad_(true);
  r.mutable_grad() = at::tensor(std::vector<float>{3.0f, 4.0f});
  CHECK(train::clip_grad_norm({r}, 1.0) == Approx(5.0));
  CHECK(r.grad().norm().item<double>() == Approx(1.0).epsilon(1e-5));
}

TEST_CASE("learning-rate schedules", "[train][optim]") {
  train::Schedule s{config::SchedulerType::linear, 2, 10};
  CHECK(train::lr_factor(s, 0) == 0.0);
  CHECK(train::lr_factor(s, 1) == 0.5);
  CHECK(train::lr_factor(s, 2) == 1.0);
  CHECK(train::lr_factor(s, 6) == Approx(0.5));
  s.type = config::SchedulerType::cosine;
  CHECK(train::lr_factor(s, 6) == Approx(0.5));
  CHECK(train::lr_factor(s, 4) == Approx(0.5 * (1 + std::cos(M_PI * 0.25))));
  s.type = config::SchedulerType::constant_with_warmup;
  CHECK(train::lr_factor(s, 1) == 0.5);
  CHECK(train::lr_factor(s, 9) == 1.0);
  s.type = config::SchedulerType::constant;
  CHECK(train::lr_factor(s, 0) == 1.0);
  CHECK(train::warmup_steps(0, 0.1, 95) == 10);
  CHECK(train::warmup_steps(3, 0.1, 95) == 3);
}

// Bitwise with a single-threaded BLAS (CTest runs with OPENBLAS_NUM_THREADS=1): threaded
// OpenBLAS sums a row differently depending on the batch's row count (~1e-6 relative), and
// AdamW turns such noise in near-zero gradients into lr-sized steps, so only the
// single-threaded comparison shows that fusion itself couples nothing.
TEST_CASE("an adapter trained fused with others equals the same adapter trained alone", "[train]") {
  const auto mix = adapter("mix", config::PeftType::mixlora);
  const auto sw =
      adapter("switch", config::PeftType::mixlora, config::RoutingStrategy::mixlora_switch);
  const auto plain = adapter("plain", config::PeftType::lora);
  Run fused, alone_mix, alone_plain;
  fused.train({mix, sw, plain}, 24, /*simultaneous=*/3);
  alone_mix.train({mix}, 24);
  alone_plain.train({plain}, 24);
  CHECK(max_difference(fused.weights("mix"), alone_mix.weights("mix")) < 1e-5);
  CHECK(max_difference(fused.weights("plain"), alone_plain.weights("plain")) < 1e-5);
  // The adapters did move.
  CHECK(alone_mix.weights("mix")
            .at("mixlora.layers.0.mlp.up_proj.experts.0.lora_B.weight")
            .abs()
            .sum()
            .item<double>() > 0);
}

TEST_CASE("training is deterministic and --resume ends with the same bytes", "[train]") {
  const auto mix =
      adapter("mix", config::PeftType::mixlora, config::RoutingStrategy::mixlora_dynamic);
  Run first, second, resumed;
  const auto summary =
      first.train({mix}, 40, 4, /*save_step=*/2);  // 5 steps, checkpoints at 2 and 4
  second.train({mix}, 40, 4, 2);
  CHECK(first.bytes("mix") == second.bytes("mix"));
  CHECK(summary[0].steps == 5);
  CHECK(fs::exists(first.dir / "mix" / "checkpoint-4" / "optimizer.safetensors"));
  CHECK(fs::exists(first.dir / "mix" / "metrics.jsonl"));

  // Interrupted after step 2: only checkpoint-2 survived.
  resumed.train({mix}, 40, 4, 2);
  fs::remove_all(resumed.dir / "mix" / "checkpoint-4");
  fs::remove(resumed.dir / "mix" / "adapter_model.safetensors");
  fs::remove(resumed.dir / "mix" / "adapter_config.json");
  // A half-written checkpoint directory is never taken as complete.
  fs::create_directories(resumed.dir / "mix" / ".checkpoint-6.tmp");
  const auto after = resumed.train({mix}, 40, 4, 2, /*resume=*/true);
  CHECK(after[0].steps == 5);
  CHECK(resumed.bytes("mix") == first.bytes("mix"));
  // The metrics log holds each step once: the records after checkpoint-2 were dropped and
  // re-logged.
  std::ifstream metrics(resumed.dir / "mix" / "metrics.jsonl");
  std::vector<int64_t> steps;
  for (std::string line; std::getline(metrics, line);)
    steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  CHECK(steps == std::vector<int64_t>{1, 2, 3, 4, 5});
}

TEST_CASE(
    "eval_every scores the held-out set with mixlora-eval's numbers and leaves training unchanged",
    "[train][eval]") {
  const auto mix = adapter("mix", config::PeftType::mixlora);
  data::TaskData held_out;
  held_out.task_name = "casual";
  held_out.samples = copy_task_rows(48);
  held_out.samples.erase(held_out.samples.begin(),
                         held_out.samples.begin() + 40);  // rows the run never sees
  Run plain, evaluated;
  plain.train({mix}, 40);
  evaluated.train({mix}, 40, 4, 1000, false, /*eval_every=*/2, {{held_out}});  // 5 steps
  CHECK(evaluated.bytes("mix") == plain.bytes("mix"));

  std::ifstream metrics(evaluated.dir / "mix" / "metrics.jsonl");
  std::vector<int64_t> eval_steps;
  nlohmann::json last;
  for (std::string line; std::getline(metrics, line);) {
    const auto record = nlohmann::json::parse(line);
    if (!record.contains("eval")) continue;
    eval_steps.push_back(record["step"].get<int64_t>());
    last = record["eval"].at(0);
  }
  CHECK(eval_steps == std::vector<int64_t>{2, 4, 5});  // every 2 steps and at the end
  // The last record scores the saved adapter exactly as the standalone evaluator does.
  const auto saved = adapters::Adapter::load((evaluated.dir / "mix").string(), stories());
  const auto reference =
      eval::evaluate(model::Decoder(stories()), {{&saved, "casual", &held_out.samples}},
                     mix.evaluate_batch_size, 0);
  CHECK(last["task_name"] == "casual");
  CHECK(last["metrics"]["samples"] == 8);
  CHECK(last["metrics"]["loss"].get<double>() == Approx(reference.at(0).loss).epsilon(1e-6));
  CHECK(last["metrics"]["aux_loss"].get<double>() ==
        Approx(*reference.at(0).aux_loss).epsilon(1e-6));
}

TEST_CASE("training lowers the loss of the copy task", "[train]") {
  auto mix = adapter("mix", config::PeftType::mixlora);
  mix.lr = 1e-2;
  mix.num_epochs = 2;
  Run run;
  const auto summary = run.train({mix}, 64);
  CHECK(summary[0].steps == 16);
  CHECK(summary[0].last_loss < summary[0].first_loss - 0.3);
}

TEST_CASE("output directory safety", "[train]") {
  const auto plain = adapter("plain", config::PeftType::lora);
  Run run;
  run.train({plain}, 8);
  config::TrainConfig c;
  c.adapters = {plain};
  c.output_dir = run.dir.string();
  train::TrainerOptions options;
  REQUIRE_INPUT_ERROR(
      train::prepare_output(c, options),
      Catch::Matchers::Contains("a finished adapter is already there (use --overwrite"));
  fs::remove(run.dir / "plain" / "adapter_model.safetensors");
  REQUIRE_INPUT_ERROR(train::prepare_output(c, options), Catch::Matchers::Contains("use --resume"));
  options.overwrite = true;
  train::prepare_output(c, options);
  // Checking removes nothing: --overwrite takes effect when train() starts, once the model and
  // data have loaded, so a run that fails before keeps the old adapter.
  CHECK(fs::exists(run.dir / "plain" / "metrics.jsonl"));
  c.output_dir = "/proc/mixlora-cannot-write";
  REQUIRE_INPUT_ERROR(train::prepare_output(c, options),
                      Catch::Matchers::Contains("/proc/mixlora-cannot-write"));
}
