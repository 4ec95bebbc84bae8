// Architectures beyond LLaMA (docs/base-models.md): Qwen3, Gemma, Gemma-2, Gemma-3 and Phi-3.
// Forward parity against transformers on tiny random-weight models it builds offline
// (tests/reference/make_tiny_arch.py; skipped without MIXLORA_PYTHON), MixLoRA training on each
// family, save/load round trips, Phi-3 adapters on its fused projections against PEFT and MoE-PEFT,
// and clear errors for what is not supported.
#include "mixlora/adapters/adapter.h"
#include "mixlora/common/error.h"
#include "mixlora/generate/generator.h"
#include "mixlora/io/json_file.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/model/base_model.h"
#include "mixlora/model/decoder.h"
#include "mixlora/train/trainer.h"

#include "catch.h"
#include "cli_runner.h"
#include "test_helpers.h"
#include <nlohmann/json.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

namespace fs = std::filesystem;
using namespace mixlora;
using Catch::Matchers::Contains;

namespace {

const std::vector<std::string> kReferenceArchs = {"qwen3", "gemma", "gemma2", "gemma3", "phi3"};

// Runs make_tiny_arch.py once per test process for every architecture; returns the directory of
// `arch` (model + reference.json), or "" after printing the skip line.
std::string reference_model(const std::string& arch) {
  const auto python = test::reference_python_or_skip();
  if (python.empty()) return "";
  static test::TempDir root;
  static bool built = false;
  static int status = 0;
  if (!built) {
    built = true;
    std::string command = "\"" + python +
                          "\" " MIXLORA_TEST_SOURCE_DIR "/tests/reference/make_tiny_arch.py \"" +
                          root.str() + "\"";
    for (const auto& a : kReferenceArchs) command += " " + a;
    command += " > \"" + (root / "log.txt") + "\" 2>&1";
    status = std::system(command.c_str());
  }
  INFO(test::slurp(root / "log.txt"));
  REQUIRE(status == 0);
  const auto dir = root / arch;
  const auto skipped = test::slurp(dir + "/skipped.txt");
  if (!skipped.empty()) {
    std::cout << skipped;
    return "";
  }
  return dir;
}

double max_abs_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Our logits on the reference batch equal transformers' at every real position (1e-4, fp32) and
// greedy decoding with our KV cache yields transformers' greedy ids (its full-forward ones; its
// HybridCache departs from them past Gemma's sliding window, see make_tiny_arch.py).
void check_parity(const std::string& arch, const std::string& architecture) {
  const auto dir = reference_model(arch);
  if (dir.empty()) return;
  const auto reference = io::read_json_file(dir + "/reference.json");
  INFO(arch << " against transformers " << reference["transformers"].get<std::string>());
  const auto model = model::load_base_model(dir, at::kFloat, c10::Device(c10::kCPU));
  CHECK(model.config.architecture == architecture);
  model::Decoder decoder(model);
  auto to_tensor = [](const nlohmann::json& rows) {
    std::vector<int64_t> flat;
    for (const auto& row : rows)
      for (const auto& v : row) flat.push_back(v.get<int64_t>());
    return at::tensor(flat, at::kLong).view({static_cast<int64_t>(rows.size()), -1});
  };
  const auto ids = to_tensor(reference["ids"]);
  const auto mask = to_tensor(reference["mask"]);
  std::vector<float> expected_flat;
  for (const auto& row : reference["logits"])
    for (const auto& position : row)
      for (const auto& v : position) expected_flat.push_back(v.get<float>());
  const auto expected = at::tensor(expected_flat).view({ids.size(0), ids.size(1), -1});

  at::NoGradGuard no_grad;
  const auto logits = decoder.logits(decoder.hidden_states(ids, mask));
  REQUIRE(logits.sizes() == expected.sizes());
  const auto real = mask.to(at::kBool).unsqueeze(-1).expand_as(logits);
  const double difference =
      max_abs_difference(logits.masked_select(real), expected.masked_select(real));
  INFO("max |logit difference| = " << difference);
  CHECK(difference < 1e-4);
  // The logits are not trivially small: the check above has something to compare.
  CHECK(expected.abs().max().item<double>() > 0.1);

  generate::GenerationOptions options;
  options.max_new_tokens = 20;
  options.eos_token_id = -1;
  const auto prompt = reference["prompt"].get<std::vector<int64_t>>();
  CHECK(generate::generate(decoder, prompt, options) ==
        reference["greedy"].get<std::vector<int64_t>>());
}

// A tiny config.json per family, the shapes of make_tiny_arch.py (no Python needed).
nlohmann::json tiny_config_json(const std::string& arch) {
  nlohmann::json j = {{"vocab_size", 128},        {"hidden_size", 64},
                      {"intermediate_size", 96},  {"num_attention_heads", 4},
                      {"num_key_value_heads", 2}, {"head_dim", 24},
                      {"num_hidden_layers", 2},   {"max_position_embeddings", 128},
                      {"rms_norm_eps", 1e-6}};
  if (arch == "qwen3") {
    j["architectures"] = {"Qwen3ForCausalLM"};
    j["tie_word_embeddings"] = true;
  } else if (arch == "gemma") {
    j["architectures"] = {"GemmaForCausalLM"};
    j["hidden_act"] = "gelu";  // ignored by Gemma: hidden_activation defaults to gelu_pytorch_tanh
  } else if (arch == "gemma2") {
    j["architectures"] = {"Gemma2ForCausalLM"};
    j["query_pre_attn_scalar"] = 20;
    j["sliding_window"] = 8;
    j["attn_logit_softcapping"] = 2.0;
    j["final_logit_softcapping"] = 3.0;
  } else if (arch == "gemma3") {
    j["architectures"] = {"Gemma3ForCausalLM"};
    j["query_pre_attn_scalar"] = 20;
    j["sliding_window"] = 8;
    j["sliding_window_pattern"] = 2;
    j["rope_theta"] = 1e6;
    j["rope_local_base_freq"] = 1e4;
  } else if (arch == "phi3") {
    j["architectures"] = {"Phi3ForCausalLM"};
    j["head_dim"] = 16;
    j["sliding_window"] = 8;
  }
  return j;
}

model::BaseModel tiny_random_model(const std::string& arch, uint64_t seed = 3) {
  const auto config = model::parse_model_config(tiny_config_json(arch), arch + "/config.json");
  return model::random_base_model(config, at::kFloat, c10::Device(c10::kCPU), seed);
}

// 64 rows whose targets come from a small set of tokens, so a tiny adapter lowers the loss
// quickly: 8 random ids (no loss), then 8 ids from [3, 11) (loss).
std::vector<data::Sample> narrow_target_rows() {
  std::mt19937 rng(11);
  std::vector<data::Sample> rows;
  for (int r = 0; r < 64; ++r) {
    data::Sample s;
    for (int i = 0; i < 8; ++i) {
      s.input_ids.push_back(3 + static_cast<int64_t>(rng() % 125));
      s.labels.push_back(data::kIgnoreIndex);
    }
    for (int i = 0; i < 8; ++i) {
      const int64_t id = 3 + static_cast<int64_t>(rng() % 8);
      s.input_ids.push_back(id);
      s.labels.push_back(id);
    }
    rows.push_back(std::move(s));
  }
  return rows;
}

}  // namespace

