// LoRA and adapters on the real stories260K model: formulas, file names, save -> load
// identity, fused segments, and mismatched base models.
#include "mixlora/adapters/adapter.h"
#include "mixlora/common/error.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/lora/lora.h"
#include "mixlora/model/base_model.h"
#include "mixlora/model/decoder.h"
#include "mixlora/tasks/causal_lm.h"

#include "catch.h"
#include "stories_model.h"
#include "test_helpers.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

using namespace mixlora;
using mixlora::test::stories;
using mixlora::test::stories_dir;
using mixlora::test::TempDir;

namespace {

config::AdapterConfig adapter_config(
    const std::string& name, config::PeftType type,
    config::RoutingStrategy strategy = config::RoutingStrategy::mixlora) {
  config::AdapterConfig c;
  c.name = name;
  c.peft_type = type;
  c.routing_strategy = strategy;
  c.lora = {4, 8.0, 0.0};
  c.num_experts = 4;
  c.top_k = 2;
  c.top_p = 0.7;
  c.expert_capacity = 4;
  c.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return c;
}

// Gives every B a non-zero value so that the adapter changes the model.
void perturb(adapters::Adapter& adapter, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& [name, tensor] : adapter.state_dict()) {
    if (name.find("lora_B") != std::string::npos) {
      tensor.copy_(at::normal(0.0, 0.05, tensor.sizes(), gen, at::TensorOptions(at::kFloat)));
    }
  }
}

at::Tensor token_batch() {
  return at::tensor(std::vector<int64_t>{1, 403, 407, 261, 378, 300, 290, 1, 15, 400, 311, 2, 0, 0},
                    at::kLong)
      .view({2, 7});
}
at::Tensor token_mask() {
  return at::tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, at::kLong)
      .view({2, 7});
}

at::Tensor logits_with(const adapters::Adapter* adapter, const at::Tensor& ids,
                       const at::Tensor& mask) {
  torch::NoGradGuard no_grad;
  const model::Decoder decoder(stories());
  adapters::AdapterHooks hooks({{adapter, 0, ids.size(0)}}, mask, false);
  return decoder.logits(decoder.hidden_states(ids, mask, nullptr, &hooks));
}

// Largest difference relative to the largest magnitude, over real (unmasked) positions.
double relative_difference(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  auto real = mask.to(at::kBool).unsqueeze(-1).expand_as(a);
  return (a - b).masked_select(real).abs().max().item<double>() /
         b.masked_select(real).abs().max().item<double>();
}

}  // namespace

TEST_CASE("LoRA: init, scaling and formula", "[adapters][lora]") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  lora::LoraShape shape{8, 16.0, 0.0};
  auto lora =
      lora::init_lora(64, 32, shape, false, lora::LoraInit::original, gen, c10::Device(c10::kCPU));
  CHECK(lora.scale == 2.0);
  CHECK(lora::lora_scale(shape, true) == Approx(16.0 / std::sqrt(8.0)));
  CHECK(lora.b.abs().sum().item<double>() == 0.0);
  CHECK(lora.a.abs().max().item<double>() <= 1.0 / 8.0);  // kaiming bound 1/sqrt(64)
  CHECK(lora.a.abs().max().item<double>() > 0.1);
  CHECK(lora.a.requires_grad());
  auto gaussian =
      lora::init_lora(64, 32, shape, false, lora::LoraInit::gaussian, gen, c10::Device(c10::kCPU));
  CHECK(gaussian.a.std().item<double>() == Approx(1.0 / 8.0).epsilon(0.1));

  torch::NoGradGuard no_grad;
  lora.b.copy_(at::randn({32, 8}));
  auto w = at::randn({32, 64});
  auto x = at::randn({3, 64});
  auto got = lora::apply_lora(lora, x, at::linear(x, w), false);
  auto expected = at::matmul(x, (w + 2.0 * at::matmul(lora.b, lora.a)).t());
  CHECK((got - expected).abs().max().item<double>() < 1e-4);

  SECTION("DoRA: magnitude starts at the row norms, output rescaled to them") {
    auto dora = lora::init_lora(64, 32, shape, false, lora::LoraInit::original, gen,
                                c10::Device(c10::kCPU), w, true);
    CHECK(at::allclose(dora.magnitude, w.norm(2, 1)));
    CHECK(at::allclose(lora::apply_lora(dora, x, at::linear(x, w), false, w), at::linear(x, w),
                       1e-5, 1e-5));
    dora.b.copy_(at::randn({32, 8}));
    dora.magnitude.mul_(2.0);
    auto merged = w + 2.0 * at::matmul(dora.b, dora.a);
    auto rescaled = merged * (dora.magnitude / merged.norm(2, 1)).unsqueeze(1);
    CHECK((lora::apply_lora(dora, x, at::linear(x, w), false, w) - at::linear(x, rescaled))
              .abs()
              .max()
              .item<double>() < 1e-3);
  }
}

