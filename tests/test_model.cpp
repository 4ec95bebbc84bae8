// Decoder forward against the independent Python reference (tests/reference/llama_reference.py)
// on the real stories260K checkpoint, plus padding, KV-cache and config/loading checks.
#include "mixlora/common/error.h"
#include "mixlora/generate/generator.h"
#include "mixlora/io/json_file.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/model/base_model.h"
#include "mixlora/model/decoder.h"

#include "catch.h"
#include "stories_model.h"
#include "test_helpers.h"
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/version.h>

#include <filesystem>

namespace fs = std::filesystem;
using namespace mixlora;
using mixlora::test::stories_dir;
using mixlora::test::TempDir;

namespace {

const nlohmann::json& reference() {
  static const auto fixture =
      io::read_json_file(MIXLORA_TEST_SOURCE_DIR "/tests/fixtures/stories260K_reference.json");
  return fixture;
}

at::Tensor int_matrix(const nlohmann::json& rows) {
  std::vector<int64_t> flat;
  for (const auto& row : rows)
    for (const auto& v : row) flat.push_back(v.get<int64_t>());
  return at::tensor(flat, at::kLong).view({static_cast<int64_t>(rows.size()), -1});
}

// stories260K in `dtype`, loaded once per dtype (fp32: the shared model of stories_model.h).
const model::BaseModel& stories(c10::ScalarType dtype = at::kFloat) {
  if (dtype == at::kFloat) return test::stories();
  static std::map<c10::ScalarType, model::BaseModel> cache;
  auto it = cache.find(dtype);
  if (it == cache.end()) {
    it = cache.emplace(dtype, model::load_base_model(stories_dir(), dtype, c10::Device(c10::kCPU)))
             .first;
  }
  return it->second;
}

// A copy of stories260K whose tensors are edited by `edit` before saving.
void write_edited_stories(
    const std::string& dir,
    const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& edit) {
  fs::copy_file(stories_dir() + "/config.json", dir + "/config.json");
  auto file = io::SafeTensorsFile::open(stories_dir() + "/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& info : file.tensors()) tensors.emplace_back(info.name, file.load(info.name));
  edit(tensors);
  io::save_safetensors(dir + "/model.safetensors", tensors);
}

}  // namespace

TEST_CASE("stories260K logits match the Python reference to 1e-4", "[model]") {
  torch::NoGradGuard no_grad;
  const auto& fixture = reference();
  const auto ids = int_matrix(fixture["input_ids"]);
  const auto mask = int_matrix(fixture["attention_mask"]);
  const model::Decoder decoder(stories());
  const auto logits = decoder.logits(decoder.hidden_states(ids, mask));
  REQUIRE(logits.sizes() == at::IntArrayRef({ids.size(0), ids.size(1), 512}));

  double max_error = 0.0;
  int64_t compared = 0;
  for (size_t b = 0; b < fixture["logits"].size(); ++b) {
    const auto& rows = fixture["logits"][b];
    for (size_t t = 0; t < rows.size(); ++t) {
      std::vector<float> expected = rows[t].get<std::vector<float>>();
      auto diff = (logits[b][t] - at::tensor(expected)).abs().max().item<double>();
      max_error = std::max(max_error, diff);
      ++compared;
    }
  }
  CHECK(compared == 12 + 7 + 3);
  CHECK(max_error < 1e-4);
}

TEST_CASE("greedy generation reproduces the reference continuations", "[model][generate]") {
  const model::Decoder decoder(stories());
  for (const auto& run : reference()["greedy"]) {
    const auto prompt = run["prompt"].get<std::vector<int64_t>>();
    const auto expected = run["new_tokens"].get<std::vector<int64_t>>();
    generate::GenerationOptions options;
    options.max_new_tokens = 64;
    options.eos_token_id = 2;
    INFO("prompt of " << prompt.size() << " tokens");
    CHECK(generate::generate(decoder, prompt, options) == expected);
  }
}

TEST_CASE("left padding and the KV cache leave the logits unchanged", "[model]") {
  torch::NoGradGuard no_grad;
  const model::Decoder decoder(stories());
  const auto sequence =
      at::tensor(std::vector<int64_t>{1, 403, 407, 261, 378, 300, 290}, at::kLong).view({1, -1});
  const auto full = decoder.logits(decoder.hidden_states(sequence, at::Tensor()));

  SECTION("three pad tokens on the left") {
    auto padded = at::cat({at::zeros({1, 3}, at::kLong), sequence}, 1);
    auto mask = at::cat({at::zeros({1, 3}, at::kLong), at::ones({1, 7}, at::kLong)}, 1);
    auto logits = decoder.logits(decoder.hidden_states(padded, mask)).narrow(1, 3, 7);
    CHECK((logits - full).abs().max().item<double>() < 1e-4);
  }
  SECTION("prefill four tokens, then one token at a time") {
    model::KVCache cache(stories().config, 1, 7, at::kFloat, c10::Device(c10::kCPU));
    auto first =
        decoder.logits(decoder.hidden_states(sequence.narrow(1, 0, 4), at::Tensor(), &cache));
    // Relative to the logits' scale: one-row (matrix-vector) and many-row products take different
    // kernels and summation orders (AVX512 CPUs differ by ~2e-5 on logits of magnitude ~10).
    const double tolerance = 1e-5 * full.abs().max().item<double>();
    CHECK((first - full.narrow(1, 0, 4)).abs().max().item<double>() < tolerance);
    for (int64_t t = 4; t < 7; ++t) {
      auto step =
          decoder.logits(decoder.hidden_states(sequence.narrow(1, t, 1), at::Tensor(), &cache));
      // (LibTorch 2.x's SDPA also runs one cached query and the full sequence through different
      // CPU kernels.)
      CHECK((step - full.narrow(1, t, 1)).abs().max().item<double>() < tolerance);
    }
    CHECK(cache.length() == 7);
  }
}

TEST_CASE("bf16 base weights stay close to fp32", "[model]") {
  torch::NoGradGuard no_grad;
  const auto ids = int_matrix(reference()["input_ids"]).narrow(0, 0, 1);
  const model::Decoder reference_decoder(stories());
  const auto expected = at::log_softmax(
      reference_decoder.logits(reference_decoder.hidden_states(ids, at::Tensor())), -1);
  for (auto dtype : {at::kBFloat16}) {
    const auto& low = stories(dtype);
    CHECK(low.layers[0].mlp.up_proj.scalar_type() == dtype);
    const model::Decoder decoder(low);
    auto got = at::log_softmax(decoder.logits(decoder.hidden_states(ids, at::Tensor())), -1);
    // Same greedy choice nearly everywhere and small log-prob drift.
    auto agree = (got.argmax(-1) == expected.argmax(-1)).to(at::kFloat).mean().item<double>();
    INFO(c10::toString(dtype));
    CHECK(agree >= 0.9);
    // bf16 keeps 8 bits of mantissa; through 5 layers of a 64-wide model that moves
    // probabilities by a few percent (0.077 measured).
    CHECK((got.exp() - expected.exp()).abs().max().item<double>() < 0.1);
  }
}

TEST_CASE("rope scaling: linear divides every frequency, llama3 only the long wavelengths",
          "[model]") {
  model::ModelConfig config;
  config.head_dim = 128;
  config.rope_theta = 500000.0;
  const auto plain = model::rope_inverse_frequencies(config);
  config.rope_scaling.type = model::RopeScaling::Type::linear;
  config.rope_scaling.factor = 4.0;
  CHECK(at::allclose(model::rope_inverse_frequencies(config), plain / 4.0));

  config.rope_scaling.type = model::RopeScaling::Type::llama3;
  config.rope_scaling.factor = 8.0;
  config.rope_scaling.low_freq_factor = 1.0;
  config.rope_scaling.high_freq_factor = 4.0;
  config.rope_scaling.original_max_position_embeddings = 8192;
  const auto scaled = model::rope_inverse_frequencies(config);
  const auto wavelen = 2 * M_PI / plain;
  for (int64_t i = 0; i < plain.size(0); ++i) {
    const double w = wavelen[i].item<double>(), p = plain[i].item<double>(),
                 s = scaled[i].item<double>();
    if (w < 8192.0 / 4.0) {
      CHECK(s == Approx(p));
    } else if (w > 8192.0) {
      CHECK(s == Approx(p / 8.0));
    } else {
      // Interpolation between the two regimes (LLaMA 3.1 formula, computed independently here).
      const double smooth = (8192.0 / w - 1.0) / (4.0 - 1.0);
      CHECK(s == Approx((1 - smooth) * p / 8.0 + smooth * p).epsilon(1e-5));
    }
  }
}

TEST_CASE("config.json is validated with the file and key in the message", "[model][config]") {
  const auto base = io::read_json_file(stories_dir() + "/config.json");
  auto expect_error = [&](const std::function<void(nlohmann::json&)>& edit,
                          const std::string& words) {
    auto json = base;
    edit(json);
    REQUIRE_INPUT_ERROR(
        model::parse_model_config(json, "cfg/config.json"),
        Catch::Matchers::Contains("cfg/config.json") && Catch::Matchers::Contains(words));
  };
  const auto config = model::parse_model_config(base, "config.json");
  CHECK(config.architecture == "LlamaForCausalLM");
  CHECK(config.num_kv_heads == 4);
  CHECK(config.head_dim == 8);
  CHECK(config.tie_word_embeddings);

  expect_error([](auto& j) { j["architectures"] = {"GPT2LMHeadModel"}; }, "GPT2LMHeadModel");
  expect_error([](auto& j) { j["hidden_size"] = "64"; }, "hidden_size: expected an integer");
  expect_error([](auto& j) { j.erase("num_hidden_layers"); },
               "missing required key 'num_hidden_layers'");
  expect_error([](auto& j) { j["num_key_value_heads"] = 3; },
               "num_key_value_heads (3) must divide");
  expect_error([](auto& j) { j["intermediate_size"] = 0; }, "intermediate_size: must be positive");
  expect_error(
      [](auto& j) {
        j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
      },
      "'yarn' is not supported");
  expect_error([](auto& j) { j["hidden_act"] = "swish2"; }, "hidden_act 'swish2'");
  expect_error([](auto& j) { j["tie_word_embeddings"] = 1; }, "expected true or false");

  auto qwen = base;
  qwen["architectures"] = {"Qwen2ForCausalLM"};
  CHECK(model::parse_model_config(qwen, "q").attention_bias);
  auto llama3 = base;
  llama3["eos_token_id"] = {128001, 128009};
  llama3["rope_scaling"] = {{"rope_type", "llama3"},
                            {"factor", 8.0},
                            {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 8192}};
  const auto parsed = model::parse_model_config(llama3, "l3");
  CHECK(parsed.eos_token_id == 128001);
  CHECK(parsed.rope_scaling.type == model::RopeScaling::Type::llama3);
}

TEST_CASE("loading names missing, mis-shaped and unexpected tensors", "[model][config]") {
  const auto cpu = c10::Device(c10::kCPU);
  SECTION("missing directory") {
    REQUIRE_INPUT_ERROR(
        model::load_base_model("/nonexistent/model", at::kFloat, cpu),
        Catch::Matchers::Contains("/nonexistent/model: base model directory not found"));
  }
  SECTION("missing tensor") {
    TempDir dir;
    write_edited_stories(dir.str(), [](auto& tensors) {
      tensors.erase(
          std::remove_if(tensors.begin(), tensors.end(),
                         [](auto& t) { return t.first == "model.layers.3.mlp.up_proj.weight"; }),
          tensors.end());
    });
    REQUIRE_INPUT_ERROR(
        model::load_base_model(dir.str(), at::kFloat, cpu),
        Catch::Matchers::Contains("missing tensor 'model.layers.3.mlp.up_proj.weight'"));
  }
  SECTION("mis-shaped tensor") {
    TempDir dir;
    write_edited_stories(dir.str(), [](auto& tensors) {
      for (auto& t : tensors)
        if (t.first == "model.norm.weight") t.second = at::ones({32});
    });
    REQUIRE_INPUT_ERROR(model::load_base_model(dir.str(), at::kFloat, cpu),
                        Catch::Matchers::Contains("'model.norm.weight' has shape [32]") &&
                            Catch::Matchers::Contains("[64]"));
  }
  SECTION("unexpected tensor") {
    TempDir dir;
    write_edited_stories(dir.str(), [](auto& tensors) {
      tensors.emplace_back("model.layers.5.mlp.up_proj.weight", at::zeros({172, 64}));
    });
    REQUIRE_INPUT_ERROR(model::load_base_model(dir.str(), at::kFloat, cpu),
                        Catch::Matchers::Contains(
                            "unexpected tensor(s), e.g. 'model.layers.5.mlp.up_proj.weight'"));
  }
  SECTION("corrupt config.json") {
    TempDir dir;
    write_edited_stories(dir.str(), [](auto&) {});
    dir.write("config.json", "{\"architectures\": [\"LlamaForCausalLM\"], ");
    REQUIRE_INPUT_ERROR(model::load_base_model(dir.str(), at::kFloat, cpu),
                        Catch::Matchers::Contains("config.json: invalid JSON"));
  }
}

TEST_CASE("fp16 base weights run close to fp32 on LibTorch 2.x and are refused clearly on 1.13",
          "[model]") {
  torch::NoGradGuard no_grad;
#if TORCH_VERSION_MAJOR >= 2
  // 2.x multiplies fp16 on the CPU: the forward must run and stay close to fp32.
  const auto model = model::load_base_model(stories_dir(), at::kHalf, c10::Device(c10::kCPU));
  const model::Decoder decoder(model);
  const model::Decoder reference_decoder(stories());
  const auto ids = int_matrix(reference()["input_ids"]).narrow(0, 0, 1);
  auto got = at::softmax(decoder.logits(decoder.hidden_states(ids, at::Tensor())), -1);
  auto expected =
      at::softmax(reference_decoder.logits(reference_decoder.hidden_states(ids, at::Tensor())), -1);
  CHECK((got - expected).abs().max().item<double>() < 0.05);
#else
  // 1.13 has no fp16 matmul on the CPU: refused at load, before any forward.
  REQUIRE_INPUT_ERROR(
      model::load_base_model(stories_dir(), at::kHalf, c10::Device(c10::kCPU)),
      Catch::Matchers::Contains("--dtype Half: this LibTorch build cannot multiply"));
#endif
}

TEST_CASE("save_base_model writes a directory that loads back identically", "[model]") {
  auto config = stories().config;
  config.tie_word_embeddings = false;
  config.architecture = "Qwen2ForCausalLM";
  config.attention_bias = true;
  const auto random = model::random_base_model(config, at::kFloat, c10::Device(c10::kCPU), 9);
  TempDir dir;
  model::save_base_model(random, dir.str());
  const auto loaded = model::load_base_model(dir.str(), at::kFloat, c10::Device(c10::kCPU));
  CHECK(loaded.config.architecture == "Qwen2ForCausalLM");
  CHECK(at::equal(loaded.layers[2].attention.k_bias, random.layers[2].attention.k_bias));
  CHECK(at::equal(loaded.lm_head, random.lm_head));
  torch::NoGradGuard no_grad;
  const auto ids = int_matrix(reference()["input_ids"]);
  const model::Decoder a(random), b(loaded);
  CHECK(at::equal(a.logits(a.hidden_states(ids, at::Tensor())),
                  b.logits(b.hidden_states(ids, at::Tensor()))));
}
