// Training-config parsing and validation (SPEC section 4), overrides, and adapter_config.json
// reading/writing (SPEC section 7), against the real MoE-PEFT configs shipped in data/moe-peft.
#include "mixlora/common/error.h"
#include "mixlora/config/did_you_mean.h"
#include "mixlora/config/train_config.h"
#include "mixlora/io/json_file.h"

#include "catch.h"
#include "test_helpers.h"
#include <nlohmann/json.hpp>

#include <set>

using namespace mixlora;
using namespace mixlora::config;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;
using nlohmann::json;

namespace {

const std::string kCompat = MIXLORA_TEST_SOURCE_DIR "/data/moe-peft";
const std::string kConfigs = MIXLORA_TEST_SOURCE_DIR "/configs";

const std::vector<std::string> kAllTargets = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};

json lora_config() {
  return R"({
    "cutoff_len": 64, "save_step": 10,
    "lora": [{"name": "a", "r": 4, "lora_alpha": 8, "lora_dropout": 0.05,
              "target_modules": ["q_proj", "v_proj"], "lr": 1e-3,
              "batch_size": 4, "micro_batch_size": 2, "num_epochs": 1}]
  })"_json;
}

json mixlora_config() {
  auto j = lora_config();
  j["lora"][0]["routing_strategy"] = "mixlora";
  j["lora"][0]["num_experts"] = 8;
  j["lora"][0]["top_k"] = 2;
  j["lora"][0]["target_modules"] = kAllTargets;
  return j;
}

// `config` with lora[0][key] = value.
json with(json config, const std::string& key, const json& value) {
  config["lora"][0][key] = value;
  return config;
}

json without(json config, const std::string& key) {
  config["lora"][0].erase(key);
  return config;
}

TrainConfig parse(const json& config) { return parse_train_config(config, "cfg.json"); }

AdapterConfig parse_adapter(const json& config) { return parse(config).adapters.at(0); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// The real MoE-PEFT templates parse unchanged, with MoE-PEFT's defaults.

TEST_CASE("MoE-PEFT mixlora.json parses with its values and the reference defaults", "[config]") {
  const auto config = load_train_config(kCompat + "/mixlora.json");
  CHECK(config.cutoff_len == 512);
  CHECK(config.save_step == 1000);
  CHECK(config.train_lora_candidate_num == 2);
  CHECK(config.train_lora_simultaneously_num == 2);
  CHECK(config.train_strategy == TrainStrategy::optim);
  REQUIRE(config.adapters.size() == 1);
  const auto& a = config.adapters[0];
  CHECK(a.name == "mixlora");
  CHECK(a.task_name == "casual");  // "" in the file
  CHECK(a.tasks() == std::vector<std::string>{"casual"});
  CHECK(a.peft_type == PeftType::mixlora);
  CHECK(a.routing_strategy == RoutingStrategy::mixlora);
  CHECK(a.num_experts == 8);
  CHECK(a.top_k == 2);
  CHECK(a.lora.r == 16);
  CHECK(a.lora.lora_alpha == 32.0);
  CHECK(a.lora.lora_dropout == 0.05);
  CHECK(a.target_modules == kAllTargets);
  CHECK(a.optim == Optimizer::adamw);
  CHECK(a.lr == 2e-4);
  CHECK(a.batch_size == 16);
  CHECK(a.micro_batch_size == 8);
  CHECK(a.evaluate_batch_size == 16);
  CHECK(a.num_epochs == 2);
  CHECK(a.warmup_steps == 0);
  CHECK(a.scheduler_type == SchedulerType::constant);
  CHECK_FALSE(a.group_by_length);
  // Defaults of MixLoraConfig.from_config / TrainConfig.from_config
  CHECK(a.router_aux_loss_coef == 0.001);
  CHECK(a.router_z_loss_coef == 0.001);
  CHECK(a.router_loss);
  CHECK(a.router_init_range == 0.02);
  CHECK(a.jitter_noise == 0.0);
  CHECK(a.weight_decay == 0.01);
  CHECK(a.momentum == 0.0);
  CHECK(a.act_fn == model::Activation::silu);
  CHECK(a.lora_init == config::LoraInit::original);
  CHECK_FALSE(a.use_rslora);
  CHECK_FALSE(a.use_dora);
  CHECK_FALSE(a.expert_lora.has_value());
  CHECK(a.data.empty());  // the templates leave data to the command line
  for (const auto& module : kAllTargets) CHECK(a.targets(module));
}

TEST_CASE("MoE-PEFT mixlora_dynamic.json parses as top-p routing", "[config]") {
  const auto a = load_train_config(kCompat + "/mixlora_dynamic.json").adapters.at(0);
  CHECK(a.peft_type == PeftType::mixlora);
  CHECK(a.routing_strategy == RoutingStrategy::mixlora_dynamic);
  CHECK(a.top_p == 0.8);
  CHECK(a.temperature == 0.0);
  CHECK(a.num_experts == 8);
  CHECK(a.router_init_range == 0.02);
  CHECK(a.jitter_noise == 0.0);
}

TEST_CASE("MoE-PEFT lora.json parses as plain LoRA", "[config]") {
  const auto config = load_train_config(kCompat + "/lora.json");
  const auto& a = config.adapters.at(0);
  CHECK(a.name == "lora");
  CHECK(a.peft_type == PeftType::lora);
  CHECK(a.lora.r == 80);
  CHECK(a.lora.lora_alpha == 160.0);
  CHECK(a.lora.lora_dropout == 0.05);
  CHECK(a.target_modules == kAllTargets);
  CHECK(a.task_name == "casual");
}

TEST_CASE("switch routing takes the Switch Transformers defaults", "[config]") {
  auto j = with(mixlora_config(), "routing_strategy", "mixlora-switch");
  auto a = parse_adapter(j);
  CHECK(a.routing_strategy == RoutingStrategy::mixlora_switch);
  CHECK(a.router_init_range == 1.0);
  CHECK(a.jitter_noise == 0.01);
  CHECK(a.expert_capacity == 32);
  CHECK(a.router_z_loss_coef == 0.001);
  CHECK_FALSE(a.capacity_factor.has_value());
  // Explicit values win over the strategy's defaults.
  j = with(with(j, "router_init_range", 0.5), "jitter_noise", 0.0);
  a = parse_adapter(with(j, "capacity_factor", 1.25));
  CHECK(a.router_init_range == 0.5);
  CHECK(a.jitter_noise == 0.0);
  CHECK(a.capacity_factor == 1.25);
}

TEST_CASE("peft_type: inferred from MixLoRA keys, case-insensitive when given", "[config]") {
  CHECK(parse_adapter(lora_config()).peft_type == PeftType::lora);
  CHECK(parse_adapter(with(lora_config(), "num_experts", 4)).peft_type == PeftType::mixlora);
  CHECK(parse_adapter(with(lora_config(), "routing_strategy", "mixlora-dynamic")).peft_type ==
        PeftType::mixlora);
  const auto a = parse_adapter(with(lora_config(), "peft_type", "MixLoRA"));
  CHECK(a.peft_type == PeftType::mixlora);
  CHECK(a.routing_strategy == RoutingStrategy::mixlora);
  CHECK(parse_adapter(with(mixlora_config(), "peft_type", "lora")).peft_type == PeftType::lora);
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "peft_type", "ADALORA")),
      Equals("cfg.json: lora[0].peft_type: must be one of LORA, MIXLORA, LORAMOE, MOLA, "
             "got \"ADALORA\""));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "peft_type", "MIXLORAA")),
      Equals("cfg.json: lora[0].peft_type: must be one of LORA, MIXLORA, LORAMOE, MOLA, "
             "got \"MIXLORAA\"; did you mean 'MIXLORA'?"));
  // LoRAMoE / MoLA from peft_type or routing_strategy, as MoE-PEFT's lora_config_factory.
  CHECK(parse_adapter(with(with(lora_config(), "peft_type", "loramoe"), "num_experts", 4))
            .peft_type == PeftType::loramoe);
  CHECK(parse_adapter(with(with(lora_config(), "routing_strategy", "mola"), "num_experts", 4))
            .peft_type == PeftType::mola);
  REQUIRE_INPUT_ERROR(
      parse(with(mixlora_config(), "peft_type", "MOLA")),
      Equals("cfg.json: lora[0].routing_strategy: does not fit peft_type MOLA, got \"mixlora\""));
}

