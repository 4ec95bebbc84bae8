// libFuzzer harness: the JSON validators of everything a user hands us as a config -- the
// MoE-PEFT training config (every validation rule), adapter_config.json and a model's
// config.json. Each must accept or throw InputError; nothing else.
#include "fuzz_input.h"
#include "mixlora/config/train_config.h"
#include "mixlora/io/json_file.h"
#include "mixlora/model/model_config.h"

#include <spdlog/spdlog.h>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // warnings about ignored keys would flood the log
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = mixlora::fuzz::write_input(data, size, ".json");
  mixlora::fuzz::expect_input_errors_only([&] {
    const auto config = mixlora::config::load_train_config(path);
    mixlora::config::require_training_inputs(config, path);
  });
  mixlora::fuzz::expect_input_errors_only([&] {
    const auto json = mixlora::io::read_json_file(path);
    mixlora::fuzz::expect_input_errors_only([&] {
      const auto adapter = mixlora::config::parse_adapter_config_file(json, path);
      // What we accept we must be able to write back.
      (void)mixlora::config::adapter_config_to_json(adapter, "base").dump();
    });
    mixlora::fuzz::expect_input_errors_only(
        [&] { (void)mixlora::model::parse_model_config(json, path); });
  });
  return 0;
}
