// Training parity with PyTorch (docs/training-parity.md): AdamW's per-parameter step count, old
// checkpoints still resuming, starting from an existing adapter (--init-adapter), and the
// llm.c-style reference test that diffs logits, losses, every gradient and ten AdamW steps
// against transformers + a plain-PyTorch MixLoRA (tests/reference/training_reference.py).
#include "mixlora/adapters/adapter.h"
#include "mixlora/adapters/adapter_init.h"
#include "mixlora/common/error.h"
#include "mixlora/config/train_config.h"
#include "mixlora/data/sample.h"
#include "mixlora/io/json_file.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/model/decoder.h"
#include "mixlora/train/optimizer.h"
#include "mixlora/train/step.h"
#include "mixlora/train/trainer.h"

#include "catch.h"
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include "cli_runner.h"
#include "stories_model.h"
#include "test_helpers.h"

#include <cstdlib>
#include <filesystem>
#include <set>

namespace fs = std::filesystem;
using namespace mixlora;
using mixlora::test::stories;

namespace {

at::Tensor floats(std::vector<float> values) { return at::tensor(values); }

// max |a - b| / max |b|: the error relative to the tensor's scale.
double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  const double scale = std::max(expected.abs().max().item<double>(), 1e-30);
  return (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>() / scale;
}

}  // namespace

// The numbers are torch.optim.AdamW's (torch 2.11, lr 0.1, weight_decay 0.01): parameter b has no
// gradient in the first step (an expert that got no tokens), so PyTorch leaves it untouched and
// its first update, in step 2, is a first step: b = 1 * (1 - 0.001) - 0.1 = 0.899.
TEST_CASE(
    "AdamW counts steps per parameter and skips parameters without a gradient, as "
    "torch.optim.AdamW",
    "[train][optim][parity]") {
  auto a = floats({1.0f, -2.0f}).requires_grad_(true);
  auto b = floats({1.0f}).requires_grad_(true);
  auto adamw = train::make_adamw({a, b}, {0.9, 0.999, 1e-8, 0.01});
  a.mutable_grad() = floats({0.5f, -0.25f});
  adamw->step(0.1);
  adamw->zero_grad();
  CHECK(a[0].item<double>() == Approx(0.8990000486373901).epsilon(1e-7));
  CHECK(b.item<double>() == 1.0);  // no gradient: no decay, no update, no step counted
  CHECK(adamw->parameter_steps(1) == 0);

  a.mutable_grad() = floats({0.5f, -0.25f});
  b.mutable_grad() = floats({0.5f});
  adamw->step(0.1);
  adamw->zero_grad();
  CHECK(a[0].item<double>() == Approx(0.798101007938385).epsilon(1e-7));
  CHECK(a[1].item<double>() == Approx(-1.7961020469665527).epsilon(1e-7));
  // One global count would give 0.925 here (bias corrections of step 2 on a first moment).
  CHECK(b.item<double>() == Approx(0.8990000486373901).epsilon(1e-7));

  a.mutable_grad() = floats({-0.25f, 1.0f});
  b.mutable_grad() = floats({0.25f});
  adamw->step(0.1);
  CHECK(a[0].item<double>() == Approx(0.7457375526428223).epsilon(1e-7));
  CHECK(a[1].item<double>() == Approx(-1.828789234161377).epsilon(1e-7));
  CHECK(b.item<double>() == Approx(0.8048830628395081).epsilon(1e-7));
  CHECK(adamw->parameter_steps(0) == 3);
  CHECK(adamw->parameter_steps(1) == 2);

  // The state carries the format and both counts; it round-trips.
  std::map<std::string, int64_t> scalars;
  for (const auto& [name, t] : adamw->state())
    if (name == "format_version" || name.rfind("step", 0) == 0) scalars[name] = t.item<int64_t>();
  CHECK(scalars == std::map<std::string, int64_t>{
                       {"format_version", 2}, {"step", 3}, {"step.0", 3}, {"step.1", 2}});
  auto c = a.detach().clone().requires_grad_(true), d = b.detach().clone().requires_grad_(true);
  auto copy = train::make_adamw({c, d}, {0.9, 0.999, 1e-8, 0.01});
  copy->load_state(adamw->state());
  CHECK(copy->parameter_steps(1) == 2);
}

