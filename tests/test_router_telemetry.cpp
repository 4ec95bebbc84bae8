// Router telemetry (docs/telemetry.md): the per-layer statistics against hand-computed values,
// the alarms on made-up summaries, training that collapses its router raising the alarm and a
// balanced run raising none, mixlora-eval's report in the same schema, and the HTML report.
#include "mixlora/common/error.h"
#include "mixlora/config/train_config.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/moe/router_stats.h"
#include "mixlora/report/html_report.h"
#include "mixlora/train/router_telemetry.h"
#include "mixlora/train/trainer.h"

#include "catch.h"
#include "stories_model.h"
#include "test_helpers.h"
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

namespace fs = std::filesystem;
using namespace mixlora;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

double entropy(std::vector<double> p) {
  double h = 0.0;
  for (double x : p) h -= x * std::log(x);
  return h;
}

// Four tokens, two experts, the last token padding; top-1 routing sent two real tokens to
// expert 0 and one to expert 1.
moe::RouterRecord hand_record(std::vector<int64_t> routed_counts) {
  moe::RouterRecord r;
  r.probs = at::tensor({0.9, 0.1, 0.6, 0.4, 0.2, 0.8, 0.5, 0.5}, at::kFloat).view({4, 2});
  r.logits = at::log(r.probs);
  r.slot_experts = at::tensor({0, 0, 1, 0}, at::kLong).view({4, 1});
  r.token_mask = at::tensor({1, 1, 1, 0}, at::kLong).to(at::kBool);
  r.routed_counts = std::move(routed_counts);
  return r;
}

config::AdapterConfig moe_config(config::RoutingStrategy strategy) {
  config::AdapterConfig c;
  c.name = "moe";
  c.peft_type = config::PeftType::mixlora;
  c.routing_strategy = strategy;
  c.num_experts = 2;
  c.top_k = 1;
  return c;
}

}  // namespace

TEST_CASE("router telemetry: per-layer statistics equal the hand-computed ones", "[telemetry]") {
  const auto c = moe_config(config::RoutingStrategy::mixlora);
  const auto record = hand_record({2, 1});
  // Two batches of the same two layers, summed on the device and read once.
  moe::RouterStatAccumulator pending;
  for (int batch = 0; batch < 2; ++batch)
    pending.add(moe::router_batch_stats({record, record}, c.moe_options()));
  const auto summary = moe::summarize(pending.read(), c.moe_options());
  REQUIRE(pending.empty());
  REQUIRE(summary.layers.size() == 2);
  CHECK(summary.tokens == 6);  // padding excluded
  CHECK(summary.batches == 2);
  const auto& layer = summary.layers[1];
  CHECK(layer.expert_share[0] == Approx(2.0 / 3.0));
  CHECK(layer.expert_share[1] == Approx(1.0 / 3.0));
  CHECK(layer.top1_share[0] == Approx(2.0 / 3.0));  // the 0.9 and 0.6 rows prefer expert 0
  CHECK(layer.top1_share[1] == Approx(1.0 / 3.0));
  CHECK(layer.prob_share[0] == Approx((0.9 + 0.6 + 0.2) / 3.0));
  CHECK(layer.prob_share[1] == Approx((0.1 + 0.4 + 0.8) / 3.0));
  CHECK(layer.load_imbalance == Approx(4.0 / 3.0));
  CHECK(layer.entropy ==
        Approx((entropy({0.9, 0.1}) + entropy({0.6, 0.4}) + entropy({0.2, 0.8})) / 3.0));
  CHECK(layer.top1_prob == Approx((0.9 + 0.6 + 0.8) / 3.0));
  CHECK(layer.experts_per_token == Approx(1.0));
  CHECK_FALSE(layer.drop_rate);
  CHECK_FALSE(layer.z_loss);
  // The layer's own load-balancing loss with the coefficient, the mean over batches.
  const double aux = moe::load_balancing_loss({record}).item<double>() * c.router_aux_loss_coef;
  CHECK(layer.aux_loss == Approx(aux));

  const auto json = moe::router_json(summary);
  CHECK(json["strategy"] == "mixlora");
  CHECK(json["num_experts"] == 2);
  CHECK(json["max_entropy"].get<double>() == Approx(std::log(2.0)));
  CHECK(json["layers"].size() == 2);
  CHECK(json["layers"][0]["expert_share"][0].get<double>() == Approx(2.0 / 3.0));
  CHECK_FALSE(json["layers"][0].contains("drop_rate"));
}

TEST_CASE("router telemetry: switch drop rate and z loss", "[telemetry]") {
  const auto c = moe_config(config::RoutingStrategy::mixlora_switch);
  const auto record = hand_record({1, 1});  // one of the three real tokens over capacity
  moe::RouterStatAccumulator pending;
  pending.add(moe::router_batch_stats({record}, c.moe_options()));
  const auto summary = moe::summarize(pending.read(), c.moe_options());
  const auto& layer = summary.layers.at(0);
  CHECK(layer.experts_per_token == Approx(2.0 / 3.0));
  REQUIRE(layer.drop_rate);
  CHECK(*layer.drop_rate == Approx(1.0 / 3.0));
  REQUIRE(layer.z_loss);
  CHECK(*layer.z_loss ==
        Approx(moe::router_z_loss({record}).item<double>() * c.router_z_loss_coef));
  CHECK(moe::router_json(summary)["layers"][0]["drop_rate"].get<double>() == Approx(1.0 / 3.0));
}

