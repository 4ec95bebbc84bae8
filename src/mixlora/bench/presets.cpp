#include "mixlora/bench/presets.h"

#include "mixlora/common/error.h"

#include <fmt/format.h>

namespace mixlora::bench {

namespace {

struct Shape {
  const char* name;
  int64_t hidden, intermediate, layers, heads, kv_heads, vocab;
};

// SPEC section 9: hidden, intermediate, layers, heads, kv heads, vocab.
constexpr Shape kShapes[] = {
    {"tiny", 64, 172, 5, 8, 4, 512},
    {"small", 512, 1376, 8, 8, 8, 32000},
    // small with Llama-3's 128,256-word vocabulary: where the LM loss's logits dominate memory.
    {"small-128k", 512, 1376, 8, 8, 8, 128256},
    {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000},
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000},
};

}  // namespace

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& s : kShapes) out.emplace_back(s.name);
    return out;
  }();
  return names;
}

model::ModelConfig preset_config(const std::string& name) {
  for (const auto& s : kShapes) {
    if (name != s.name) continue;
    model::ModelConfig c;
    c.architecture = "LlamaForCausalLM";
    c.vocab_size = s.vocab;
    c.hidden_size = s.hidden;
    c.intermediate_size = s.intermediate;
    c.num_layers = s.layers;
    c.num_heads = s.heads;
    c.num_kv_heads = s.kv_heads;
    c.head_dim = s.hidden / s.heads;
    c.max_position_embeddings = 4096;
    c.rms_norm_eps = 1e-5;
    return c;
  }
  fail_input("--preset: unknown preset '{}' (known: {})", name, fmt::join(preset_names(), ", "));
}

}  // namespace mixlora::bench