TEST_CASE("MoE-PEFT loramoe.json and mola.json parse with MoE-PEFT's defaults", "[config]") {
  const auto loramoe = load_train_config(kCompat + "/loramoe.json").adapters.at(0);
  CHECK(loramoe.peft_type == PeftType::loramoe);
  CHECK(loramoe.num_experts == 6);
  CHECK(loramoe.router_init_range == 5.0);  // LoraMoeConfig.from_config
  CHECK_FALSE(loramoe.router_loss);
  CHECK(loramoe.mixture_top_k() == 0);
  CHECK(loramoe.lora.r == 24);
  for (const char* m : {"gate_proj", "up_proj", "down_proj"}) CHECK(loramoe.mixes(m));
  CHECK_FALSE(loramoe.targets("q_proj"));

  const auto mola = load_train_config(kCompat + "/mola.json").adapters.at(0);
  CHECK(mola.peft_type == PeftType::mola);
  CHECK(mola.num_experts == 8);
  CHECK(mola.mixture_top_k() == 2);
  CHECK(mola.router_init_range == 5.0);  // MolaConfig.from_config
  CHECK_FALSE(mola.router_loss);         // MolaConfig.from_config: router_loss False
  CHECK(mola.router_aux_loss_coef == 0.001);
  for (const auto& m : kAllTargets) CHECK(mola.mixes(m));

  // adapter_config.json round trip: what MoE-PEFT's export writes, and our router keys.
  const auto j = adapter_config_to_json(mola, "base");
  CHECK(j.at("peft_type") == "MOLA");
  CHECK(j.at("routing_strategy") == "mola");
  CHECK(j.at("top_k") == 2);
  CHECK(j.at("router_init_range").get<double>() == 5.0);
  const auto back = parse_adapter_config_file(j, "adapter_config.json");
  CHECK(back.peft_type == PeftType::mola);
  CHECK(back.num_experts == 8);
  CHECK(back.top_k == 2);
  CHECK(back.target_modules == mola.target_modules);
  CHECK(adapter_config_to_json(loramoe, "base").at("peft_type") == "LORAMOE");
}

TEST_CASE("rule: LoRAMoE and MoLA keys", "[config]") {
  const auto mola = [] {
    return with(with(lora_config(), "routing_strategy", "mola"), "num_experts", 4);
  };
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "routing_strategy", "loramoe")),
      StartsWith("cfg.json: lora[0].num_experts: is required for LoRAMoE adapters"));
  REQUIRE_INPUT_ERROR(parse(with(mola(), "top_k", 5)),
                      Equals("cfg.json: lora[0].top_k: must be in 1..num_experts (4), got 5"));
  REQUIRE_INPUT_ERROR(parse(with(mola(), "use_dora", true)),
                      StartsWith("cfg.json: lora[0].use_dora: is not supported on MoLA adapters"));
  const auto a =
      parse_adapter(with(with(mola(), "router_loss", true), "router_aux_loss_coef", 0.01));
  CHECK(a.router_loss);
  CHECK(a.router_aux_loss_coef == 0.01);
}

TEST_CASE("MoE-PEFT keys without an effect here are accepted", "[config]") {
  auto j = mixlora_config();
  j["lora"][0]["evaluate_steps"] = 100;
  j["lora"][0]["sparse_step"] = nullptr;
  j["lora"][0]["router_dyn_loss_coef"] = 0.01;
  j["lora"][0]["entropy_index"] = 1.4;
  j["lora"][0]["entropy_type"] = "tsallis";
  j["lora"][0]["entropy_eps"] = 1e-5;
  j["lora"][0]["loraplus_lr_ratio"] = 16.0;
  j["eval_lora_simultaneously_num"] = 2;
  j["inference_lora_simultaneously_num"] = 2;
  j["eval_rollback_retrying_steps"] = 20;
  j["evaluate_result"] = "result.json";
  j["train_lora_candidate_num"] = 3;
  const auto config = parse(j);
  CHECK(config.train_lora_candidate_num == 3);
  CHECK(config.adapters[0].loraplus_lr_ratio == 16.0);
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "loraplus_lr_ratio", 0.5)),
                      Equals("cfg.json: lora[0].loraplus_lr_ratio: must be >= 1 (lr of lora_B / lr "
                             "of lora_A), got 0.5"));
}

TEST_CASE("micro_batch_size defaults to batch_size, as in MoE-PEFT", "[config]") {
  const auto a = parse_adapter(without(with(lora_config(), "batch_size", 6), "micro_batch_size"));
  CHECK(a.batch_size == 6);
  CHECK(a.micro_batch_size == 6);
}

TEST_CASE("our top-level keys parse", "[config]") {
  auto j = lora_config();
  j["base_model"] = "/models/x";
  j["output_dir"] = "out";
  j["seed"] = 7;
  j["dtype"] = "bf16";
  j["gradient_checkpointing"] = true;
  j["max_grad_norm"] = 1.0;
  j["log_every"] = 5;
  j["eval_every"] = 50;
  j["cutoff_len"] = -1;
  const auto c = parse(j);
  CHECK(c.base_model == "/models/x");
  CHECK(c.output_dir == "out");
  CHECK(c.seed == 7);
  CHECK(c.dtype == "bf16");
  CHECK(c.gradient_checkpointing);
  CHECK(c.max_grad_norm == 1.0);
  CHECK(c.log_every == 5);
  CHECK(c.eval_every == 50);
  CHECK(c.cutoff_len == -1);
  const auto defaults = parse(lora_config());
  CHECK(defaults.output_dir == "output");
  CHECK(defaults.seed == 42);
  CHECK(defaults.dtype == "fp32");
  CHECK(defaults.train_strategy == TrainStrategy::optim);
}

TEST_CASE("\"adapters\" is an alias of \"lora\"", "[config]") {
  auto j = lora_config();
  j["adapters"] = j["lora"];
  j.erase("lora");
  CHECK(parse(j).adapters.at(0).name == "a");
  j["adapters"][0]["r"] = 0;
  REQUIRE_INPUT_ERROR(parse(j), Equals("cfg.json: adapters[0].r: must be >= 1, got 0"));
  j["lora"] = j["adapters"];
  REQUIRE_INPUT_ERROR(
      parse(j),
      Equals("cfg.json: adapters: give the adapter list as \"lora\" or as \"adapters\", not both"));
}

// ---------------------------------------------------------------------------------------------
// Structure and unknown keys

TEST_CASE("structure errors name the JSON path", "[config]") {
  REQUIRE_INPUT_ERROR(parse(json::array({1})),
                      Equals("cfg.json: (top level): expected a JSON object, got array [1]"));
  auto j = lora_config();
  j.erase("lora");
  REQUIRE_INPUT_ERROR(
      parse(j), Equals("cfg.json: lora: is required: the list of adapters to train, got nothing"));
  j["lora"] = json::array();
  REQUIRE_INPUT_ERROR(
      parse(j),
      Equals("cfg.json: lora: expected a non-empty list of adapter objects, got array []"));
  j["lora"] = json::object();
  REQUIRE_INPUT_ERROR(
      parse(j),
      Equals("cfg.json: lora: expected a non-empty list of adapter objects, got object {}"));
  j["lora"] = json::array({3});
  REQUIRE_INPUT_ERROR(parse(j), Equals("cfg.json: lora[0]: expected a JSON object, got number 3"));
}