TEST_CASE("Qwen3 logits and greedy ids equal transformers'", "[model][arch][reference]") {
  check_parity("qwen3", "Qwen3ForCausalLM");
}

TEST_CASE("Gemma logits and greedy ids equal transformers'", "[model][arch][reference]") {
  check_parity("gemma", "GemmaForCausalLM");
}

TEST_CASE("Gemma-2 logits and greedy ids equal transformers'", "[model][arch][reference]") {
  check_parity("gemma2", "Gemma2ForCausalLM");
}

TEST_CASE("Gemma-3 logits and greedy ids equal transformers'", "[model][arch][reference]") {
  check_parity("gemma3", "Gemma3ForCausalLM");
}

TEST_CASE("Phi-3 logits and greedy ids equal transformers'", "[model][arch][reference]") {
  check_parity("phi3", "Phi3ForCausalLM");
}

TEST_CASE("family settings are read from config.json", "[model][arch][config]") {
  auto parse = [](const nlohmann::json& j) { return model::parse_model_config(j, "config.json"); };
  auto gemma2 = parse(tiny_config_json("gemma2"));
  CHECK(gemma2.model_type == "gemma2");
  CHECK(gemma2.hidden_act == model::Activation::gelu_pytorch_tanh);
  CHECK(gemma2.tie_word_embeddings);  // Gemma's default
  CHECK(gemma2.sandwich_norms);
  CHECK(gemma2.attn_logit_softcapping == 2.0);
  CHECK(gemma2.layer_is_sliding(0));  // even layers local
  CHECK_FALSE(gemma2.layer_is_sliding(1));
  // Absent softcaps take Gemma2Config's defaults; null switches them off.
  auto j = tiny_config_json("gemma2");
  j.erase("attn_logit_softcapping");
  j["final_logit_softcapping"] = nullptr;
  auto defaults = parse(j);
  CHECK(defaults.attn_logit_softcapping == 50.0);
  CHECK(defaults.final_logit_softcapping == 0.0);

  auto gemma3 = parse(tiny_config_json("gemma3"));
  CHECK(gemma3.model_type == "gemma3_text");
  CHECK(gemma3.qk_norm);
  CHECK(gemma3.layer_is_sliding(0));  // pattern 2: every second layer global
  CHECK_FALSE(gemma3.layer_is_sliding(1));
  CHECK(gemma3.rope_local_theta == 1e4);
  // layer_types (newer exports) wins over the pattern.
  j = tiny_config_json("gemma3");
  j["layer_types"] = {"full_attention", "sliding_attention"};
  auto typed = parse(j);
  CHECK_FALSE(typed.layer_is_sliding(0));
  CHECK(typed.layer_is_sliding(1));

  auto qwen3 = parse(tiny_config_json("qwen3"));
  CHECK(qwen3.model_type == "qwen3");
  CHECK(qwen3.qk_norm);
  CHECK_FALSE(qwen3.attention_bias);
  CHECK_FALSE(qwen3.norm_weight_offset);

  auto phi3 = parse(tiny_config_json("phi3"));
  CHECK(phi3.fused_projections);
  CHECK(phi3.layer_is_sliding(0));
  CHECK(phi3.layer_is_sliding(1));

  // Without "architectures", model_type names the family.
  j = tiny_config_json("gemma");
  j.erase("architectures");
  j["model_type"] = "gemma";
  CHECK(parse(j).architecture == "GemmaForCausalLM");
}