TEST_CASE("optimizer state of format 1 (one global step count) still loads and continues as before",
          "[train][optim][parity]") {
  // What format 1 saved after two steps of a with g = (0.5, -0.25): m = 0.19 g, v = 0.001999 g^2.
  auto a = floats({0.798101007938385f, -1.7961020469665527f}).requires_grad_(true);
  auto b = floats({1.0f}).requires_grad_(true);
  std::vector<std::pair<std::string, at::Tensor>> old_state = {
      {"step", at::tensor(int64_t{2})},
      {"exp_avg.0", floats({0.095f, -0.0475f})},
      {"exp_avg_sq.0", floats({0.00049975f, 0.0001249375f})}};
  auto adamw = train::make_adamw({a, b}, {0.9, 0.999, 1e-8, 0.01});
  adamw->load_state(old_state);
  CHECK(adamw->parameter_steps(0) == 2);  // the global count, for each parameter with state
  CHECK(adamw->parameter_steps(1) == 0);  // no state: never updated
  a.mutable_grad() = floats({-0.25f, 1.0f});
  adamw->step(0.1);
  CHECK(a[0].item<double>() == Approx(0.7457375526428223).epsilon(1e-6));
  CHECK(a[1].item<double>() == Approx(-1.828789234161377).epsilon(1e-6));

  auto newer = old_state;
  newer.emplace_back("format_version", at::tensor(int64_t{3}));
  REQUIRE_INPUT_ERROR(adamw->load_state(newer), Catch::Contains("format_version 3"));
}

namespace {

config::AdapterConfig lora_adapter(const std::string& name) {
  config::AdapterConfig c;
  c.name = name;
  c.peft_type = config::PeftType::lora;
  c.lora = {4, 8.0, 0.05};
  c.lr = 5e-3;
  c.batch_size = 8;
  c.micro_batch_size = 4;
  c.num_epochs = 1;
  c.target_modules = {"q_proj", "v_proj", "gate_proj", "down_proj"};
  return c;
}

struct Run {
  test::TempDir scratch;
  const fs::path dir = scratch.path;

  std::vector<train::AdapterSummary> train(std::vector<config::AdapterConfig> adapters, size_t rows,
                                           int64_t save_step = 1000, bool resume = false) {
    config::TrainConfig c;
    c.adapters = adapters;
    c.output_dir = dir.string();
    c.save_step = save_step;
    c.log_every = 1;
    train::TrainerOptions options;
    options.base_model_name = test::stories_dir();
    options.resume = resume;
    train::prepare_output(c, options);
    std::vector<std::vector<data::Sample>> samples;
    for (size_t i = 0; i < adapters.size(); ++i) samples.push_back(test::copy_task_rows(rows));
    return train::train(c, stories(), samples, options);
  }
  std::string bytes(const std::string& name) const {
    return test::slurp((dir / name / "adapter_model.safetensors").string());
  }
};

// Rewrites a checkpoint's optimizer state the way format 1 wrote it: no version, no per-parameter
// steps.
void downgrade_to_format_1(const fs::path& checkpoint) {
  const auto path = (checkpoint / "optimizer.safetensors").string();
  std::vector<std::pair<std::string, at::Tensor>> kept;
  {
    const auto file = io::SafeTensorsFile::open(path);
    for (const auto& info : file.tensors()) {
      if (info.name == "format_version" || info.name.rfind("step.", 0) == 0) continue;
      kept.emplace_back(info.name, file.load(info.name).clone());
    }
  }
  REQUIRE(kept.size() > 2);
  io::save_safetensors(path, kept);
}

}  // namespace

