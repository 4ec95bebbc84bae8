// Model shapes the benchmark builds at random (SPEC section 9).
#pragma once

#include "mixlora/model/model_config.h"

#include <string>
#include <vector>

namespace mixlora::bench {

// tiny (stories260K), small (~30M parameters, 32000 vocab), tinyllama-1.1b, llama2-7b.
// InputError naming the known presets for any other name.
model::ModelConfig preset_config(const std::string& name);
const std::vector<std::string>& preset_names();

}  // namespace mixlora::bench