TEST_CASE("unsupported architectures and settings are input errors naming them",
          "[model][arch][config]") {
  auto j = tiny_config_json("gemma3");
  j["architectures"] = {"Gemma3ForConditionalGeneration"};
  REQUIRE_INPUT_ERROR(
      model::parse_model_config(j, "m/config.json"),
      Contains("m/config.json: architecture 'Gemma3ForConditionalGeneration' is not supported") &&
          Contains("Gemma3ForCausalLM"));
  j = tiny_config_json("qwen3");
  j.erase("architectures");
  j["model_type"] = "falcon";
  REQUIRE_INPUT_ERROR(model::parse_model_config(j, "m/config.json"),
                      Contains("model_type 'falcon' is unknown"));
  j = tiny_config_json("gemma3");
  j["layer_types"] = {"full_attention"};
  REQUIRE_INPUT_ERROR(model::parse_model_config(j, "m/config.json"),
                      Contains("layer_types: expected a list of 2 entries"));
  j = tiny_config_json("phi3");
  j["partial_rotary_factor"] = 0.75;
  REQUIRE_INPUT_ERROR(model::parse_model_config(j, "m/config.json"),
                      Contains("partial_rotary_factor 0.75 is not supported"));
  j = tiny_config_json("phi3");
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", {1.0}}, {"long_factor", {1.0}}};
  REQUIRE_INPUT_ERROR(model::parse_model_config(j, "m/config.json"),
                      Contains("rope type 'longrope' is not supported"));
}