TEST_CASE("a checkpoint of format 1 resumes to the same adapter as an uninterrupted run",
          "[train][optim][parity]") {
  const auto plain = lora_adapter("plain");
  Run whole, resumed;
  whole.train({plain}, 24, /*save_step=*/2);  // 3 steps
  resumed.train({plain}, 24, 2);
  fs::remove(resumed.dir / "plain" / "adapter_model.safetensors");
  fs::remove(resumed.dir / "plain" / "adapter_config.json");
  downgrade_to_format_1(resumed.dir / "plain" / "checkpoint-2");
  const auto after = resumed.train({plain}, 24, 2, /*resume=*/true);
  CHECK(after[0].steps == 3);
  // Every parameter of a plain LoRA has a gradient in every step: format 1's global count was
  // each parameter's own count, and the resumed run continues bit for bit.
  CHECK(resumed.bytes("plain") == whole.bytes("plain"));
}

TEST_CASE("init_adapter starts training from an existing adapter's weights",
          "[train][init-adapter]") {
  const auto& base = stories();
  test::TempDir dir;
  auto config = lora_adapter("start");
  config.lora.lora_dropout = 0.0;
  auto start = adapters::Adapter::create(config, base, 7);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : start.state_dict()) t.normal_(0.0, 0.1);  // B nonzero too
  }
  const auto start_dir = (dir.path / "start").string();
  start.save(start_dir, "stories260K");

  SECTION("the trainer starts from the weights: with lr 0 they come out unchanged") {
    Run run;
    auto trained = lora_adapter("continued");
    trained.lora.lora_dropout = 0.0;
    trained.lr = 0.0;
    trained.init_adapter = start_dir;
    run.train({trained}, 8);
    CHECK(run.bytes("continued") == test::slurp(start_dir + "/adapter_model.safetensors"));
  }
  SECTION("the config must describe the same adapter") {
    auto target = adapters::Adapter::create(config, base, 1);
    adapters::init_from_adapter(target, start_dir, base);
    for (size_t i = 0; i < target.state_dict().size(); ++i) {
      CHECK(at::equal(target.state_dict()[i].second, start.state_dict()[i].second));
    }
    auto other = config;
    other.lora.r = 8;
    auto wider = adapters::Adapter::create(other, base, 1);
    REQUIRE_INPUT_ERROR(
        adapters::init_from_adapter(wider, start_dir, base),
        Catch::Contains("init adapter has r 4 but adapter 'start' is configured with 8"));
    other = config;
    other.target_modules = {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
    auto more = adapters::Adapter::create(other, base, 1);
    REQUIRE_INPUT_ERROR(adapters::init_from_adapter(more, start_dir, base),
                        Catch::Contains("target_modules"));
    other = config;
    other.peft_type = config::PeftType::mixlora;
    auto mix = adapters::Adapter::create(other, base, 1);
    REQUIRE_INPUT_ERROR(adapters::init_from_adapter(mix, start_dir, base),
                        Catch::Contains("peft_type"));
    // A file whose tensor has the wrong shape for the base: named.
    auto tensors = start.state_dict();
    std::vector<std::pair<std::string, at::Tensor>> bad;
    for (auto& [name, t] : tensors) bad.emplace_back(name, t.detach().clone());
    bad[0].second = at::zeros({4, 7});
    const auto bad_dir = dir.path / "bad";
    fs::create_directories(bad_dir);
    io::save_safetensors((bad_dir / "adapter_model.safetensors").string(), bad);
    fs::copy_file(dir.path / "start" / "adapter_config.json", bad_dir / "adapter_config.json");
    REQUIRE_INPUT_ERROR(adapters::init_from_adapter(target, bad_dir.string(), base),
                        Catch::Contains(bad[0].first));
  }
  SECTION("--init-adapter DIR or NAME=DIR") {
    config::TrainConfig c;
    c.adapters = {lora_adapter("a")};
    config::apply_init_adapters(c, {"/x/y"});
    CHECK(c.adapters[0].init_adapter == "/x/y");
    c.adapters.push_back(lora_adapter("b"));
    config::apply_init_adapters(c, {"b=/p=q", "a=/r"});
    CHECK(c.adapters[1].init_adapter == "/p=q");
    CHECK(c.adapters[0].init_adapter == "/r");
    REQUIRE_INPUT_ERROR(config::apply_init_adapters(c, {"/x/y"}),
                        Catch::Contains("say which: --init-adapter NAME=DIR"));
    const auto parsed = config::parse_train_config(
        nlohmann::json::parse(R"({"lora": [{"name": "a", "init_adapter": "prev/a"}]})"),
        "cfg.json");
    CHECK(parsed.adapters[0].init_adapter == "prev/a");
  }
}