TEST_CASE("unknown keys are errors with a did-you-mean", "[config]") {
  REQUIRE_INPUT_ERROR(
      parse(with(mixlora_config(), "num_expert", 8)),
      Equals("cfg.json: lora[0].num_expert: unknown key; did you mean 'num_experts'?"));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "top-k", 2)),
                      Equals("cfg.json: lora[0].top-k: unknown key; did you mean 'top_k'?"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "learning_rate", 1e-4)),
                      Equals("cfg.json: lora[0].learning_rate: unknown key; did you mean 'lr'?"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "zzzz_qqqq", 1)),
      Equals("cfg.json: lora[0].zzzz_qqqq: unknown key (docs/config-keys.md lists the "
             "accepted keys)"));
  auto j = lora_config();
  j["cutof_len"] = 5;
  REQUIRE_INPUT_ERROR(parse(j),
                      Equals("cfg.json: cutof_len: unknown key; did you mean 'cutoff_len'?"));
  j = with(mixlora_config(), "expert_lora", json{{"lora_alph", 4}});
  REQUIRE_INPUT_ERROR(
      parse(j),
      Equals("cfg.json: lora[0].expert_lora.lora_alph: unknown key; did you mean 'lora_alpha'?"));
}

TEST_CASE("wrong JSON types name the key and the value", "[config]") {
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "r", "8")),
                      Equals("cfg.json: lora[0].r: expected an integer, got string \"8\""));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "r", 8.5)),
                      Equals("cfg.json: lora[0].r: expected an integer, got number 8.5"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "lr", "fast")),
                      Equals("cfg.json: lora[0].lr: expected a number, got string \"fast\""));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "use_rslora", 1)),
                      Equals("cfg.json: lora[0].use_rslora: expected true or false, got number 1"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "name", 5)),
                      Equals("cfg.json: lora[0].name: expected a string, got number 5"));
  auto j = lora_config();
  j["save_step"] = "10";
  REQUIRE_INPUT_ERROR(parse(j),
                      Equals("cfg.json: save_step: expected an integer, got string \"10\""));
  // A float beyond int64 is no integer (found by fuzz_config: the conversion was undefined).
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "r", 5e82)),
                      StartsWith("cfg.json: lora[0].r: expected an integer, got number"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "r", 9223372036854775808.0)),
                      StartsWith("cfg.json: lora[0].r: expected an integer, got number"));
  // An integer written as a float is still that integer.
  CHECK(parse_adapter(with(lora_config(), "r", 8.0)).lora.r == 8);
}

// ---------------------------------------------------------------------------------------------
// One test per validation rule, asserting the JSON path and the value found.

TEST_CASE("rule: adapter names are unique safe file names", "[config]") {
  REQUIRE_INPUT_ERROR(parse(without(lora_config(), "name")),
                      Equals("cfg.json: lora[0].name: is required (the adapter's output directory "
                             "name), got nothing"));
  const std::string rule =
      "must be a file name of letters, digits, '-', '_' and '.', not starting "
      "with '.' (at most 128 characters), got ";
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "name", "")),
                      Equals("cfg.json: lora[0].name: " + rule + "\"\""));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "name", "a/b")),
                      Equals("cfg.json: lora[0].name: " + rule + "\"a/b\""));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "name", "..")),
                      Equals("cfg.json: lora[0].name: " + rule + "\"..\""));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "name", ".hidden")),
                      Equals("cfg.json: lora[0].name: " + rule + "\".hidden\""));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "name", "a b")),
                      Equals("cfg.json: lora[0].name: " + rule + "\"a b\""));
  CHECK(parse_adapter(with(lora_config(), "name", "Stories-v1.2_x")).name == "Stories-v1.2_x");
  auto j = lora_config();
  j["lora"].push_back(j["lora"][0]);
  REQUIRE_INPUT_ERROR(parse(j),
                      Equals("cfg.json: lora[1].name: must be unique: another adapter has "
                             "this name, got \"a\""));
  j["lora"][1]["name"] = "b";
  CHECK(parse(j).adapters.size() == 2);
}

TEST_CASE("rule: LoRA shape ranges", "[config]") {
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "r", 0)),
                      Equals("cfg.json: lora[0].r: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "lora_alpha", 0)),
                      Equals("cfg.json: lora[0].lora_alpha: must be > 0, got 0"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "lora_alpha", -8)),
                      Equals("cfg.json: lora[0].lora_alpha: must be > 0, got -8"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "lora_dropout", 1.0)),
                      Equals("cfg.json: lora[0].lora_dropout: must be in [0, 1), got 1.0"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "lora_dropout", -0.1)),
                      Equals("cfg.json: lora[0].lora_dropout: must be in [0, 1), got -0.1"));
  CHECK(parse_adapter(with(lora_config(), "lora_dropout", 0)).lora.lora_dropout == 0.0);
}

TEST_CASE("rule: expert_lora ranges, inheriting what it leaves out", "[config]") {
  auto a = parse_adapter(with(mixlora_config(), "expert_lora", json{{"r", 2}}));
  REQUIRE(a.expert_lora.has_value());
  CHECK(a.expert_lora->r == 2);
  CHECK(a.expert_lora->lora_alpha == 8.0);     // the adapter's
  CHECK(a.expert_lora->lora_dropout == 0.05);  // the adapter's
  CHECK(a.expert_shape().r == 2);
  CHECK(a.lora.r == 4);
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "expert_lora", json{{"r", 0}})),
                      Equals("cfg.json: lora[0].expert_lora.r: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "expert_lora", json{{"lora_alpha", 0.0}})),
                      Equals("cfg.json: lora[0].expert_lora.lora_alpha: must be > 0, got 0.0"));
  REQUIRE_INPUT_ERROR(
      parse(with(mixlora_config(), "expert_lora", json{{"lora_dropout", 1.5}})),
      Equals("cfg.json: lora[0].expert_lora.lora_dropout: must be in [0, 1), got 1.5"));
  REQUIRE_INPUT_ERROR(
      parse(with(mixlora_config(), "expert_lora", 4)),
      Equals("cfg.json: lora[0].expert_lora: expected a JSON object, got number 4"));
}

TEST_CASE("rule: ffn_dropout is below 1 and not negative", "[config]") {
  CHECK(parse_adapter(with(mixlora_config(), "ffn_dropout", 0.1)).ffn_dropout == 0.1);
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "ffn_dropout", 1)),
                      Equals("cfg.json: lora[0].ffn_dropout: must be in [0, 1), got 1"));
}

