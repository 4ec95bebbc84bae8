// mixlora-bench --smoke --json end to end: the report's structure and values (timings are only
// checked to be positive and finite, never compared).
#include "cli_runner.h"

#include "mixlora/bench/flops.h"
#include "mixlora/bench/presets.h"
#include "mixlora/common/cpu_info.h"
#include "mixlora/io/json_file.h"

#include "catch.h"
#include <nlohmann/json.hpp>

#include <cmath>
#include <map>

using namespace mixlora;
using mixlora::test::run_tool;

TEST_CASE("mixlora-bench --smoke --json reports every run with sane values", "[cli][bench]") {
  test::TempDir ws;
  const auto json_path = (ws.path / "bench.json").string();
  const auto result =
      run_tool("mixlora-bench --smoke --threads 1 --json " + test::shell_quote(json_path));
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  const auto report = io::read_json_file(json_path);
  CHECK(report.at("device") == "cpu");
  CHECK(report.at("dtype") == "fp32");
  CHECK(report.at("preset") == "tiny");
  CHECK(report.at("threads") == 1);
  CHECK(report.at("blas_threads") == 1);  // --threads covers the BLAS pool too (common/threads.h)
  const double peak = report.at("matmul_peak_gflops").get<double>();
  CHECK(std::isfinite(peak));
  CHECK(peak > 0.0);

  // Trainable parameters by hand for the tiny shape (hidden 64, intermediate 172, 5 layers,
  // kv 32 wide), r 16 on q, k, v, o, gate, up, down; 8 experts with a 64-wide router.
  const int64_t attention = 16 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64));
  const int64_t mlp = 16 * ((64 + 172) * 3);
  const int64_t lora = 5 * (attention + mlp);
  const int64_t mixlora = 5 * (attention + 8 * 64 + 8 * mlp);
  const std::map<std::string, int64_t> expected_params = {{"lora", lora},
                                                          {"mixlora", mixlora},
                                                          {"mixlora-naive", mixlora},
                                                          {"mixlora-dynamic", mixlora},
                                                          {"mixlora-switch", mixlora},
                                                          {"fused-2", 2 * mixlora},
                                                          {"sequential-2", 2 * mixlora}};
  const auto& runs = report.at("runs");
  REQUIRE(runs.size() == expected_params.size());
  // The CPU is named (figures from different machines are not comparable) and the runs were
  // timed in interleaved rounds: the speedups are the medians of per-round ratios to the baseline.
  CHECK(report.at("cpu_model").get<std::string>() == common::cpu_info().model);
  CHECK(report.at("cpu_flags").get<std::vector<std::string>>() == common::cpu_info().simd_flags());
  CHECK(report.at("baseline") == "lora");
  // Every program tunes glibc's malloc at start (common/allocator.h).
  CHECK(report.at("allocator") == "glibc (tuned)");
  CHECK(report.at("rounds") == 2);
  const auto baseline_seconds = runs.at(0).at("step_seconds").get<std::vector<double>>();
  REQUIRE(baseline_seconds.size() == 2);
  for (const auto& run : runs) {
    INFO(run.at("name").get<std::string>());
    const auto seconds = run.at("step_seconds").get<std::vector<double>>();
    REQUIRE(seconds.size() == 2);
    const double r0 = baseline_seconds[0] / seconds[0], r1 = baseline_seconds[1] / seconds[1];
    CHECK(run.at("speedup").get<double>() == Approx(0.5 * (r0 + r1)));  // median of two
    CHECK(run.at("speedup_min").get<double>() == Approx(std::min(r0, r1)));
    CHECK(run.at("speedup_max").get<double>() == Approx(std::max(r0, r1)));
    CHECK(run.at("ms_per_step").get<double>() == Approx(1e3 * 0.5 * (seconds[0] + seconds[1])));
  }
  CHECK(runs.at(0).at("speedup").get<double>() == 1.0);
  for (const auto& run : runs) {
    const auto name = run.at("name").get<std::string>();
    INFO(name);
    REQUIRE(expected_params.count(name) == 1);
    CHECK(run.at("trainable_params").get<int64_t>() == expected_params.at(name));
    for (const char* key : {"tokens_per_s", "ms_per_step", "cpu_ms_per_step", "peak_mem_mb", "mfu",
                            "flops_per_token"}) {
      const double v = run.at(key).get<double>();
      INFO(key);
      CHECK(std::isfinite(v));
      CHECK(v > 0.0);
    }
    CHECK(run.at("mfu").get<double>() < 1.0);
    // A random model with N(0, 0.02) weights predicts nearly uniformly over the 512 words.
    CHECK(run.at("loss").get<double>() == Approx(std::log(512.0)).margin(0.05));
  }
  CHECK(result.out.find("mixlora-naive") != std::string::npos);  // the table on stdout
}

