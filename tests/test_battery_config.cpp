// Bad-input battery, training config: syntax, size, nesting, unknown keys, wrong types, each
// validation rule class, and adapter names that would escape the output directory.
#include "battery.h"

#include "catch.h"

#include <functional>

using namespace mixlora::test;
using namespace mixlora::test::battery;

namespace {

struct Case {
  std::string what;
  std::function<void(TrainJob&)> breaks;
  std::vector<std::string> messages;
  bool write_config = true;  // false: the case wrote config.json itself
};

// A case that sets lora[0][key] = value.
Case adapter_value(const std::string& key, nlohmann::json value,
                   std::vector<std::string> messages) {
  return {"lora[0]." + key + " = " + value.dump(),
          [key, value](TrainJob& j) { j.adapter()[key] = value; }, std::move(messages)};
}

Case top_value(const std::string& key, nlohmann::json value, std::vector<std::string> messages) {
  return {key + " = " + value.dump(), [key, value](TrainJob& j) { j.config[key] = value; },
          std::move(messages)};
}

Case raw_config(const std::string& what, std::string text, std::vector<std::string> messages) {
  return {what, [text](TrainJob& j) { j.ws.write("config.json", text); }, std::move(messages),
          false};
}

}  // namespace

TEST_CASE("battery: a broken training config is exit 2, one line, no output", "[battery]") {
  const std::vector<Case> cases = {
      raw_config("empty file", "", {"config.json: invalid JSON"}),
      raw_config("not JSON", "{\"lora\": [", {"config.json: invalid JSON"}),
      raw_config("a number too large for a double", "{\"lora\": [1e999]}",
                 {"config.json: invalid JSON: number overflow parsing '1e999'"}),
      raw_config("a JSON array at the top", "[1, 2]", {"config.json"}),
      raw_config("nested 100000 deep", nesting_bomb(100000), {"config.json"}),
      raw_config("nested 100000 deep inside lora[0]",
                 "{\"lora\": [{\"name\": \"a\", \"r\": " + nesting_bomb(100000) + "}]}",
                 {"config.json", "r"}),
      raw_config("invalid UTF-8 in a string", "{\"lora\": [{\"name\": \"a\xff\"}]}",
                 {"config.json"}),
      {"a 65 MiB file (over the 64 MiB cap)",
       [](TrainJob& j) {
         j.ws.write("config.json", j.config.dump());
         std::filesystem::resize_file(j.config_path, 65ull << 20);
       },
       {"config.json", "64 MiB"},
       false},
      {"missing file",
       [](TrainJob& j) { j.config_path = j.ws / "nope.json"; },
       {"nope.json: no such file"},
       false},
      top_value("cutof_len", 64, {"cutof_len: unknown key", "did you mean 'cutoff_len'"}),
      adapter_value("learning_rate", 0.1, {"lora[0].learning_rate: unknown key"}),
      adapter_value("lr", "fast", {"lora[0].lr: expected a number, got string \"fast\""}),
      adapter_value("r", 2.5, {"lora[0].r: expected an integer"}),
      adapter_value("use_dora", "yes", {"lora[0].use_dora: expected true or false"}),
      adapter_value("target_modules", 7, {"lora[0].target_modules"}),
      top_value("lora", nlohmann::json::array(), {"lora: expected a non-empty list"}),
      top_value("lora", "a", {"lora: expected a non-empty list"}),
      top_value("save_step", 0, {"save_step: must be >= 1"}),
      top_value("cutoff_len", 1, {"cutoff_len: must be >= 2"}),
      top_value("train_strategy", "fast", {"train_strategy"}),
      top_value("dtype", "fp8", {"dtype"}),
      top_value("seed", -1, {"seed: must be >= 0"}),
      top_value("max_nonfinite_steps", -1, {"max_nonfinite_steps: must be >= 0"}),
      adapter_value("lr", 0, {"lora[0].lr"}),
      adapter_value("lora_dropout", 1.0, {"lora[0].lora_dropout"}),
      adapter_value("micro_batch_size", 3, {"lora[0]", "batch_size"}),
      adapter_value("num_epochs", 0, {"lora[0].num_epochs"}),
      adapter_value("optim", "adam", {"lora[0].optim", "adamw"}),
      adapter_value("scheduler_type", "exp", {"lora[0].scheduler_type"}),
      adapter_value("warmup_ratio", 1.0, {"lora[0].warmup_ratio"}),
      adapter_value("task_name", "squad", {"lora[0].task_name", "unknown task"}),
      adapter_value("task_name", "classification", {"lora[0]", "labels"}),
      adapter_value("peft_type", "LOHA", {"lora[0].peft_type"}),
      {"top_k 3 with num_experts 2",
       [](TrainJob& j) {
         j.adapter()["num_experts"] = 2;
         j.adapter()["top_k"] = 3;
       },
       {"lora[0].top_k: must be in 1..num_experts (2), got 3"}},
      {"two adapters with one name",
       [](TrainJob& j) { j.config["lora"].push_back(j.adapter()); },
       {"lora[1].name: must be unique"}},
      {"no data for the adapter",
       [](TrainJob& j) { j.adapter().erase("data"); },
       {"lora[0].data: missing"}},
      {"data file missing",
       [](TrainJob& j) { j.adapter()["data"] = j.ws / "missing.jsonl"; },
       {"missing.jsonl: data file not found"}},
      // Adapter names become directories under output_dir: nothing may leave it.
      adapter_value("name", "../escape", {"lora[0].name: must be a file name"}),
      adapter_value("name", "/etc/cron.d/x", {"lora[0].name: must be a file name"}),
      adapter_value("name", "a/b", {"lora[0].name: must be a file name"}),
      adapter_value("name", "..", {"lora[0].name: must be a file name"}),
      adapter_value("name", ".", {"lora[0].name: must be a file name"}),
      adapter_value("name", "", {"lora[0].name: must be a file name"}),
      adapter_value("name", "a\nb", {"lora[0].name: must be a file name"}),
      adapter_value("name", "a\x01z", {"lora[0].name: must be a file name"}),
      adapter_value("name", std::string(200, 'a'), {"lora[0].name: must be a file name"}),
      adapter_value("name", 5, {"lora[0].name: expected a string"}),
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.what) {
      TrainJob job;
      c.breaks(job);
      require_clean_input_error(job.run(c.write_config), c.messages, job.out_dir, c.what);
    }
  }
}

TEST_CASE("battery: bad --set overrides are exit 2, one line, no output", "[battery]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"lora[0]", "--set lora[0]: expected PATH=VALUE"},
      {"=3", "--set =3: expected PATH=VALUE"},
      {"lora[9].r=2", "--set lora[9].r=2: lora[9]: index 9 is out of range (lora has 1 element)"},
      {"cutoff_len=[[[", "cutoff_len: expected an integer, got string \"[[[\""},
      {"lora[0].r=" + nesting_bomb(1000), "--set: JSON nested deeper than 128 levels"}};
  for (const auto& [set, message] : cases) {
    DYNAMIC_SECTION("--set " << set.substr(0, 20)) {
      TrainJob job;
      job.extra = {"--set", set};
      require_clean_input_error(job.run(), {message}, job.out_dir, "--set " + set.substr(0, 20));
    }
  }
}