TEST_CASE("adapter tensors carry the MixLoRA plugin and PEFT names", "[adapters]") {
  auto mix =
      adapters::Adapter::create(adapter_config("m", config::PeftType::mixlora), stories(), 1);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& [name, t] : mix.state_dict()) shapes[name] = t.sizes().vec();
  CHECK(shapes.at("mixlora.layers.0.mlp.moe_gate.weight") == std::vector<int64_t>{4, 64});
  CHECK(shapes.at("mixlora.layers.4.mlp.gate_proj.experts.3.lora_A.weight") ==
        std::vector<int64_t>{4, 64});
  CHECK(shapes.at("mixlora.layers.0.mlp.down_proj.experts.0.lora_A.weight") ==
        std::vector<int64_t>{4, 172});
  CHECK(shapes.at("mixlora.layers.0.mlp.down_proj.experts.0.lora_B.weight") ==
        std::vector<int64_t>{64, 4});
  CHECK(shapes.at("mixlora.layers.2.self_attn.k_proj.lora_B.weight") ==
        std::vector<int64_t>{32, 4});  // GQA
  // 5 layers x (router + 4 attention LoRAs x 2 + 4 experts x 3 projections x 2)
  CHECK(shapes.size() == 5 * (1 + 8 + 24));

  auto plain = adapters::Adapter::create(adapter_config("p", config::PeftType::lora), stories(), 1);
  std::vector<std::string> names;
  for (auto& [name, t] : plain.state_dict()) names.push_back(name);
  CHECK(names.size() == 5 * 7 * 2);
  CHECK(std::count(names.begin(), names.end(),
                   "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") == 1);
  CHECK(std::count(names.begin(), names.end(),
                   "base_model.model.model.layers.3.mlp.up_proj.lora_B.weight") == 1);
}

TEST_CASE("a fresh adapter leaves the base model unchanged", "[adapters]") {
  // B = 0: every expert is the frozen FFN, and top-k weights sum to 1 after renormalising.
  for (auto type : {config::PeftType::lora, config::PeftType::mixlora}) {
    auto adapter = adapters::Adapter::create(adapter_config("fresh", type), stories(), 5);
    auto base = logits_with(nullptr, token_batch(), token_mask());
    CHECK(relative_difference(logits_with(&adapter, token_batch(), token_mask()), base,
                              token_mask()) < 1e-5);
  }
}

TEST_CASE("every routing strategy trains, saves and reloads bit-identically", "[adapters]") {
  for (auto strategy : {config::RoutingStrategy::mixlora, config::RoutingStrategy::mixlora_dynamic,
                        config::RoutingStrategy::mixlora_switch}) {
    INFO(config::routing_strategy_name(strategy));
    auto cfg = adapter_config("a", config::PeftType::mixlora, strategy);
    auto adapter = adapters::Adapter::create(cfg, stories(), 11);
    perturb(adapter, 12);

    // One forward/backward: task loss + router losses reach the router and every expert.
    const model::Decoder decoder(stories());
    adapters::AdapterHooks hooks({{&adapter, 0, 2}}, token_mask(), /*training=*/true);
    auto logits =
        decoder.logits(decoder.hidden_states(token_batch(), token_mask(), nullptr, &hooks));
    auto labels = token_batch().masked_fill(token_mask().eq(0), -100);
    auto losses = adapters::router_losses(adapter, hooks.router_records(0));
    CHECK(hooks.router_records(0).size() == 5);
    CHECK(losses.aux.item<double>() > 0.0);
    if (strategy == config::RoutingStrategy::mixlora_switch) CHECK(losses.z.item<double>() > 0.0);
    (tasks::causal_lm_loss(logits, labels).mean() + losses.aux + losses.z).backward();
    CHECK(adapter.layers[0].mixlora->router.grad().abs().sum().item<double>() > 0.0);
    CHECK(adapter.layers[4]
              .projections.at(model::Projection::q_proj)
              .a.grad()
              .abs()
              .sum()
              .item<double>() > 0.0);

    TempDir dir;
    adapter.save(dir.str(), stories_dir());
    auto loaded = adapters::Adapter::load(dir.str(), stories());
    CHECK(loaded.config.routing_strategy == strategy);
    CHECK(loaded.num_parameters() == adapter.num_parameters());
    auto before = logits_with(&adapter, token_batch(), token_mask());
    auto after = logits_with(&loaded, token_batch(), token_mask());
    CHECK(at::equal(before, after));
    CHECK(!at::equal(before, logits_with(nullptr, token_batch(), token_mask())));
  }
}