TEST_CASE("rule: optimiser settings", "[config]") {
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "lr", 0)),
                      Equals("cfg.json: lora[0].lr: must be > 0, got 0"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "lr", -1e-4)),
                      Equals("cfg.json: lora[0].lr: must be > 0, got -0.0001"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "optim", "adam")),
      Equals("cfg.json: lora[0].optim: must be one of adamw, sgd, got \"adam\"; did you "
             "mean 'adamw'?"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "momentum", -0.9)),
                      Equals("cfg.json: lora[0].momentum: must be >= 0, got -0.9"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "weight_decay", -0.01)),
                      Equals("cfg.json: lora[0].weight_decay: must be >= 0, got -0.01"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "scheduler_type", "linaer")),
      Equals("cfg.json: lora[0].scheduler_type: must be one of constant, linear, cosine, "
             "constant_with_warmup, got \"linaer\"; did you mean 'linear'?"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "scheduler_type", "polynomial")),
      Equals("cfg.json: lora[0].scheduler_type: must be one of constant, linear, cosine, "
             "constant_with_warmup, got \"polynomial\""));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "warmup_steps", -1)),
                      Equals("cfg.json: lora[0].warmup_steps: must be >= 0, got -1"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "warmup_ratio", 1.0)),
                      Equals("cfg.json: lora[0].warmup_ratio: must be in [0, 1), got 1.0"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "evaluate_batch_size", 0)),
                      Equals("cfg.json: lora[0].evaluate_batch_size: must be >= 1, got 0"));
  auto a = parse_adapter(with(
      with(with(with(lora_config(), "optim", "sgd"), "momentum", 0.9), "scheduler_type", "cosine"),
      "warmup_ratio", 0.1));
  CHECK(a.optim == Optimizer::sgd);
  CHECK(a.momentum == 0.9);
  CHECK(a.scheduler_type == SchedulerType::cosine);
  CHECK(a.warmup_ratio == 0.1);
}

TEST_CASE("rule: batch sizes and epochs", "[config]") {
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "batch_size", 0)),
                      Equals("cfg.json: lora[0].batch_size: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "micro_batch_size", 0)),
                      Equals("cfg.json: lora[0].micro_batch_size: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(
      parse(with(with(lora_config(), "batch_size", 12), "micro_batch_size", 8)),
      Equals("cfg.json: lora[0].batch_size: must be a multiple of micro_batch_size (8), got 12"));
  REQUIRE_INPUT_ERROR(
      parse(without(with(lora_config(), "micro_batch_size", 32), "batch_size")),
      Equals("cfg.json: lora[0].batch_size: must be a multiple of micro_batch_size (32), "
             "got 16 (the default)"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "num_epochs", 0)),
                      Equals("cfg.json: lora[0].num_epochs: must be >= 1, got 0"));
}

TEST_CASE("rule: target_modules", "[config]") {
  auto a = parse_adapter(with(lora_config(), "target_modules",
                              json{{"v_proj", true}, {"down_proj", true}, {"q_proj", false}}));
  CHECK(a.target_modules == std::vector<std::string>{"v_proj", "down_proj"});
  CHECK(a.targets("v_proj"));
  CHECK_FALSE(a.targets("q_proj"));
  a = parse_adapter(with(lora_config(), "target_modules", {"down_proj", "q_proj", "q_proj"}));
  CHECK(a.target_modules == std::vector<std::string>{"q_proj", "down_proj"});  // canonical order
  CHECK(parse_adapter(without(lora_config(), "target_modules")).target_modules ==
        std::vector<std::string>{"q_proj", "v_proj"});

  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "target_modules", {"q_proj", "qproj"})),
      Equals("cfg.json: lora[0].target_modules[1]: unknown module \"qproj\"; did you mean "
             "'q_proj'? (known: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
             "down_proj, qkv_proj, gate_up_proj)"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "target_modules", json{{"gate_prj", true}})),
      StartsWith("cfg.json: lora[0].target_modules.gate_prj: unknown module \"gate_prj\"; "
                 "did you mean 'gate_proj'?"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "target_modules", json{{"q_proj", "yes"}})),
                      Equals("cfg.json: lora[0].target_modules.q_proj: expected true or false, got "
                             "string \"yes\""));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "target_modules", {"q_proj", 3})),
      Equals("cfg.json: lora[0].target_modules[1]: expected a module name, got number 3"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "target_modules", json{{"q_proj", false}})),
      Equals("cfg.json: lora[0].target_modules: must select at least one of q_proj, "
             "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, qkv_proj, gate_up_proj, "
             "got {\"q_proj\":false}"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "target_modules", json::array())),
                      StartsWith("cfg.json: lora[0].target_modules: must select at least one of"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "target_modules", "q_proj")),
      Equals("cfg.json: lora[0].target_modules: expected a list of module names or an "
             "object {name: true|false}, got string \"q_proj\""));
}

TEST_CASE("rule: lora_init and the LoRA switches", "[config]") {
  auto a = parse_adapter(with(
      with(with(lora_config(), "lora_init", "gaussian"), "use_rslora", true), "use_dora", true));
  CHECK(a.lora_init == config::LoraInit::gaussian);
  CHECK(a.use_rslora);
  CHECK(a.use_dora);
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "lora_init", "kaiming")),
                      Equals("cfg.json: lora[0].lora_init: must be one of original, gaussian, got "
                             "\"kaiming\""));
}

TEST_CASE("rule: routing_strategy and num_experts", "[config]") {
  REQUIRE_INPUT_ERROR(
      parse(with(mixlora_config(), "routing_strategy", "mixlora_switch")),
      Equals("cfg.json: lora[0].routing_strategy: must be one of mixlora, mixlora-dynamic, "
             "mixlora-switch, got \"mixlora_switch\"; did you mean 'mixlora-switch'?"));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "routing_strategy", "topk")),
                      StartsWith("cfg.json: lora[0].routing_strategy: must be one of mixlora, "
                                 "mixlora-dynamic, mixlora-switch, got \"topk\""));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "num_experts", 0)),
                      Equals("cfg.json: lora[0].num_experts: must be >= 1, got 0"));
}

TEST_CASE("rule: top_k in 1..num_experts", "[config]") {
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "top_k", 9)),
                      Equals("cfg.json: lora[0].top_k: must be in 1..num_experts (8), got 9"));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "top_k", 0)),
                      Equals("cfg.json: lora[0].top_k: must be in 1..num_experts (8), got 0"));
  // The default top_k (2) breaks the rule with a single expert under top-k routing ...
  REQUIRE_INPUT_ERROR(
      parse(without(with(mixlora_config(), "num_experts", 1), "top_k")),
      Equals("cfg.json: lora[0].top_k: must be in 1..num_experts (1), got 2 (the default)"));
  // ... but not under switch routing, which does not use it.
  auto j =
      without(with(with(mixlora_config(), "num_experts", 1), "routing_strategy", "mixlora-switch"),
              "top_k");
  CHECK(parse_adapter(j).num_experts == 1);
  CHECK(parse_adapter(with(mixlora_config(), "top_k", 8)).top_k == 8);
}

TEST_CASE("rule: dynamic routing top_p and temperature", "[config]") {
  auto j = with(mixlora_config(), "routing_strategy", "mixlora-dynamic");
  CHECK(parse_adapter(with(j, "top_p", 1.0)).top_p == 1.0);
  CHECK(parse_adapter(with(j, "temperature", 0.5)).temperature == 0.5);
  REQUIRE_INPUT_ERROR(parse(with(j, "top_p", 0)),
                      Equals("cfg.json: lora[0].top_p: must be in (0, 1], got 0"));
  REQUIRE_INPUT_ERROR(parse(with(j, "top_p", 1.5)),
                      Equals("cfg.json: lora[0].top_p: must be in (0, 1], got 1.5"));
  REQUIRE_INPUT_ERROR(parse(with(j, "temperature", -1)),
                      Equals("cfg.json: lora[0].temperature: must be >= 0 (0 = off), got -1"));
}