TEST_CASE("every family saves and loads back to identical logits", "[model][arch]") {
  for (const std::string arch : {"qwen3", "gemma", "gemma2", "gemma3", "phi3"}) {
    INFO(arch);
    auto model = tiny_random_model(arch);
    // Non-identity norms, so a norm stored under the wrong name would show.
    for (auto& layer : model.layers) {
      for (auto* t :
           {&layer.input_norm, &layer.post_attention_norm, &layer.attention_output_norm,
            &layer.feed_forward_output_norm, &layer.attention.q_norm, &layer.attention.k_norm}) {
        if (t->defined()) *t = at::rand_like(*t) + 0.5;
      }
    }
    test::TempDir dir;
    model::save_base_model(model, dir.str());
    const auto loaded = model::load_base_model(dir.str(), at::kFloat, c10::Device(c10::kCPU));
    CHECK(loaded.config.model_type == model.config.model_type);
    model::Decoder a(model), b(loaded);
    at::NoGradGuard no_grad;
    const auto ids = at::randint(3, 128, {2, 20}, at::kLong);
    CHECK(at::equal(a.logits(a.hidden_states(ids, {})), b.logits(b.hidden_states(ids, {}))));
  }
}

TEST_CASE("MixLoRA trains on Qwen3, the Gemma family and Phi-3 and reloads bit-identically",
          "[train][arch]") {
  for (const std::string arch : {"qwen3", "gemma", "gemma2", "gemma3", "phi3"}) {
    INFO(arch);
    auto base = tiny_random_model(arch);
    // Embeddings (and lm_head) x10, so the logits have room to move in 16 steps.
    {
      at::NoGradGuard no_grad;
      base.embed_tokens.mul_(10.0);
      if (!base.lm_head.is_same(base.embed_tokens)) base.lm_head.mul_(10.0);
    }
    test::TempDir out;
    config::AdapterConfig adapter;
    adapter.name = "mix";
    adapter.peft_type = config::PeftType::mixlora;
    adapter.lora = {4, 8.0, 0.0};
    adapter.num_experts = 4;
    adapter.top_k = 2;
    adapter.lr = 1e-2;
    adapter.batch_size = 8;
    adapter.micro_batch_size = 8;
    adapter.num_epochs = 2;
    adapter.target_modules = {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
    // Phi-3: its fused projections, as PEFT and MoE-PEFT target them.
    if (arch == "phi3") adapter.target_modules = {"qkv_proj", "gate_up_proj", "down_proj"};
    config::TrainConfig c;
    c.adapters = {adapter};
    c.output_dir = out.str();
    c.train_lora_simultaneously_num = 1;
    c.save_step = 1000;
    c.log_every = 1;
    train::TrainerOptions options;
    options.base_model_name = "tiny-" + arch;
    train::prepare_output(c, options);
    const auto summary = train::train(c, base, {narrow_target_rows()}, options);
    REQUIRE(summary.size() == 1);
    CHECK(summary[0].steps == 16);
    CHECK(summary[0].last_loss < summary[0].first_loss - 0.3);

    // The experts use the base FFN's activation (gelu_pytorch_tanh on Gemma), as written for
    // the plugin and MoE-PEFT.
    const auto adapter_dir = (fs::path(out.str()) / "mix").string();
    const auto written = io::read_json_file(adapter_dir + "/adapter_config.json");
    CHECK(written["act_fn"] == model::activation_name(base.config.hidden_act));

    // Reloaded: every tensor equals the file's bit for bit, and saving again writes the same bytes.
    const auto loaded = adapters::Adapter::load(adapter_dir, base);
    CHECK(loaded.config.act_fn == base.config.hidden_act);
    auto file = io::SafeTensorsFile::open(adapter_dir + "/adapter_model.safetensors");
    for (const auto& [name, tensor] : loaded.state_dict()) {
      INFO(name);
      CHECK(at::equal(tensor.cpu(), file.load(name)));
    }
    test::TempDir again;
    loaded.save(again.str(), "tiny-" + arch);
    CHECK(test::slurp(again / "adapter_model.safetensors") ==
          test::slurp(adapter_dir + "/adapter_model.safetensors"));
  }
}

TEST_CASE("Phi-3 adapters target qkv_proj / gate_up_proj; their parts are views of the fused LoRA",
          "[train][arch]") {
  const auto base = tiny_random_model("phi3");
  config::AdapterConfig adapter;
  adapter.name = "mix";
  adapter.peft_type = config::PeftType::mixlora;
  adapter.target_modules = {"q_proj", "gate_proj"};
  REQUIRE_INPUT_ERROR(
      adapters::Adapter::create(adapter, base, 0),
      Contains("adapter 'mix': target_modules: Phi3ForCausalLM fuses q_proj into qkv_proj: "
               "target \"qkv_proj\""));
  adapter.target_modules = {"qkv_proj"};
  REQUIRE_INPUT_ERROR(adapters::Adapter::create(adapter, tiny_random_model("qwen3"), 0),
                      Contains("qkv_proj exists only in models with fused projections (Phi-3)"));
  adapter.peft_type = config::PeftType::mola;
  REQUIRE_INPUT_ERROR(
      adapters::Adapter::create(adapter, base, 0),
      Contains("LoRAMoE / MoLA adapters on Phi3ForCausalLM (fused projections) are not supported"));

  // A plain LoRA: one tensor pair per fused projection under PEFT's name, none for the parts.
  adapter.peft_type = config::PeftType::lora;
  adapter.target_modules = {"qkv_proj", "gate_up_proj"};
  auto lora = adapters::Adapter::create(adapter, base, 0);
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, t] : lora.state_dict()) tensors[name] = t;
  CHECK(tensors.size() == 2 * 2 * 2);  // 2 layers x 2 fused projections x (A, B)
  const auto& qkv_b =
      tensors.at("base_model.model.model.layers.0.self_attn.qkv_proj.lora_B.weight");
  CHECK(qkv_b.sizes() == at::IntArrayRef({4 * 16 + 2 * 2 * 16, 8}));  // q + k + v rows, r 8
  CHECK(tensors.at("base_model.model.model.layers.1.mlp.gate_up_proj.lora_A.weight").sizes() ==
        at::IntArrayRef({8, 64}));
  // Writing the fused B (as loading and the optimizer do) shows in every part.
  {
    torch::NoGradGuard no_grad;
    qkv_b.copy_(at::arange(qkv_b.numel(), at::kFloat).view(qkv_b.sizes()));
  }
  const auto& parts = lora.layers[0].projections;
  CHECK(at::equal(parts.at(model::Projection::k_proj).b, qkv_b.narrow(0, 64, 32)));
  CHECK(parts.at(model::Projection::v_proj).a.is_same(parts.at(model::Projection::q_proj).a));
  // Gradients through a part reach the fused tensors.
  parts.at(model::Projection::v_proj).b.sum().backward();
  CHECK(qkv_b.grad().narrow(0, 96, 32).eq(1.0).all().item<bool>());
  CHECK(qkv_b.grad().narrow(0, 0, 96).eq(0.0).all().item<bool>());
}