TEST_CASE("router alarms: each condition once, none for a balanced router", "[telemetry]") {
  auto layer = [](std::vector<double> share, std::vector<double> probability, double entropy,
                  std::optional<double> drop = std::nullopt) {
    moe::RouterLayerStats s;
    s.expert_share = std::move(share);
    s.top1_share = {1.0, 0.0, 0.0, 0.0};  // a fresh router's argmax can be this skewed: no alarm
    s.prob_share = std::move(probability);
    s.entropy = entropy;
    s.drop_rate = drop;
    return s;
  };
  moe::RouterSummary balanced;
  balanced.num_experts = 4;
  balanced.layers = {layer({0.25, 0.25, 0.25, 0.25}, {0.3, 0.2, 0.25, 0.25}, 1.3, 0.05)};
  moe::RouterSummary failing = balanced;
  // Expert 3 below 0.25 / 4; expert 0 holds 60% of the router probability; entropy under
  // 0.1 * log 4 = 0.139; a fifth of the tokens dropped.
  failing.layers = {layer({0.5, 0.3, 0.18, 0.02}, {0.6, 0.3, 0.1, 0.0}, 0.1, 0.2)};

  train::RouterAlarms quiet;
  for (int step = 1; step <= 5; ++step) CHECK(quiet.check(step, balanced).empty());

  train::RouterAlarms alarms;  // defaults: dead after 3 logged steps in a row
  auto kinds = [](const std::vector<train::RouterAlarm>& raised) {
    std::vector<std::string> out;
    for (const auto& a : raised)
      out.push_back(a.kind + "@" + std::to_string(a.layer) + ":" + std::to_string(a.expert));
    return out;
  };
  CHECK(kinds(alarms.check(1, failing)) ==
        std::vector<std::string>{"collapse@0:0", "low_entropy@0:-1", "switch_drop@0:-1"});
  CHECK(alarms.check(2, failing).empty());
  CHECK(alarms.check(3, balanced).empty());  // the dead streak starts over
  CHECK(alarms.check(4, failing).empty());
  CHECK(alarms.check(5, failing).empty());
  const auto dead = alarms.check(6, failing);
  REQUIRE(kinds(dead) == std::vector<std::string>{"dead_expert@0:3"});
  CHECK(dead[0].step == 6);
  CHECK(dead[0].value == Approx(0.02));
  CHECK(dead[0].threshold == Approx(0.0625));
  CHECK(alarms.check(7, failing).empty());  // once per condition
  CHECK_THAT(train::alarm_line("moe", dead),
             Equals("moe | step 6 | router alarm: dead expert: share of routed tokens below 0.0625 "
                    "for the last "
                    "logged steps: layer 0 expert 3 (0.02)"));
  CHECK(train::alarm_json(dead[0]) == nlohmann::json{{"kind", "dead_expert"},
                                                     {"step", 6},
                                                     {"layer", 0},
                                                     {"expert", 3},
                                                     {"value", 0.02},
                                                     {"threshold", 0.0625}});
}

TEST_CASE("router alarm thresholds are config keys, validated", "[telemetry][config]") {
  nlohmann::json j = {{"lora", {{{"name", "a"}, {"routing_strategy", "mixlora"}}}}};
  const auto defaults = config::parse_train_config(j, "cfg.json");
  CHECK(defaults.router_telemetry);
  CHECK(defaults.router_alarm_dead_share_factor == 0.25);
  CHECK(defaults.router_alarm_dead_steps == 3);
  CHECK(defaults.router_alarm_collapse_share == 0.5);
  CHECK(defaults.router_alarm_entropy_ratio == 0.1);
  CHECK(defaults.router_alarm_drop_rate == 0.1);
  j["router_alarm_collapse_share"] = 0.8;
  j["router_alarm_dead_steps"] = 5;
  j["router_telemetry"] = false;
  const auto set = config::parse_train_config(j, "cfg.json");
  CHECK(set.router_alarm_collapse_share == 0.8);
  CHECK(set.router_alarm_dead_steps == 5);
  CHECK_FALSE(set.router_telemetry);
  j["router_alarm_collapse_share"] = 1.5;
  REQUIRE_INPUT_ERROR(config::parse_train_config(j, "cfg.json"),
                      Contains("router_alarm_collapse_share: must be in (0, 1]"));
  j.erase("router_alarm_collapse_share");
  j["router_alarm_dead_steps"] = 0;
  REQUIRE_INPUT_ERROR(config::parse_train_config(j, "cfg.json"),
                      Contains("router_alarm_dead_steps: must be >= 1"));
  j.erase("router_alarm_dead_steps");
  j["router_alarm_colapse_share"] = 0.5;
  REQUIRE_INPUT_ERROR(config::parse_train_config(j, "cfg.json"),
                      Equals("cfg.json: router_alarm_colapse_share: unknown key; did you mean "
                             "'router_alarm_collapse_share'?"));
}