TEST_CASE("useful FLOPs per token follow the documented formula", "[bench]") {
  const auto shape = bench::preset_config("tiny");
  config::AdapterConfig a;
  a.lora.r = 16;
  a.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  const double frozen = 5.0 * (64 * 64 * 2 + 64 * 32 * 2 + 64 * 172 * 3) + 512.0 * 64;
  const double trainable = 5.0 * 16 * ((64 + 64) * 2 + (64 + 32) * 2 + (64 + 172) * 3);
  const double attention = 12.0 * 5 * 32 * 64;
  CHECK(bench::useful_flops_per_token(shape, a, 32) ==
        Approx(4 * frozen + 6 * trainable + attention));
  a.peft_type = config::PeftType::mixlora;  // top-2 of 8: two experts' LoRAs and the router
  const double moe_trainable =
      5.0 * (16 * ((64 + 64) * 2 + (64 + 32) * 2) + 8 * 64 + 2 * 16 * (64 + 172) * 3);
  CHECK(bench::useful_flops_per_token(shape, a, 32) ==
        Approx(4 * frozen + 6 * moe_trainable + attention));
  // Top-p routing: the measured mean number of experts per token replaces top_k.
  const double dynamic_trainable = moe_trainable + 5.0 * 1.5 * 16 * (64 + 172) * 3;
  CHECK(bench::useful_flops_per_token(shape, a, 32, 3.5) ==
        Approx(4 * frozen + 6 * dynamic_trainable + attention));
}

TEST_CASE("mixlora-bench refuses unknown runs and a baseline that is not run", "[cli][bench]") {
  const auto unknown = run_tool("mixlora-bench --smoke --runs lora,mixlora-fast");
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("--runs: unknown run 'mixlora-fast'") != std::string::npos);
  const auto baseline = run_tool("mixlora-bench --smoke --runs lora --baseline mixlora");
  CHECK(baseline.exit_code == 2);
  CHECK(baseline.err.find("--baseline: 'mixlora' is not one of the runs (lora)") !=
        std::string::npos);
}

TEST_CASE("mixlora-bench --full-lm-loss: the unchunked loss gives the chunked loss's value",
          "[cli][bench]") {
  test::TempDir ws;
  std::map<std::string, nlohmann::json> reports;
  for (const std::string flag : {"", " --full-lm-loss"}) {
    const auto json_path =
        (ws.path / ("bench" + std::to_string(reports.size()) + ".json")).string();
    const auto result = run_tool("mixlora-bench --smoke --threads 1 --runs mixlora" + flag +
                                 " --json " + test::shell_quote(json_path));
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    reports[flag] = io::read_json_file(json_path);
  }
  CHECK(reports.at("").at("lm_loss") == "chunked");
  CHECK(reports.at(" --full-lm-loss").at("lm_loss") == "full");
  // Same seed, same steps: the two losses differ only by summation order.
  const double chunked = reports.at("").at("runs").at(0).at("loss").get<double>();
  const double full = reports.at(" --full-lm-loss").at("runs").at(0).at("loss").get<double>();
  CHECK(chunked > 1.0);
  CHECK(std::abs(chunked - full) < 1e-5 * chunked);
  CHECK(bench::preset_config("small-128k").vocab_size == 128256);
}