TEST_CASE("rule: router coefficients, init range and jitter", "[config]") {
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "router_aux_loss_coef", -0.001)),
                      Equals("cfg.json: lora[0].router_aux_loss_coef: must be >= 0, got -0.001"));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "router_z_loss_coef", -1)),
                      Equals("cfg.json: lora[0].router_z_loss_coef: must be >= 0, got -1"));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "router_init_range", -0.02)),
                      Equals("cfg.json: lora[0].router_init_range: must be >= 0, got -0.02"));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "jitter_noise", 1)),
                      Equals("cfg.json: lora[0].jitter_noise: must be in [0, 1), got 1"));
  REQUIRE_INPUT_ERROR(parse(with(mixlora_config(), "jitter_noise", -0.1)),
                      Equals("cfg.json: lora[0].jitter_noise: must be in [0, 1), got -0.1"));
  REQUIRE_INPUT_ERROR(
      parse(with(mixlora_config(), "router_loss", "yes")),
      Equals("cfg.json: lora[0].router_loss: expected true or false, got string \"yes\""));
  const auto a = parse_adapter(
      with(with(mixlora_config(), "router_loss", false), "router_aux_loss_coef", 0.01));
  CHECK_FALSE(a.router_loss);
  CHECK(a.router_aux_loss_coef == 0.01);
}

TEST_CASE("rule: expert_capacity, capacity_factor and act_fn", "[config]") {
  auto j = with(mixlora_config(), "routing_strategy", "mixlora-switch");
  CHECK(parse_adapter(with(j, "expert_capacity", 4)).expert_capacity == 4);
  REQUIRE_INPUT_ERROR(parse(with(j, "expert_capacity", 0)),
                      Equals("cfg.json: lora[0].expert_capacity: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(parse(with(j, "capacity_factor", 0)),
                      Equals("cfg.json: lora[0].capacity_factor: must be > 0, got 0"));
  CHECK(parse_adapter(with(j, "act_fn", "gelu_new")).act_fn == model::Activation::gelu_tanh);
  CHECK(parse_adapter(with(j, "act_fn", nullptr)).act_fn == model::Activation::silu);
  REQUIRE_INPUT_ERROR(parse(with(j, "act_fn", "gelu-new")),
                      Equals("cfg.json: lora[0].act_fn: must be one of silu, gelu, gelu_new, "
                             "gelu_pytorch_tanh, relu, got "
                             "\"gelu-new\"; did you mean 'gelu_new'?"));
}

TEST_CASE("rule: task names", "[config]") {
  CHECK(parse_adapter(with(lora_config(), "task_name", "")).task_name == "casual");
  CHECK(parse_adapter(with(lora_config(), "task_name", "causal")).task_name == "casual");
  CHECK(parse_adapter(with(lora_config(), "task_name", "casual")).task_name == "casual");
  CHECK(parse_adapter(without(lora_config(), "task_name")).task_name == "casual");
  CHECK(parse_adapter(with(lora_config(), "task_name", "arc-e")).task_name == "arc-e");
  CHECK(task_kind("arc-c") == TaskKind::multiple_choice);
  CHECK(task_kind("winogrande") == TaskKind::multiple_choice);
  CHECK(task_kind("glue:sst2") == TaskKind::classification);
  CHECK(task_kind("") == TaskKind::causal_lm);
  CHECK_FALSE(task_kind("glue:nope").has_value());
  CHECK(is_causal_lm_task("causal"));
  CHECK_FALSE(is_causal_lm_task("boolq"));

  const auto multi = parse_adapter(with(with(lora_config(), "task_name", "arc-e;boolq;causal"),
                                        "data", {"arc.jsonl", "boolq.jsonl", "text.jsonl"}));
  CHECK(multi.task_name == "arc-e;boolq;casual");
  CHECK(multi.tasks() == std::vector<std::string>{"arc-e", "boolq", "casual"});
  CHECK(multi.data == std::vector<std::string>{"arc.jsonl", "boolq.jsonl", "text.jsonl"});

  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "task_name", "arc_e")),
      StartsWith("cfg.json: lora[0].task_name: unknown task \"arc_e\"; did you mean "
                 "'arc-e'? (known: casual, causal, classification, arc-e, arc-c, boolq, "
                 "obqa, piqa, siqa, hellaswag, winogrande, glue:cola, "));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "task_name", "translation")),
      Contains("cfg.json: lora[0].task_name: unknown task \"translation\" (known: ") &&
          Contains("glue:wnli; or several joined by ';')"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "task_name", "arc-e;;boolq")),
      Equals("cfg.json: lora[0].task_name: has an empty task id between ';' separators, "
             "got \"arc-e;;boolq\""));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "task_name", "glue:cola;glue:sst2")),
      Equals("cfg.json: lora[0].task_name: may hold at most one classification task (one "
             "head per adapter), got \"glue:cola;glue:sst2\""));
}

TEST_CASE("rule: data is a file or one file per task", "[config]") {
  CHECK(parse_adapter(with(lora_config(), "data", "train.jsonl")).data ==
        std::vector<std::string>{"train.jsonl"});
  // MoE-PEFT joins the files of a multi-task adapter with ';'.
  const auto a = parse_adapter(
      with(with(lora_config(), "task_name", "arc-e;piqa"), "data", "a.jsonl;b.jsonl"));
  CHECK(a.data == std::vector<std::string>{"a.jsonl", "b.jsonl"});
  REQUIRE_INPUT_ERROR(
      parse(with(with(lora_config(), "task_name", "arc-e;piqa"), "data", "a.jsonl")),
      Equals("cfg.json: lora[0].data: needs one file per task of task_name \"arc-e;piqa\" "
             "(2), got \"a.jsonl\""));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "data", {"a.jsonl", "b.jsonl"})),
      Equals("cfg.json: lora[0].data: needs one file per task of task_name \"casual\" (1), "
             "got [\"a.jsonl\",\"b.jsonl\"]"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "data", 5)),
      Equals("cfg.json: lora[0].data: expected a file name or a non-empty list of file "
             "names, got number 5"));
  REQUIRE_INPUT_ERROR(
      parse(with(with(lora_config(), "task_name", "arc-e;piqa"), "data", {"a.jsonl", 3})),
      Equals("cfg.json: lora[0].data[1]: expected a file name, got number 3"));
  REQUIRE_INPUT_ERROR(parse(with(lora_config(), "data", "")),
                      Equals("cfg.json: lora[0].data: has an empty file name, got \"\""));
}

TEST_CASE("rule: classification needs labels or num_labels", "[config]") {
  auto j = with(lora_config(), "task_name", "classification");
  REQUIRE_INPUT_ERROR(parse(j),
                      Equals("cfg.json: lora[0].labels: task \"classification\" needs \"labels\" "
                             "(names, in order) or \"num_labels\" >= 2, got neither"));
  auto a = parse_adapter(with(j, "labels", {"neg", "pos"}));
  CHECK(a.labels == std::vector<std::string>{"neg", "pos"});
  CHECK(a.num_labels == 2);
  CHECK(parse_adapter(with(j, "num_labels", 3)).num_labels == 3);
  REQUIRE_INPUT_ERROR(parse(with(j, "num_labels", 1)),
                      Equals("cfg.json: lora[0].num_labels: must be >= 2, got 1"));
  REQUIRE_INPUT_ERROR(parse(with(j, "labels", {"pos", "neg", "pos"})),
                      Equals("cfg.json: lora[0].labels[2]: duplicate label, got \"pos\""));
  REQUIRE_INPUT_ERROR(
      parse(with(j, "labels", {"pos"})),
      Equals("cfg.json: lora[0].labels: must name at least 2 labels, got [\"pos\"]"));
  REQUIRE_INPUT_ERROR(
      parse(with(j, "labels", {"pos", ""})),
      Equals("cfg.json: lora[0].labels[1]: expected a non-empty label name, got string \"\""));
  REQUIRE_INPUT_ERROR(
      parse(with(with(j, "labels", {"a", "b"}), "num_labels", 3)),
      Equals("cfg.json: lora[0].num_labels: must equal the number of labels (2), got 3"));
  REQUIRE_INPUT_ERROR(
      parse(with(lora_config(), "labels", {"a", "b"})),
      Equals("cfg.json: lora[0].labels: only classification tasks have labels (task_name "
             "\"casual\"), got [\"a\",\"b\"]"));
  // GLUE tasks know their label count.
  CHECK(parse_adapter(with(lora_config(), "task_name", "glue:mnli")).num_labels == 3);
  CHECK(parse_adapter(with(lora_config(), "task_name", "glue:sst2")).num_labels == 2);
  REQUIRE_INPUT_ERROR(parse(with(with(lora_config(), "task_name", "glue:mnli"), "num_labels", 2)),
                      Equals("cfg.json: lora[0].num_labels: glue:mnli has 3 labels, got 2"));
}

