// Full-parameter pretraining (train/pretrain.h): a tiny random model trained for a few steps on
// the pre-tokenized copy-task rows lowers its loss, changes every weight tensor (norms and tied
// embeddings included), writes a directory that load_base_model reads back with identical
// logits, and is deterministic for a seed.
#include "mixlora/common/error.h"
#include "mixlora/data/pretokenized.h"
#include "mixlora/io/json_file.h"
#include "mixlora/model/base_model.h"
#include "mixlora/model/decoder.h"
#include "mixlora/tasks/causal_lm.h"
#include "mixlora/train/pretrain.h"

#include "catch.h"
#include "cli_runner.h"
#include "stories_model.h"
#include "test_helpers.h"
#include <torch/csrc/autograd/grad_mode.h>

#include <filesystem>

namespace fs = std::filesystem;
using namespace mixlora;

namespace {

std::vector<data::Sample> rows(size_t count) { return test::copy_task_rows(count); }

model::BaseModel tiny_model(uint64_t seed) {
  auto c = test::tiny_llama_config(/*vocab_size=*/512, /*max_positions=*/64);
  c.tie_word_embeddings = true;
  return model::random_base_model(c, at::kFloat, at::kCPU, seed);
}

config::TrainConfig pretrain_config() {
  config::TrainConfig c;
  config::AdapterConfig a;
  a.name = "pretrain";
  a.optim = config::Optimizer::adamw;
  a.lr = 1e-2;
  a.weight_decay = 0.01;
  a.scheduler_type = config::SchedulerType::cosine;
  a.warmup_steps = 2;
  a.batch_size = 16;
  a.micro_batch_size = 8;
  a.num_epochs = 2;
  c.adapters = {a};
  c.max_grad_norm = 1.0;
  c.log_every = 4;
  c.seed = 7;
  return c;
}

// Every weight of the model by its Hugging Face name.
std::vector<std::pair<std::string, at::Tensor>> named_weights(const model::BaseModel& m) {
  std::vector<std::pair<std::string, at::Tensor>> out{{"embed_tokens", m.embed_tokens}};
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const auto p = model::layer_prefix(static_cast<int64_t>(i));
    const auto& l = m.layers[i];
    out.insert(out.end(), {{p + "input_layernorm", l.input_norm},
                           {p + "post_attention_layernorm", l.post_attention_norm},
                           {p + "q_proj", l.attention.q_proj},
                           {p + "k_proj", l.attention.k_proj},
                           {p + "v_proj", l.attention.v_proj},
                           {p + "o_proj", l.attention.o_proj},
                           {p + "gate_proj", l.mlp.gate_proj},
                           {p + "up_proj", l.mlp.up_proj},
                           {p + "down_proj", l.mlp.down_proj}});
  }
  out.emplace_back("norm", m.final_norm);
  return out;
}

// Mean next-token loss of `samples` in one batch.
double loss_of(const model::BaseModel& m, const std::vector<data::Sample>& samples) {
  torch::NoGradGuard no_grad;
  std::vector<const data::Sample*> ptrs;
  for (const auto& s : samples) ptrs.push_back(&s);
  const auto batch = data::make_batch(ptrs, 0);
  const model::Decoder decoder(m);
  const auto hidden = decoder.hidden_states(batch.input_ids, batch.attention_mask);
  return tasks::causal_lm_loss(decoder.logits(hidden), batch.labels).mean().item<double>();
}

at::Tensor logits_of(const model::BaseModel& m, const std::vector<data::Sample>& samples) {
  torch::NoGradGuard no_grad;
  std::vector<const data::Sample*> ptrs;
  for (const auto& s : samples) ptrs.push_back(&s);
  const auto batch = data::make_batch(ptrs, 0);
  const model::Decoder decoder(m);
  return decoder.logits(decoder.hidden_states(batch.input_ids, batch.attention_mask));
}

}  // namespace

TEST_CASE("pretraining trains every weight, lowers the loss and saves a loadable model",
          "[pretrain]") {
  test::TempDir out;
  auto model = tiny_model(3);
  std::vector<std::pair<std::string, at::Tensor>> before;
  for (const auto& [name, t] : named_weights(model)) before.emplace_back(name, t.clone());
  const auto probe = rows(32);
  const double loss_before = loss_of(model, probe);

  train::PretrainOptions options;
  options.output_dir = out.str();
  options.tokenizer_source = MIXLORA_TEST_SOURCE_DIR "/data/tiny-llama";
  const auto summary = train::pretrain(pretrain_config(), model, rows(128), options);
  CHECK(summary.steps == 16);  // 128 rows / batch 16 x 2 epochs
  CHECK(summary.tokens > 0);
  CHECK(summary.last_loss < summary.first_loss);

  const double loss_after = loss_of(model, probe);
  INFO("loss " << loss_before << " -> " << loss_after);
  CHECK(loss_after < loss_before - 0.5);

  const auto after = named_weights(model);
  for (size_t i = 0; i < before.size(); ++i) {
    INFO(before[i].first);
    CHECK_FALSE(at::equal(before[i].second, after[i].second.detach()));
  }
  CHECK(model.lm_head.is_same(model.embed_tokens));  // still tied: one tensor

  for (const char* name : {"config.json", "model.safetensors", "metrics.jsonl", "tokenizer.model",
                           "tokenizer_config.json"}) {
    INFO(name);
    CHECK(fs::exists(out.path / name));
  }
  const auto loaded = model::load_base_model(out.str(), at::kFloat, at::kCPU);
  CHECK(loaded.config.tie_word_embeddings);
  CHECK(at::equal(logits_of(loaded, probe), logits_of(model, probe)));
}