namespace {

config::AdapterConfig stories_moe(double lr, bool router_loss) {
  config::AdapterConfig c;
  c.name = "moe";
  c.peft_type = config::PeftType::mixlora;
  c.lora = {4, 8.0, 0.0};
  c.num_experts = 4;
  c.top_k = 2;
  c.lr = lr;
  c.router_loss = router_loss;
  c.batch_size = 8;
  c.micro_batch_size = 4;
  c.num_epochs = 1;
  c.target_modules = {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
  return c;
}

// Trains one MixLoRA adapter on the stories copy task with log_every 1; the metrics.jsonl records.
std::vector<nlohmann::json> train_records(const fs::path& dir, const config::AdapterConfig& adapter,
                                          size_t rows) {
  config::TrainConfig c;
  c.adapters = {adapter};
  c.output_dir = dir.string();
  c.log_every = 1;
  c.save_step = 1000;
  train::TrainerOptions options;
  options.base_model_name = test::stories_dir();
  train::prepare_output(c, options);
  train::train(c, test::stories(), {test::copy_task_rows(rows)}, options);
  std::vector<nlohmann::json> records;
  std::ifstream in(dir / adapter.name / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

std::vector<std::string> alarm_kinds(const std::vector<nlohmann::json>& records) {
  std::vector<std::string> kinds;
  for (const auto& r : records) {
    if (!r.contains("router") || !r["router"].contains("alarms")) continue;
    for (const auto& a : r["router"]["alarms"]) kinds.push_back(a["kind"]);
  }
  return kinds;
}

}  // namespace

TEST_CASE("training writes router records; a balanced router raises no alarm",
          "[telemetry][train]") {
  test::TempDir scratch;
  const auto records = train_records(scratch.path, stories_moe(5e-3, true), 48);
  REQUIRE(records.size() == 6);
  for (const auto& r : records) {
    REQUIRE(r.contains("router"));
    const auto& router = r["router"];
    CHECK(router["num_experts"] == 4);
    CHECK(router["batches"] == 2);          // both micro-batches of the step
    REQUIRE(router["layers"].size() == 5);  // every layer of stories260K routes
    for (const auto& layer : router["layers"]) {
      double sum = 0.0;
      for (double s : layer["expert_share"]) sum += s;
      CHECK(sum == Approx(1.0));
      CHECK(layer["experts_per_token"].get<double>() == Approx(2.0));  // top-2, padding excluded
      CHECK(layer["entropy"].get<double>() <= std::log(4.0) + 1e-9);
      CHECK(layer["load_imbalance"].get<double>() >= 1.0);
    }
  }
  CHECK(alarm_kinds(records).empty());
  // The run report is written at the end.
  const auto html = test::slurp((scratch.path / "report.html").string());
  CHECK_THAT(html, Contains("class=\"heatmap\""));
  CHECK_THAT(html, Contains("no router alarms"));
}

TEST_CASE("a collapsing router (huge lr, no balancing loss) raises the collapse alarm",
          "[telemetry][train]") {
  test::TempDir scratch;
  const auto records = train_records(scratch.path, stories_moe(2.0, false), 48);
  const auto kinds = alarm_kinds(records);
  INFO(records.back().dump());
  CHECK(std::count(kinds.begin(), kinds.end(), "collapse") >= 1);
  // Each condition is raised once: no (kind, layer, expert) twice.
  std::set<std::string> seen;
  for (const auto& r : records) {
    if (!r.contains("router") || !r["router"].contains("alarms")) continue;
    for (const auto& a : r["router"]["alarms"]) CHECK(seen.insert(a.dump()).second);
  }
}

TEST_CASE("mixlora-eval's report carries the router object of metrics.jsonl", "[telemetry][eval]") {
  auto c = stories_moe(5e-3, true);
  const auto adapter = adapters::Adapter::create(c, test::stories(), 7);
  const auto rows = test::copy_task_rows(12);
  const model::Decoder decoder(test::stories());
  const auto results = eval::evaluate(decoder, {{&adapter, "casual", &rows}}, 4, 0);
  REQUIRE(results.size() == 1);
  REQUIRE(results[0].router);
  const auto report = eval::report_json(results);
  const auto& router = report[0]["router"];
  CHECK(router["strategy"] == "mixlora");
  REQUIRE(router["layers"].size() == results[0].router_profile.size());
  for (size_t l = 0; l < results[0].router_profile.size(); ++l) {
    for (size_t e = 0; e < 4; ++e) {
      CHECK(router["layers"][l]["expert_share"][e].get<double>() ==
            Approx(results[0].router_profile[l][e]));
    }
  }
}