TEST_CASE(
    "Phi-3: PEFT loads our fused-projection LoRA (same logits), MoE-PEFT our MixLoRA (same loss)",
    "[python][interop][arch]") {
  const auto dir = reference_model("phi3");
  if (dir.empty()) return;
  const auto python = test::reference_python_or_skip();
  const auto base = model::load_base_model(dir, at::kFloat, c10::Device(c10::kCPU));
  test::TempDir ws;
  // Rows of 8 tokens: within the model's sliding window, which MoE-PEFT's Phi-3 may not apply.
  std::mt19937 rng(5);
  std::vector<std::vector<int64_t>> rows(4);
  for (auto& row : rows)
    for (int i = 0; i < 8; ++i) row.push_back(3 + static_cast<int64_t>(rng() % 120));
  const auto random_b = [](adapters::Adapter& adapter, uint64_t seed) {
    torch::NoGradGuard no_grad;
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (auto& [name, t] : adapter.state_dict()) {
      if (name.find("lora_B") != std::string::npos) t.normal_(0.0, 0.2, generator);
      if (name.find("moe_gate") != std::string::npos) t.normal_(0.0, 1.0, generator);
    }
  };

  config::AdapterConfig c;
  c.name = "lora";
  c.lora = {4, 8.0, 0.05};
  c.target_modules = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
  auto lora = adapters::Adapter::create(c, base, 1);
  random_b(lora, 2);
  lora.save(ws / "lora", dir);
  std::vector<at::Tensor> id_rows;
  for (const auto& row : rows) id_rows.push_back(at::tensor(row, at::kLong));
  const auto ids = at::stack(id_rows);
  {
    const model::Decoder decoder(base);
    adapters::AdapterHooks hooks({{&lora, 0, ids.size(0)}}, at::Tensor(), false);
    torch::NoGradGuard no_grad;
    const auto logits = decoder.logits(decoder.hidden_states(ids, at::Tensor(), nullptr, &hooks));
    io::save_safetensors(ws / "expected.safetensors",
                         {{"input_ids", ids}, {"logits", logits.contiguous()}});
  }
  const auto peft_out = ws / "peft.json";
  const std::string peft = test::shell_quote(python) +
                           " " MIXLORA_TEST_SOURCE_DIR "/tests/reference/peft_interop.py " +
                           test::shell_quote(dir) + " " + test::shell_quote(ws / "lora") + " " +
                           test::shell_quote(ws / "expected.safetensors") + " " +
                           test::shell_quote(peft_out) + " 2>" + test::shell_quote(ws / "peft.err");
  INFO(test::slurp(ws / "peft.err"));
  REQUIRE(std::system(peft.c_str()) == 0);
  const auto peft_result = nlohmann::json::parse(test::slurp(peft_out));
  INFO(peft_result.dump());
  CHECK(peft_result.at("max_rel_diff").get<double>() < 1e-4);

  // MixLoRA with experts on gate_up_proj: MoE-PEFT's loss equals mixlora-eval's.
  c.name = "mixlora";
  c.peft_type = config::PeftType::mixlora;
  c.num_experts = 4;
  c.top_k = 2;
  c.router_loss = false;
  auto mix = adapters::Adapter::create(c, base, 3);
  random_b(mix, 4);
  mix.save(ws / "mixlora", dir, /*export_bin=*/true);
  std::string data;
  for (const auto& row : rows) data += nlohmann::json({{"input_ids", row}}).dump() + "\n";
  std::ofstream(ws / "rows.jsonl") << data;
  const auto moe_out = ws / "moe_peft.json";
  const std::string moe = test::shell_quote(python) +
                          " " MIXLORA_TEST_SOURCE_DIR
                          "/tests/reference/moe_peft_interop.py score " +
                          test::shell_quote(dir) + " " + test::shell_quote(moe_out) + " " +
                          test::shell_quote(ws / "mixlora" + ":" + ws / "rows.jsonl") + " 2>" +
                          test::shell_quote(ws / "moe.err");
  INFO(test::slurp(ws / "moe.err"));
  REQUIRE(std::system(moe.c_str()) == 0);
  const double theirs =
      nlohmann::json::parse(test::slurp(moe_out)).at(ws / "mixlora").at("loss").get<double>();
  const auto report = ws / "eval.json";
  const auto r = test::run_tool("mixlora-eval --base-model " + test::shell_quote(dir) +
                                " --adapter " + test::shell_quote(ws / "mixlora") + " --data " +
                                test::shell_quote(ws / "rows.jsonl") + " --output " +
                                test::shell_quote(report));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const double ours =
      nlohmann::json::parse(test::slurp(report)).at(0).at("metrics").at("loss").get<double>();
  INFO("ours " << ours << ", MoE-PEFT " << theirs);
  CHECK(std::abs(ours - theirs) / theirs < 1e-4);
}