TEST_CASE("pretraining is deterministic for a seed", "[pretrain]") {
  auto a = tiny_model(5), b = tiny_model(5), c = tiny_model(5);
  auto config = pretrain_config();
  config.adapters[0].num_epochs = 1;
  const auto sa = train::pretrain(config, a, rows(64), {});
  const auto sb = train::pretrain(config, b, rows(64), {});
  CHECK(sa.last_loss == sb.last_loss);
  const auto wa = named_weights(a), wb = named_weights(b);
  for (size_t i = 0; i < wa.size(); ++i) {
    INFO(wa[i].first);
    CHECK(at::equal(wa[i].second, wb[i].second));
  }
  config.seed = 8;  // another data order
  train::pretrain(config, c, rows(64), {});
  CHECK_FALSE(at::equal(a.layers[0].attention.q_proj, c.layers[0].attention.q_proj));
}

// Recomputing each layer in backward (the adapters' gradient checkpointing) must not change
// what full-parameter training learns: the decoder's weights require grad here, not only the
// adapters'.
TEST_CASE("pretraining with gradient checkpointing equals it without", "[pretrain]") {
  auto plain = tiny_model(4), recomputed = tiny_model(4);
  auto config = pretrain_config();
  config.adapters[0].num_epochs = 1;
  const auto a = train::pretrain(config, plain, rows(32), {});
  config.gradient_checkpointing = true;
  const auto b = train::pretrain(config, recomputed, rows(32), {});
  CHECK(a.steps == b.steps);
  CHECK(b.last_loss == Approx(a.last_loss).epsilon(1e-5));
  const auto initial = tiny_model(4);
  const auto w0 = named_weights(initial), wa = named_weights(plain), wb = named_weights(recomputed);
  for (size_t i = 0; i < wa.size(); ++i) {
    INFO(wa[i].first);
    CHECK_FALSE(at::equal(w0[i].second, wb[i].second.detach()));  // it trained
    CHECK((wa[i].second - wb[i].second).abs().max().item<double>() < 1e-5);
  }
}

TEST_CASE("pretraining refuses non-fp32 weights and several config entries", "[pretrain]") {
  auto config = pretrain_config();
  auto bf16 = model::random_base_model(tiny_model(1).config, at::kBFloat16, at::kCPU, 1);
  REQUIRE_INPUT_ERROR(train::pretrain(config, bf16, rows(16), {}), Catch::Contains("fp32"));
  config.adapters.push_back(config.adapters[0]);
  auto model = tiny_model(1);
  REQUIRE_INPUT_ERROR(train::pretrain(config, model, rows(16), {}), Catch::Contains("exactly one"));
}

TEST_CASE("mixlora-train --pretrain from a shape file writes a model that the other tools load",
          "[pretrain][cli]") {
  test::TempDir ws;
  // A small shape of the tiny LLaMA's vocabulary, trained on a few text rows with its tokenizer.
  auto shape = io::read_json_file(MIXLORA_TEST_SOURCE_DIR "/configs/tiny-llama-shape.json");
  shape["hidden_size"] = 32;
  shape["intermediate_size"] = 64;
  shape["num_hidden_layers"] = 2;
  shape["num_attention_heads"] = 4;
  shape["num_key_value_heads"] = 2;
  const auto shape_file = (ws.path / "shape.json").string();
  test::write_file(shape_file, shape.dump());
  const auto text = (ws.path / "text.jsonl").string();
  test::write_file(
      text,
      "{\"text\": \"Call me Ishmael. Some years ago, never mind how long precisely.\"}\n"
      "{\"text\": \"It is a way I have of driving off the spleen.\"}\n");
  const auto out = ws.path / "model";
  const auto pretrain = [&](const std::string& extra) {
    return test::run_tool(
        fmt::format(
            "mixlora-train --pretrain --config configs/pretrain-tiny-llama.json "
            "--init-model {} --tokenizer data/tiny-llama --output-dir {} "
            "--set lora[0].data={} --set lora[0].batch_size=2 --set lora[0].micro_batch_size=2 "
            "--set lora[0].num_epochs=3 --set lora[0].warmup_steps=0 {}",
            test::shell_quote(shape_file), test::shell_quote(out.string()), test::shell_quote(text),
            extra),
        MIXLORA_TEST_SOURCE_DIR);
  };
  const auto first = pretrain("");
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  CHECK_THAT(first.out, Catch::Matchers::Contains("pretrain: 3 steps"));
  for (const auto* file : {"config.json", "model.safetensors", "tokenizer.model", "metrics.jsonl"})
    CHECK(fs::is_regular_file(out / file));
  const auto model = model::load_base_model(out.string(), at::kFloat, at::kCPU);
  CHECK(model.config.hidden_size == 32);
  CHECK(model.config.vocab_size == 2048);

  // A second run refuses to replace the model; a base model and --init-model exclude each other.
  const auto again = pretrain("");
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.err, Catch::Matchers::Contains("--overwrite"));
  const auto both = pretrain("--overwrite --base-model data/tiny-llama");
  CHECK(both.exit_code == 2);
  CHECK_THAT(both.err, Catch::Matchers::Contains("exclude each other"));

  // The written directory is a base model for generation (its own tokenizer).
  const auto generated = test::run_tool(
      fmt::format("mixlora-generate --base-model {} --prompt Call --max-new-tokens 4 "
                  "--temperature 0 --print-ids",
                  test::shell_quote(out.string())));
  INFO(generated.err);
  CHECK(generated.exit_code == 0);
}
