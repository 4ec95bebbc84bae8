// Non-finite steps: StepGuard's counting, and through the CLI a run whose weights blow up
// (lr 1e30): the bad steps are skipped and logged, the run stops after max_nonfinite_steps in
// a row with exit 1, and the checkpoint it leaves holds the last finite weights.
#include "battery.h"

#include "mixlora/io/safetensors.h"
#include "mixlora/train/step_guard.h"

#include "catch.h"
#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>
#include <regex>

using namespace mixlora;
using namespace mixlora::test;

TEST_CASE("StepGuard counts non-finite steps in a row per adapter and stops at the limit",
          "[faults]") {
  train::StepGuard guard(2, 3);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  guard.add_loss(0, 1.5);
  CHECK_FALSE(guard.loss_poisoned(0));
  guard.add_loss(0, std::numeric_limits<double>::infinity());
  guard.add_loss(0, 2.0);  // one bad micro-batch poisons the whole step
  CHECK(guard.loss_poisoned(0));
  CHECK_FALSE(guard.loss_poisoned(1));
  CHECK_FALSE(guard.finish_step(0, "a", 1, true));
  CHECK_FALSE(guard.loss_poisoned(0));  // cleared by the step
  guard.add_loss(1, nan);
  CHECK_FALSE(guard.finish_step(1, "b", 1, true));
  CHECK_FALSE(guard.finish_step(0, "a", 2, true));
  CHECK(guard.in_row(0) == 2);
  CHECK_FALSE(guard.finish_step(1, "b", 2, false));  // a good step resets the count
  CHECK(guard.in_row(1) == 0);
  CHECK(guard.finish_step(0, "a", 3, true));  // third in a row: stop
  train::StepGuard never(1, 0);
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);  // 100 skip warnings
  for (int i = 0; i < 100; ++i) CHECK_FALSE(never.finish_step(0, "a", i, true));
  spdlog::set_level(level);
}

TEST_CASE(
    "mixlora-train skips non-finite steps, then stops after max_nonfinite_steps with a checkpoint",
    "[faults]") {
  battery::TrainJob job;
  job.ws.write("data.jsonl", battery::lines(battery::good_rows(32)));
  job.adapter()["batch_size"] = 2;
  job.adapter()["micro_batch_size"] = 2;
  job.adapter()["num_epochs"] = 2;  // 32 steps
  job.adapter()["lr"] =
      1e30;  // the first update makes the weights ~1e30: every later loss overflows
  job.config["max_nonfinite_steps"] = 3;
  const auto r = job.run();
  INFO(r.err);
  REQUIRE(r.exit_code == 1);
  // The last line says why it stopped and what to do.
  const auto last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
  CHECK_THAT(last, Catch::Matchers::Contains("adapter 'a': 3 non-finite steps in a row") &&
                       Catch::Matchers::Contains("lower lr"));
  // Each skip is logged with the adapter and the step.
  std::smatch m;
  REQUIRE(std::regex_search(
      r.err, m,
      std::regex(
          R"(adapter 'a': step (\d+): non-finite loss or gradients, step skipped \(1 in a row)")));
  const int first_bad = std::stoi(m[1]);
  CHECK_THAT(r.err, Catch::Matchers::Contains(fmt::format(
                        "step {}: non-finite loss or gradients, step skipped (3 in a row",
                        first_bad + 2)));
  // Stopped at that step with the weights of the last finite one, and no finished adapter.
  const auto dir = std::filesystem::path(job.out_dir) / "a";
  CHECK_FALSE(std::filesystem::exists(dir / "adapter_model.safetensors"));
  const auto checkpoint = dir / fmt::format("checkpoint-{}", first_bad + 2);
  REQUIRE(std::filesystem::exists(checkpoint / "trainer_state.json"));
  const auto file = io::SafeTensorsFile::open((checkpoint / "adapter_model.safetensors").string());
  for (const auto& t : file.tensors()) {
    INFO(t.name);
    CHECK(file.load(t.name).isfinite().all().item<bool>());
  }
  // The skipped steps are in metrics.jsonl with grad_norm null.
  const auto metrics = slurp((dir / "metrics.jsonl").string());
  CHECK(count_lines(metrics) == static_cast<size_t>(first_bad + 2));
  CHECK_THAT(metrics, Catch::Matchers::Contains("\"grad_norm\":null"));
}

TEST_CASE("max_nonfinite_steps 0 skips non-finite steps and never stops", "[faults]") {
  battery::TrainJob job;
  job.ws.write("data.jsonl", battery::lines(battery::good_rows(12)));
  job.adapter()["batch_size"] = 2;
  job.adapter()["micro_batch_size"] = 2;
  job.adapter()["lr"] = 1e30;
  job.config["max_nonfinite_steps"] = 0;
  const auto r = job.run();
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Matchers::Contains("(5 in a row)"));  // steps 2..6 of 6
  CHECK(std::filesystem::exists(std::filesystem::path(job.out_dir) / "a" /
                                "adapter_model.safetensors"));
}
