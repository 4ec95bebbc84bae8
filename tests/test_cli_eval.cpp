// mixlora-eval and mixlora-generate --adapter end to end on an adapter saved by the library.
#include "cli_runner.h"
#include "stories_model.h"

#include "mixlora/adapters/adapter.h"
#include "mixlora/io/json_file.h"
#include "mixlora/model/base_model.h"

#include "catch.h"
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include <fstream>

using namespace mixlora;
using mixlora::test::run_tool;
using mixlora::test::stories_dir;

namespace {

const std::vector<std::vector<int64_t>> kRows = {{1, 403, 407, 261, 378, 300, 290},
                                                 {1, 15, 400, 311, 2},
                                                 {1, 261, 262, 263, 264, 265, 266, 267, 268}};

}  // namespace

TEST_CASE("mixlora-eval reports loss, router losses and profile of a saved adapter",
          "[cli][eval]") {
  test::TempDir ws;
  const auto& base = test::stories();
  config::AdapterConfig cfg;
  cfg.name = "switchy";
  cfg.peft_type = config::PeftType::mixlora;
  cfg.routing_strategy = config::RoutingStrategy::mixlora_switch;
  cfg.num_experts = 3;
  cfg.lora = {2, 4.0, 0.0};
  cfg.target_modules = {"q_proj", "gate_proj", "up_proj", "down_proj"};
  auto adapter = adapters::Adapter::create(cfg, base, 3);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : adapter.state_dict())
      if (name.find("lora_B") != std::string::npos) t.fill_(0.01);
  }
  const auto adapter_dir = ws / "switchy";
  adapter.save(adapter_dir, stories_dir());
  const auto data = ws / "rows.jsonl";
  {
    std::ofstream out(data);
    for (const auto& row : kRows) out << nlohmann::json({{"input_ids", row}}).dump() << "\n";
  }
  const auto report_path = ws / "report.json";
  const auto result =
      run_tool(fmt::format("mixlora-eval --base-model {} --adapter {} --with-base --data {} "
                           "--batch-size 2 --output {}",
                           stories_dir(), adapter_dir, data, report_path));
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  CHECK_THAT(result.out, Catch::Matchers::Contains("switchy"));
  const auto report = io::read_json_file(report_path);
  REQUIRE(report.size() == 2);

  // Independent numbers: per-token cross-entropy summed row by row in this process.
  torch::NoGradGuard no_grad;
  const model::Decoder decoder(base);
  double base_sum = 0.0, adapter_sum = 0.0;
  int64_t tokens = 0;
  for (const auto& row : kRows) {
    auto ids = at::tensor(row, at::kLong).view({1, -1});
    auto targets = ids.narrow(1, 1, ids.size(1) - 1).reshape({-1});
    auto score = [&](model::DecoderHooks* hooks) {
      auto logits = decoder.logits(decoder.hidden_states(ids, at::Tensor(), nullptr, hooks));
      return at::cross_entropy_loss(logits[0].narrow(0, 0, ids.size(1) - 1), targets, {},
                                    at::Reduction::Sum)
          .item<double>();
    };
    adapters::AdapterHooks hooks({{&adapter, 0, 1}}, at::Tensor(), false);
    base_sum += score(nullptr);
    adapter_sum += score(&hooks);
    tokens += ids.size(1) - 1;
  }
  CHECK(report[0]["adapter_name"] == "base");
  CHECK(report[0]["metrics"]["tokens"] == tokens);
  CHECK(report[0]["metrics"]["loss"].get<double>() == Approx(base_sum / tokens).epsilon(1e-5));
  CHECK(report[1]["adapter_name"] == "switchy");
  CHECK(report[1]["metrics"]["samples"] == 3);
  CHECK(report[1]["metrics"]["loss"].get<double>() == Approx(adapter_sum / tokens).epsilon(1e-5));
  CHECK(report[1]["metrics"]["perplexity"].get<double>() ==
        Approx(std::exp(adapter_sum / tokens)).epsilon(1e-5));
  CHECK(report[1]["metrics"]["aux_loss"].get<double>() > 0.0);
  CHECK(report[1]["metrics"]["z_loss"].get<double>() > 0.0);
  const auto profile = report[1]["router_profile"];
  REQUIRE(profile.size() == 5);
  for (const auto& layer : profile) {
    REQUIRE(layer.size() == 3);
    CHECK(layer[0].get<double>() + layer[1].get<double>() + layer[2].get<double>() == Approx(1.0));
  }

  SECTION("mixlora-generate --adapter uses the adapter") {
    auto with =
        run_tool(fmt::format("mixlora-generate --base-model {} --adapter {} --prompt-ids 1 "
                             "--max-new-tokens 16 --print-ids",
                             stories_dir(), adapter_dir));
    auto without =
        run_tool(fmt::format("mixlora-generate --base-model {} --prompt-ids 1 --max-new-tokens 16 "
                             "--print-ids",
                             stories_dir()));
    REQUIRE(with.exit_code == 0);
    // Greedy under the adapter, computed here token by token without a KV cache.
    std::vector<int64_t> ids{1}, expected;
    adapters::AdapterHooks hooks({{&adapter, 0, 1}}, at::Tensor(), false);
    hooks.keep_records(false);
    for (int i = 0; i < 16; ++i) {
      auto input = at::tensor(ids, at::kLong).view({1, -1});
      auto logits = decoder.logits(decoder.hidden_states(input, at::Tensor(), nullptr, &hooks));
      ids.push_back(logits[0][-1].argmax().item<int64_t>());
      expected.push_back(ids.back());
      if (ids.back() == 2) break;
    }
    CHECK(with.out == fmt::format("{}\n", fmt::join(expected, " ")));
    CHECK(with.out != without.out);
  }
  SECTION("bad inputs exit 2 with one line") {
    auto missing = run_tool(
        fmt::format("mixlora-eval --base-model {} --adapter /nope --data {}", stories_dir(), data));
    CHECK(missing.exit_code == 2);
    CHECK_THAT(missing.err, Catch::Matchers::Contains("/nope: adapter directory not found"));
    const auto bad_data =
        ws.write("bad.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 999]}\n");
    auto bad =
        run_tool(fmt::format("mixlora-eval --base-model {} --data {}", stories_dir(), bad_data));
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err,
               Catch::Matchers::Contains(
                   "bad.jsonl:2: input_ids: token id 999 is outside the vocabulary [0, 512)"));
    CHECK(mixlora::test::count_lines(bad.err) == 1);
  }
}