// llm.c's test_gpt2 for MixLoRA: the reference script writes, for a fixed stories260K batch and a
// nonzero initial adapter per case, the logits, losses, every gradient and the losses of ten
// torch.optim.AdamW steps; we start from the same adapter (through init_from_adapter, the
// --init-adapter path) and must agree: gradients 1e-4 and losses 1e-5 relative, and the same
// tensors without a gradient (idle experts) in every step.
TEST_CASE(
    "training matches the PyTorch reference step for step (tests/reference/training_reference.py)",
    "[train][parity][reference]") {
  const auto python = test::reference_python_or_skip();
  if (python.empty()) return;
  test::TempDir dir;
  const auto log = dir / "reference.log";
  const auto command = fmt::format(
      "{} {} {} >{} 2>&1", test::shell_quote(python),
      test::shell_quote(MIXLORA_TEST_SOURCE_DIR "/tests/reference/training_reference.py"),
      test::shell_quote(dir.str()), test::shell_quote(log));
  const int status = std::system(command.c_str());
  INFO(test::slurp(log));
  REQUIRE(status == 0);
  const auto meta = io::read_json_file(dir / "reference.json");
  const auto reference = io::SafeTensorsFile::open(dir / "reference.safetensors");
  const auto& base = stories();
  const model::Decoder decoder(base);

  std::vector<data::Sample> samples;
  for (size_t row = 0; row < meta["input_ids"].size(); ++row) {
    data::Sample s;
    for (size_t t = 0; t < meta["input_ids"][row].size(); ++t) {
      if (meta["attention_mask"][row][t] == 0) break;
      s.input_ids.push_back(meta["input_ids"][row][t]);
      s.labels.push_back(meta["labels"][row][t]);
    }
    samples.push_back(s);
  }
  std::vector<const data::Sample*> rows;
  for (const auto& s : samples) rows.push_back(&s);
  const auto batch = data::make_batch(rows, meta["pad_id"].get<int64_t>());
  const int64_t batch_rows = batch.input_ids.size(0);
  for (int64_t r = 0; r < batch_rows; ++r) {
    const auto expected = meta["input_ids"][r].get<std::vector<int64_t>>();
    REQUIRE(at::equal(batch.input_ids[r], at::tensor(expected)));
  }

  const int64_t steps = meta["steps"];
  const double lr = meta["lr"], weight_decay = meta["weight_decay"];
  for (const auto& c : meta["cases"]) {
    const std::string name = c["name"];
    INFO("case " << name);
    {
      const auto adapter_dir = dir / name;
      auto config = config::parse_adapter_config_file(
          io::read_json_file(adapter_dir + "/adapter_config.json"), adapter_dir);
      config.name = name;
      auto adapter = adapters::Adapter::create(config, base, /*seed=*/0);
      adapters::init_from_adapter(adapter, adapter_dir, base);
      const std::vector<adapters::AdapterSegment> segments = {
          {&adapter, 0, batch_rows, c10::nullopt}};
      double worst_logits = 0.0;

      {
        torch::NoGradGuard no_grad;
        adapters::AdapterHooks hooks(segments, batch.attention_mask, /*training=*/true);
        const auto hidden =
            decoder.hidden_states(batch.input_ids, batch.attention_mask, nullptr, &hooks);
        const auto logits =
            decoder.logits(hidden) * batch.attention_mask.unsqueeze(-1).to(at::kFloat);
        const double error = relative_error(logits, reference.load(name + ".logits"));
        INFO("logits: max error relative to max |logit|: " << error);
        CHECK(error < 1e-4);
        worst_logits = error;
      }

      const auto losses = reference.load(name + ".losses");  // [steps + 1, 4] total, task, aux, z
      double worst_grad = 0.0, worst_loss = 0.0;
      auto optimizer = train::make_adamw(adapter.parameters(), {0.9, 0.999, 1e-8, weight_decay});
      for (int64_t step = 0; step <= steps; ++step) {
        const auto got = train::forward_backward(decoder, batch, segments, {1}, {})[0];
        const double expected[4] = {losses[step][0].item<double>(), losses[step][1].item<double>(),
                                    losses[step][2].item<double>(), losses[step][3].item<double>()};
        INFO("step " << step << ": task " << got.task << " vs " << expected[1] << ", aux "
                     << got.aux << " vs " << expected[2] << ", z " << got.z << " vs "
                     << expected[3]);
        CHECK(std::abs(got.task + got.aux + got.z - expected[0]) <= 1e-5 * std::abs(expected[0]));
        CHECK(std::abs(got.task - expected[1]) <= 1e-5 * std::abs(expected[1]));
        CHECK(std::abs(got.aux - expected[2]) <= 1e-5 * std::abs(expected[2]) + 1e-9);
        CHECK(std::abs(got.z - expected[3]) <= 1e-5 * std::abs(expected[3]) + 1e-9);
        worst_loss = std::max(
            worst_loss, std::abs(got.task + got.aux + got.z - expected[0]) / std::abs(expected[0]));
        if (step == steps) break;
        std::set<std::string> idle;
        for (const auto& [tensor_name, t] : adapter.state_dict())
          if (!t.grad().defined()) idle.insert(tensor_name);
        const auto expected_idle = c["idle"][step].get<std::set<std::string>>();
        CHECK(idle == expected_idle);
        if (step == 0) {
          for (const auto& [tensor_name, t] : adapter.state_dict()) {
            const auto key = name + ".grad." + tensor_name;
            if (!reference.find(key)) continue;
            REQUIRE(t.grad().defined());
            const double error = relative_error(t.grad(), reference.load(key));
            INFO(tensor_name << ": gradient error " << error);
            CHECK(error < 1e-4);
            worst_grad = std::max(worst_grad, error);
          }
        }
        optimizer->step(lr);
        optimizer->zero_grad();
      }
      std::cout << fmt::format(
          "training parity {}: logits {:.1e}, gradients {:.1e}, losses over {} steps {:.1e} "
          "(max relative errors)\n",
          name, worst_logits, worst_grad, steps, worst_loss);
    }
  }
}

