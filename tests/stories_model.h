// The real stories260K model, loaded once per test process (fp32, on the CPU) and shared by the
// test cases that run it.
#pragma once

#include "mixlora/data/pretokenized.h"
#include "mixlora/data/row_reader.h"
#include "mixlora/model/base_model.h"
#include "test_helpers.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <vector>

namespace mixlora::test {

inline const model::BaseModel& stories() {
  static const auto model =
      model::load_base_model(stories_dir(), at::kFloat, c10::Device(c10::kCPU));
  return model;
}

// The first `count` rows of the stories copy task (data/stories/train.jsonl).
inline std::vector<data::Sample> copy_task_rows(size_t count) {
  static const auto all = [] {
    std::vector<data::Sample> rows;
    data::for_each_row(MIXLORA_TEST_SOURCE_DIR "/data/stories/train.jsonl", false,
                       [&](const nlohmann::json& row, const std::string& where) {
                         rows.push_back(data::parse_pretokenized_row(row, where, 0));
                       });
    return rows;
  }();
  return {all.begin(), all.begin() + std::min(count, all.size())};
}

// A tiny LLaMA shape (hidden 32, 2 layers, 4 heads / 2 kv heads) for random test models.
inline model::ModelConfig tiny_llama_config(int64_t vocab_size, int64_t max_positions) {
  model::ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = vocab_size;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = max_positions;
  return c;
}

}  // namespace mixlora::test