TEST_CASE("rule: top-level ranges and choices", "[config]") {
  auto set = [](const std::string& key, const json& value) {
    auto j = lora_config();
    j[key] = value;
    return j;
  };
  REQUIRE_INPUT_ERROR(
      parse(set("cutoff_len", 1)),
      Equals("cfg.json: cutoff_len: must be >= 2 (or -1: the model's maximum), got 1"));
  REQUIRE_INPUT_ERROR(parse(set("save_step", 0)),
                      Equals("cfg.json: save_step: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(parse(set("train_lora_simultaneously_num", 0)),
                      Equals("cfg.json: train_lora_simultaneously_num: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(parse(set("train_lora_candidate_num", 0)),
                      Equals("cfg.json: train_lora_candidate_num: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(parse(set("train_strategy", "fast")),
                      Equals("cfg.json: train_strategy: must be one of optim, none, got \"fast\""));
  CHECK(parse(set("train_strategy", "none")).train_strategy == TrainStrategy::none);
  REQUIRE_INPUT_ERROR(parse(set("dtype", "fp64")),
                      Equals("cfg.json: dtype: must be one of fp32, bf16, fp16, got \"fp64\""));
  REQUIRE_INPUT_ERROR(
      parse(set("dtype", "fp23")),
      Equals("cfg.json: dtype: must be one of fp32, bf16, fp16, got \"fp23\"; did you mean "
             "'fp32'?"));
  REQUIRE_INPUT_ERROR(parse(set("log_every", 0)),
                      Equals("cfg.json: log_every: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(parse(set("eval_every", -1)),
                      Equals("cfg.json: eval_every: must be >= 0 (0 = never), got -1"));
  REQUIRE_INPUT_ERROR(parse(set("max_grad_norm", -1.0)),
                      Equals("cfg.json: max_grad_norm: must be >= 0 (0 = no clipping), got -1.0"));
  REQUIRE_INPUT_ERROR(parse(set("seed", -1)), Equals("cfg.json: seed: must be >= 0, got -1"));
  REQUIRE_INPUT_ERROR(parse(set("output_dir", "")),
                      Equals("cfg.json: output_dir: must not be empty, got \"\""));
}

TEST_CASE("require_training_inputs names what the command line must add", "[config]") {
  auto config = load_train_config(kCompat + "/lora.json");
  REQUIRE_INPUT_ERROR(
      require_training_inputs(config, "lora.json"),
      Equals("lora.json: base_model: missing; give it in the config or with --base-model DIR"));
  config.base_model = "/models/x";
  REQUIRE_INPUT_ERROR(
      require_training_inputs(config, "lora.json"),
      Equals("lora.json: lora[0].data: missing for adapter 'lora'; give it in the config "
             "or with --set lora[0].data=FILE"));
  config =
      load_train_config(kCompat + "/lora.json",
                        {"base_model=/models/x", "lora[0].data=" + kCompat + "/dummy_data.json"});
  REQUIRE_NOTHROW(require_training_inputs(config, "lora.json"));
  CHECK(config.adapters[0].data == std::vector<std::string>{kCompat + "/dummy_data.json"});
}

// ---------------------------------------------------------------------------------------------
// did-you-mean

TEST_CASE("closest_match suggests only plausible typos", "[config]") {
  const std::vector<std::string> keys = {"num_experts", "top_k", "top_p", "lr", "r", "lora_alpha"};
  CHECK(closest_match("num_expert", keys) == std::optional<std::string>("num_experts"));
  CHECK(closest_match("top-k", keys) == std::optional<std::string>("top_k"));
  CHECK(closest_match("TOP_K", keys) == std::optional<std::string>("top_k"));
  CHECK(closest_match("lora_aplha", keys) == std::optional<std::string>("lora_alpha"));  // swap
  CHECK_FALSE(closest_match("x", keys).has_value());
  CHECK_FALSE(closest_match("gradient_accumulation", keys).has_value());
  CHECK(edit_distance("top-k", "top_k") == 0);
  CHECK(edit_distance("abc", "acb") == 1);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(did_you_mean("num_expert", keys) == "; did you mean 'num_experts'?");
  CHECK(did_you_mean("zzz", keys).empty());
}

// ---------------------------------------------------------------------------------------------
// Overrides

TEST_CASE("overrides set numbers, booleans, strings and lists", "[config]") {
  auto j = lora_config();
  apply_override(j, "lora[0].lr=1e-4");
  CHECK(j["lora"][0]["lr"] == 1e-4);
  apply_override(j, "lora[0].group_by_length=true");
  CHECK(j["lora"][0]["group_by_length"] == true);
  apply_override(j, "lora[0].optim=sgd");
  CHECK(j["lora"][0]["optim"] == "sgd");
  apply_override(j, "lora[0].name=\"123\"");
  CHECK(j["lora"][0]["name"] == "123");
  apply_override(j, "base_model=/models/stories260K");
  CHECK(j["base_model"] == "/models/stories260K");
  apply_override(j, "lora[0].target_modules=[\"k_proj\",\"o_proj\"]");
  CHECK(j["lora"][0]["target_modules"] == json({"k_proj", "o_proj"}));
  apply_override(j, "lora[0].target_modules[1]=up_proj");
  CHECK(j["lora"][0]["target_modules"] == json({"k_proj", "up_proj"}));
  apply_override(j, "cutoff_len=128");
  CHECK(j["cutoff_len"] == 128);
  apply_override(j, "lora[0].prompt=");  // empty value: an empty string
  CHECK(j["lora"][0]["prompt"] == "");

  const auto a = parse(j).adapters.at(0);
  CHECK(a.lr == 1e-4);
  CHECK(a.group_by_length);
  CHECK(a.optim == Optimizer::sgd);
  CHECK(a.name == "123");
  CHECK(a.target_modules == std::vector<std::string>{"k_proj", "up_proj"});
}

TEST_CASE("overrides create missing objects and follow the adapters alias", "[config]") {
  auto j = mixlora_config();
  apply_override(j, "lora[0].expert_lora.r=2");
  CHECK(j["lora"][0]["expert_lora"] == json({{"r", 2}}));
  CHECK(parse_adapter(j).expert_shape().r == 2);
  apply_override(j, "lora[0].target_modules={\"q_proj\":true}");
  apply_override(j, "lora[0].target_modules.down_proj=true");
  CHECK(parse_adapter(j).target_modules == std::vector<std::string>{"q_proj", "down_proj"});

  j["adapters"] = j["lora"];
  j.erase("lora");
  apply_override(j, "lora[0].top_k=4");
  CHECK(j["adapters"][0]["top_k"] == 4);
  CHECK_FALSE(j.contains("lora"));
}

TEST_CASE("bad overrides are errors naming the override", "[config]") {
  auto j = lora_config();
  REQUIRE_INPUT_ERROR(
      apply_override(j, "lora[3].lr=1e-4"),
      Equals("--set lora[3].lr=1e-4: lora[3]: index 3 is out of range (lora has 1 element)"));
  REQUIRE_INPUT_ERROR(apply_override(j, "cutoff_len[0]=5"),
                      Equals("--set cutoff_len[0]=5: cutoff_len: not a list, got number 64"));
  REQUIRE_INPUT_ERROR(apply_override(j, "lora[0].lr.x=5"),
                      Equals("--set lora[0].lr.x=5: lora[0].lr: not an object, got number 0.001"));
  REQUIRE_INPUT_ERROR(apply_override(j, "lr"),
                      Equals("--set lr: expected PATH=VALUE, e.g. lora[0].lr=1e-4"));
  REQUIRE_INPUT_ERROR(apply_override(j, "=5"),
                      Equals("--set =5: expected PATH=VALUE, e.g. lora[0].lr=1e-4"));
  REQUIRE_INPUT_ERROR(
      apply_override(j, "lora[x].lr=1"),
      Equals("--set lora[x].lr=1: bad path \"lora[x].lr\": an index must be a non-negative "
             "integer (expected e.g. lora[0].lr=1e-4)"));
  REQUIRE_INPUT_ERROR(apply_override(j, "lora..lr=1"),
                      Contains("bad path \"lora..lr\": empty key"));
  REQUIRE_INPUT_ERROR(apply_override(j, "datasets[0]=a"),
                      Equals("--set datasets[0]=a: datasets: no such list in the config"));
}

TEST_CASE("load_train_config applies overrides before validation", "[config]") {
  mixlora::test::TempDir dir;
  const auto path = dir.write("cfg.json", with(mixlora_config(), "top_k", 9).dump(2));
  REQUIRE_INPUT_ERROR(load_train_config(path),
                      Equals(path + ": lora[0].top_k: must be in 1..num_experts (8), got 9"));
  CHECK(load_train_config(path, {"lora[0].top_k=3"}).adapters[0].top_k == 3);
  CHECK(load_train_config(path, {"lora[0].num_experts=16"}).adapters[0].num_experts == 16);
  REQUIRE_INPUT_ERROR(load_train_config(path, {"lora[0].top_k=3", "lora[0].r=0"}),
                      Equals(path + ": lora[0].r: must be >= 1, got 0"));
  REQUIRE_INPUT_ERROR(load_train_config(dir / "missing.json"),
                      Contains("missing.json: no such file"));
}

// ---------------------------------------------------------------------------------------------
// adapter_config.json

TEST_CASE("adapter_config.json of a MixLoRA adapter has the plugin's keys and types", "[config]") {
  const auto a = load_train_config(kCompat + "/mixlora.json").adapters.at(0);
  const auto j = adapter_config_to_json(a, "/models/llama");
  CHECK(j["peft_type"] == "MIXLORA");
  CHECK(j["task_type"] == "CAUSAL_LM");
  CHECK(j["base_model_name_or_path"] == "/models/llama");
  CHECK(j["bias"] == "none");
  CHECK(j["routing_strategy"] == "mixlora");
  CHECK(j["num_experts"] == 8);
  CHECK(j["top_k"] == 2);
  CHECK(j["act_fn"] == "silu");
  CHECK(j["r"] == 16);
  // The plugin asserts int r / lora_alpha and float dropout / coefficients.
  CHECK(j["r"].is_number_integer());
  CHECK(j["lora_alpha"].is_number_integer());
  CHECK(j["lora_alpha"] == 32);
  CHECK(j["lora_dropout"].is_number_float());
  CHECK(j["router_aux_loss_coef"].is_number_float());
  CHECK(j["router_init_range"].is_number_float());
  CHECK(j["jitter_noise"].is_number_float());
  CHECK(j["jitter_noise"].dump() == "0.0");
  CHECK(j["target_modules"] == json(kAllTargets));
  CHECK(j["use_rslora"] == false);
  CHECK(j["use_dora"] == false);
  CHECK(j["fan_in_fan_out"] == false);
  CHECK(j["init_lora_weights"] == true);
  CHECK_FALSE(j.contains("task_name"));  // causal LM: nothing of ours to add
  CHECK_FALSE(j.contains("expert_lora"));
}

TEST_CASE("adapter_config.json of a plain causal LoRA is a pure PEFT config", "[config]") {
  auto a = parse_adapter(with(with(lora_config(), "lora_init", "gaussian"), "use_rslora", true));
  const auto j = adapter_config_to_json(a, "base");
  CHECK(j["peft_type"] == "LORA");
  CHECK(j["task_type"] == "CAUSAL_LM");
  CHECK(j["init_lora_weights"] == "gaussian");
  CHECK(j["use_rslora"] == true);
  CHECK(j["lora_alpha"] == 8);
  CHECK(j["target_modules"] == json({"q_proj", "v_proj"}));
  const std::set<std::string> peft_keys = {
      "peft_type",      "task_type",      "base_model_name_or_path", "bias",       "r",
      "lora_alpha",     "lora_dropout",   "target_modules",          "use_rslora", "use_dora",
      "fan_in_fan_out", "inference_mode", "init_lora_weights"};
  for (const auto& item : j.items()) CHECK(peft_keys.count(item.key()) == 1);
  // A fractional alpha stays a float.
  a.lora.lora_alpha = 12.5;
  CHECK(adapter_config_to_json(a, "base")["lora_alpha"] == 12.5);
}

TEST_CASE("adapter_config.json round trip gives equal fields", "[config]") {
  auto j = with(mixlora_config(), "routing_strategy", "mixlora-switch");
  j = with(with(with(j, "expert_lora", json{{"r", 2}, {"lora_alpha", 4}, {"lora_dropout", 0.1}}),
                "capacity_factor", 1.5),
           "expert_capacity", 7);
  j = with(with(with(j, "task_name", "classification"), "labels", {"neg", "neu", "pos"}), "act_fn",
           "gelu");
  j = with(with(with(j, "router_init_range", 0.3), "jitter_noise", 0.05), "router_z_loss_coef",
           0.002);
  j = with(with(with(j, "router_aux_loss_coef", 0.02), "router_loss", false), "ffn_dropout", 0.1);
  j = with(with(with(j, "use_rslora", true), "lora_init", "gaussian"), "num_experts", 6);
  const auto original = parse_adapter(j);
  const auto file = adapter_config_to_json(original, "/models/x");
  CHECK(file["task_type"] == "SEQ_CLS");
  const auto back = parse_adapter_config_file(json::parse(file.dump()), "adapter_config.json");

  CHECK(back.peft_type == PeftType::mixlora);
  CHECK(back.routing_strategy == RoutingStrategy::mixlora_switch);
  CHECK(back.task_name == original.task_name);
  CHECK(back.labels == original.labels);
  CHECK(back.num_labels == 3);
  CHECK(back.lora.r == original.lora.r);
  CHECK(back.lora.lora_alpha == original.lora.lora_alpha);
  CHECK(back.lora.lora_dropout == original.lora.lora_dropout);
  CHECK(back.target_modules == original.target_modules);
  CHECK(back.use_rslora);
  CHECK_FALSE(back.use_dora);
  CHECK(back.lora_init == config::LoraInit::gaussian);
  CHECK(back.num_experts == 6);
  CHECK(back.top_k == original.top_k);
  CHECK(back.top_p == original.top_p);
  CHECK(back.temperature == original.temperature);
  CHECK(back.expert_capacity == 7);
  CHECK(back.capacity_factor == 1.5);
  CHECK(back.router_loss == false);
  CHECK(back.router_aux_loss_coef == 0.02);
  CHECK(back.router_z_loss_coef == 0.002);
  CHECK(back.router_init_range == 0.3);
  CHECK(back.jitter_noise == 0.05);
  CHECK(back.ffn_dropout == 0.1);
  CHECK(back.act_fn == model::Activation::gelu);
  REQUIRE(back.expert_lora.has_value());
  CHECK(back.expert_lora->r == 2);
  CHECK(back.expert_lora->lora_alpha == 4.0);
  CHECK(back.expert_lora->lora_dropout == 0.1);

  // Plain LoRA and the dynamic strategy too.
  for (const auto& config :
       {lora_config(), with(mixlora_config(), "routing_strategy", "mixlora-dynamic"),
        with(lora_config(), "task_name", "glue:mnli"),
        with(lora_config(), "task_name", "arc-e;piqa")}) {
    const auto a = parse_adapter(config);
    const auto b = parse_adapter_config_file(adapter_config_to_json(a, "m"), "adapter_config.json");
    CHECK(b.peft_type == a.peft_type);
    CHECK(b.routing_strategy == a.routing_strategy);
    CHECK(b.task_name == a.task_name);
    CHECK(b.num_labels == a.num_labels);
    CHECK(b.lora.r == a.lora.r);
    CHECK(b.target_modules == a.target_modules);
    CHECK(b.top_p == a.top_p);
  }
}

TEST_CASE("a PEFT adapter_config.json reads with unknown keys ignored", "[config]") {
  // As PEFT 0.13 writes it.
  const auto peft = R"({
    "alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "meta-llama/Llama-2-7b-hf",
    "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
    "layer_replication": null, "layers_pattern": null, "layers_to_transform": null,
    "loftq_config": {}, "lora_alpha": 32, "lora_dropout": 0.1, "megatron_config": null,
    "megatron_core": "megatron.core", "modules_to_save": null, "peft_type": "LORA", "r": 16,
    "rank_pattern": {}, "revision": null, "target_modules": ["v_proj", "q_proj"],
    "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false
  })"_json;
  const auto a = parse_adapter_config_file(peft, "adapter_config.json");
  CHECK(a.peft_type == PeftType::lora);
  CHECK(a.lora.r == 16);
  CHECK(a.lora.lora_alpha == 32.0);
  CHECK(a.lora.lora_dropout == 0.1);
  CHECK(a.target_modules == std::vector<std::string>{"q_proj", "v_proj"});
  CHECK(a.task_name == "casual");
  CHECK(a.lora_init == config::LoraInit::original);

  auto all_linear = peft;
  all_linear["target_modules"] = "all-linear";
  CHECK(parse_adapter_config_file(all_linear, "x").target_modules == kAllTargets);

  auto bad = peft;
  bad["bias"] = "all";
  REQUIRE_INPUT_ERROR(
      parse_adapter_config_file(bad, "adapter_config.json"),
      Equals("adapter_config.json: bias: only \"none\" is supported (no trained biases), "
             "got \"all\""));
  bad = peft;
  bad["rank_pattern"] = {{"q_proj", 4}};
  REQUIRE_INPUT_ERROR(
      parse_adapter_config_file(bad, "adapter_config.json"),
      Equals("adapter_config.json: rank_pattern: is not supported (must be null or empty), "
             "got {\"q_proj\":4}"));
  bad = peft;
  bad["r"] = "16";
  REQUIRE_INPUT_ERROR(parse_adapter_config_file(bad, "adapter_config.json"),
                      Equals("adapter_config.json: r: expected an integer, got string \"16\""));
  bad = peft;
  bad["target_modules"] = ".*proj";
  REQUIRE_INPUT_ERROR(
      parse_adapter_config_file(bad, "adapter_config.json"),
      StartsWith("adapter_config.json: target_modules: must be a list of module names"));
  bad = peft;
  bad["peft_type"] = "IA3";
  REQUIRE_INPUT_ERROR(parse_adapter_config_file(bad, "adapter_config.json"),
                      Equals("adapter_config.json: peft_type: must be one of LORA, MIXLORA, "
                             "LORAMOE, MOLA, got \"IA3\""));
}

TEST_CASE("a MoE-PEFT adapter_config.json reads with missing keys defaulted", "[config]") {
  // As MoE-PEFT's MixLoraConfig.export writes a switch adapter (no router_init_range, jitter...).
  const auto moe_peft = R"({
    "bias": "none", "peft_type": "MIXLORA", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"],
    "routing_strategy": "mixlora-switch", "num_experts": 8, "expert_capacity": 16,
    "sparse_step": null, "base_model_name_or_path": "TinyLlama", "task_type": "CAUSAL_LM",
    "expert_lora": {"bias": "none", "use_rslora": true, "r": 8, "lora_alpha": 16, "lora_dropout": 0.05}
  })"_json;
  const auto a = parse_adapter_config_file(moe_peft, "adapter_config.json");
  CHECK(a.peft_type == PeftType::mixlora);
  CHECK(a.routing_strategy == RoutingStrategy::mixlora_switch);
  CHECK(a.expert_capacity == 16);
  CHECK(a.router_init_range == 1.0);
  CHECK(a.jitter_noise == 0.01);
  CHECK(a.router_aux_loss_coef == 0.001);
  CHECK(a.router_z_loss_coef == 0.001);
  CHECK(a.act_fn == model::Activation::silu);
  CHECK(a.target_modules == kAllTargets);
  REQUIRE(a.expert_lora.has_value());
  CHECK(a.expert_lora->r == 8);

  const auto minimal =
      R"({"peft_type": "MIXLORA", "routing_strategy": "mixlora", "num_experts": 4})"_json;
  const auto m = parse_adapter_config_file(minimal, "adapter_config.json");
  const AdapterConfig defaults;
  CHECK(m.lora.r == defaults.lora.r);
  CHECK(m.lora.lora_alpha == defaults.lora.lora_alpha);
  CHECK(m.target_modules == defaults.target_modules);
  CHECK(m.top_k == 2);
  CHECK(m.num_experts == 4);
  CHECK(m.router_init_range == 0.02);
  auto too_many = minimal;
  too_many["top_k"] = 9;
  REQUIRE_INPUT_ERROR(parse_adapter_config_file(too_many, "x"),
                      Equals("x: top_k: must be in 1..num_experts (4), got 9"));
}