TEST_CASE(
    "mixlora-train --init-adapter starts from the adapter; a mismatched config is exit 2 naming "
    "the key",
    "[cli][train][init-adapter]") {
  test::TempDir ws;
  const std::string source = MIXLORA_TEST_SOURCE_DIR;
  auto config = config::load_train_config(source + "/configs/lora.json").adapters[0];
  auto start = adapters::Adapter::create(config, stories(), 11);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : start.state_dict()) t.normal_(0.0, 0.05);
  }
  const auto start_dir = ws / "start";
  start.save(start_dir, test::stories_dir());
  auto train = [&](const std::vector<std::string>& extra) {
    std::string line = "mixlora-train";
    std::vector<std::string> args = {"--config",       "configs/lora.json",
                                     "--base-model",   test::stories_dir(),
                                     "--output-dir",   ws / "out",
                                     "--init-adapter", start_dir,
                                     "--set",          "lora[0].lr=1e-30",
                                     "--set",          "lora[0].batch_size=256",
                                     "--set",          "lora[0].micro_batch_size=256",
                                     "--set",          "cutoff_len=12"};
    args.insert(args.end(), extra.begin(), extra.end());
    for (const auto& a : args) line += " " + test::shell_quote(a);
    return test::run_tool(line, source);
  };
  const auto ok = train({});
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  // lr 1e-30 (lr must be > 0): every update rounds away, the weights stay as they started.
  CHECK(test::slurp(ws / "out/lora/adapter_model.safetensors") ==
        test::slurp(start_dir + "/adapter_model.safetensors"));

  const auto wrong = train({"--set", "lora[0].r=4", "--overwrite"});
  CHECK(wrong.exit_code == 2);
  CHECK_THAT(wrong.err,
             Catch::Contains("init adapter has r 8 but adapter 'lora' is configured with 4"));
}