TEST_CASE("DoRA magnitudes are saved and restored", "[adapters][lora]") {
  auto cfg = adapter_config("dora", config::PeftType::lora);
  cfg.use_dora = true;
  auto adapter = adapters::Adapter::create(cfg, stories(), 31);
  perturb(adapter, 32);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : adapter.state_dict())
      if (name.find("lora_magnitude_vector") != std::string::npos) t.mul_(1.5);
  }
  const auto names = adapter.state_dict();
  CHECK(std::count_if(names.begin(), names.end(), [](const auto& e) {
          return e.first ==
                 "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector";
        }) == 1);
  TempDir dir;
  adapter.save(dir.str(), stories_dir());
  auto loaded = adapters::Adapter::load(dir.str(), stories());
  CHECK(loaded.config.use_dora);
  const auto before = logits_with(&adapter, token_batch(), token_mask());
  CHECK(at::equal(before, logits_with(&loaded, token_batch(), token_mask())));
  // The magnitudes matter: the adapter is not the plain LoRA with the same A and B.
  cfg.use_dora = false;
  auto plain = adapters::Adapter::create(cfg, stories(), 31);
  perturb(plain, 32);
  CHECK(!at::allclose(before, logits_with(&plain, token_batch(), token_mask())));
}

TEST_CASE("fused segments equal each adapter run alone", "[adapters]") {
  auto first =
      adapters::Adapter::create(adapter_config("one", config::PeftType::mixlora), stories(), 21);
  auto second =
      adapters::Adapter::create(adapter_config("two", config::PeftType::lora), stories(), 22);
  perturb(first, 23);
  perturb(second, 24);
  auto ids = at::cat({token_batch(), token_batch().flip(1)});
  auto mask = at::cat({token_mask(), token_mask()});
  torch::NoGradGuard no_grad;
  const model::Decoder decoder(stories());
  adapters::AdapterHooks fused({{&first, 0, 2}, {&second, 2, 2}}, mask, false);
  auto together = decoder.logits(decoder.hidden_states(ids, mask, nullptr, &fused));
  auto alone_first = logits_with(&first, ids.narrow(0, 0, 2), mask.narrow(0, 0, 2));
  auto alone_second = logits_with(&second, ids.narrow(0, 2, 2), mask.narrow(0, 2, 2));
  CHECK(relative_difference(together.narrow(0, 0, 2), alone_first, token_mask()) < 1e-5);
  CHECK(relative_difference(together.narrow(0, 2, 2), alone_second, token_mask()) < 1e-5);
}

TEST_CASE("loading an adapter on the wrong base model names the tensor", "[adapters]") {
  auto adapter =
      adapters::Adapter::create(adapter_config("m", config::PeftType::mixlora), stories(), 1);
  TempDir dir;
  adapter.save(dir.str(), stories_dir());
  SECTION("wider model") {
    auto other = stories().config;
    other.hidden_size = 96;
    other.head_dim = 12;
    auto base = model::random_base_model(other, at::kFloat, c10::Device(c10::kCPU), 0);
    REQUIRE_INPUT_ERROR(
        adapters::Adapter::load(dir.str(), base),
        Catch::Matchers::Contains(
            "has shape [4, 64] but this base model needs [4, 96] (wrong base model?)"));
  }
  SECTION("fewer layers") {
    auto other = stories().config;
    other.num_layers = 4;
    auto base = model::random_base_model(other, at::kFloat, c10::Device(c10::kCPU), 0);
    REQUIRE_INPUT_ERROR(adapters::Adapter::load(dir.str(), base),
                        Catch::Matchers::Contains("unexpected tensor 'mixlora.layers.4."));
  }
  SECTION("pickle only") {
    TempDir bin;
    bin.write("adapter_config.json", "{}");
    bin.write("adapter_model.bin", "x");
    REQUIRE_INPUT_ERROR(adapters::Adapter::load(bin.str(), stories()),
                        Catch::Matchers::Contains("not a readable torch.save zip archive"));
  }
}