// ---------------------------------------------------------------------------------------------
// The shipped example configs

TEST_CASE("configs/ examples parse", "[config]") {
  const auto mixlora = load_train_config(kConfigs + "/mixlora.json");
  REQUIRE(mixlora.adapters.size() == 1);
  CHECK(mixlora.adapters[0].peft_type == PeftType::mixlora);
  CHECK(mixlora.adapters[0].routing_strategy == RoutingStrategy::mixlora);
  CHECK(mixlora.adapters[0].data == std::vector<std::string>{"data/stories/train.jsonl"});

  const auto dynamic = load_train_config(kConfigs + "/mixlora-dynamic.json");
  CHECK(dynamic.adapters.at(0).routing_strategy == RoutingStrategy::mixlora_dynamic);

  const auto switch_config = load_train_config(kConfigs + "/mixlora-switch.json");
  CHECK(switch_config.adapters.at(0).routing_strategy == RoutingStrategy::mixlora_switch);
  CHECK(switch_config.adapters.at(0).router_init_range == 1.0);

  const auto lora = load_train_config(kConfigs + "/lora.json");
  CHECK(lora.adapters.at(0).peft_type == PeftType::lora);

  const auto multi = load_train_config(kConfigs + "/multi-task.json");
  CHECK(multi.adapters.size() >= 2);

  for (const auto* config : {&mixlora, &dynamic, &switch_config, &lora, &multi}) {
    CHECK(config->cutoff_len <= 256);  // small enough for the tiny stories260K model
    for (const auto& adapter : config->adapters) {
      CHECK_FALSE(adapter.data.empty());
      CHECK(adapter.num_experts <= 8);
      CHECK(adapter.lora.r <= 16);
    }
  }
}
