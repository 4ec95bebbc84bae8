// LoRAMoE and MoLA (moe/lora_mixture.h): the sparse top-k path against a dense reference that
// weighs every expert, the dense mixture against its formula, the router init, and both adapter
// types training on the copy task with files that reload bit for bit. Parity with MoE-PEFT's own
// modules is in test_python_interop.cpp.
#include "mixlora/adapters/adapter.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/moe/lora_mixture.h"
#include "mixlora/train/trainer.h"

#include "catch.h"
#include "stories_model.h"
#include "test_helpers.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include <filesystem>

using namespace mixlora;

namespace {

moe::LoraMixtureWeights random_mixture(int64_t experts, int64_t in, int64_t out, int64_t r,
                                       uint64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  moe::LoraMixtureWeights m;
  m.router =
      at::normal(0.0, 1.0, {experts, in}, g, at::TensorOptions(at::kFloat)).requires_grad_(true);
  for (int64_t e = 0; e < experts; ++e) {
    lora::LoraWeights w;
    w.a = at::normal(0.0, 0.3, {r, in}, g, at::TensorOptions(at::kFloat)).requires_grad_(true);
    w.b = at::normal(0.0, 0.3, {out, r}, g, at::TensorOptions(at::kFloat)).requires_grad_(true);
    w.scale = 2.0;
    m.experts.push_back(w);
  }
  return m;
}

// Every expert on every token, weighted by a dense [N, E] matrix: the reference for both kinds.
at::Tensor reference(const moe::LoraMixtureWeights& m, const at::Tensor& x, const at::Tensor& base,
                     int64_t top_k) {
  auto flat = x.reshape({-1, x.size(-1)});
  auto probs = at::softmax(at::linear(flat, m.router), -1);
  auto weights = probs;
  if (top_k > 0) {
    auto [kept, chosen] = probs.topk(top_k, -1);
    weights = at::zeros_like(probs).scatter(1, chosen, kept / kept.sum(-1, true));
  }
  auto out = base.reshape({flat.size(0), -1}).clone();
  for (size_t e = 0; e < m.experts.size(); ++e) {
    const auto& w = m.experts[e];
    out = out + weights.narrow(1, static_cast<int64_t>(e), 1) *
                    at::linear(at::linear(flat, w.a), w.b) * w.scale;
  }
  return out.view(base.sizes());
}

std::vector<at::Tensor> grads_of(const moe::LoraMixtureWeights& m, const at::Tensor& loss) {
  std::vector<at::Tensor> params = {m.router};
  for (const auto& e : m.experts) params.insert(params.end(), {e.a, e.b});
  auto grads = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true, false,
                                     /*allow_unused=*/true);
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) grads[i] = at::zeros_like(params[i]);  // an expert no token chose
  }
  return grads;
}

}  // namespace

TEST_CASE(
    "LoRA mixtures: top-k (MoLA) and dense (LoRAMoE) equal the dense reference, values and "
    "gradients",
    "[lora][mixture]") {
  const auto m = random_mixture(5, 12, 7, 3, 11);
  auto g = at::make_generator<at::CPUGeneratorImpl>(12);
  const auto x = at::normal(0.0, 1.0, {2, 9, 12}, g, at::TensorOptions(at::kFloat));
  const auto base = at::normal(0.0, 1.0, {2, 9, 7}, g, at::TensorOptions(at::kFloat));
  const auto target = at::normal(0.0, 1.0, {2, 9, 7}, g, at::TensorOptions(at::kFloat));
  for (int64_t top_k : {0, 1, 2, 5}) {
    INFO("top_k " << top_k);
    const auto ours = moe::apply_lora_mixture(m, x, base, top_k, /*training=*/false);
    const auto want = reference(m, x, base, top_k);
    CHECK((ours.output - want).abs().max().item<double>() < 1e-5);
    CHECK(ours.logits.sizes() == at::IntArrayRef({18, 5}));
    CHECK(ours.chosen.defined() == (top_k > 0));
    // The gradients of one loss through both: router, every A and B.
    const auto ours_grads = grads_of(m, (ours.output - target).pow(2).sum());
    const auto want_grads = grads_of(m, (want - target).pow(2).sum());
    for (size_t i = 0; i < ours_grads.size(); ++i) {
      INFO("parameter " << i);
      CHECK((ours_grads[i] - want_grads[i]).abs().max().item<double>() < 1e-4);
    }
  }
  // Top-1 of a router that prefers one expert everywhere: the others get no gradient.
  auto biased = random_mixture(3, 12, 7, 3, 13);
  {
    at::NoGradGuard no_grad;
    biased.router.zero_();
    biased.router.select(0, 1).fill_(0.0);
    biased.router.select(1, 0).fill_(1.0);  // logit of expert 0 = sum(x): not always the largest
  }
  const auto picked = moe::apply_lora_mixture(biased, x.abs(), base, 1, false);  // sum(|x|) > 0
  CHECK(picked.chosen.eq(0).all().item<bool>());
}

TEST_CASE("LoRA mixture routers start as MoE-PEFT's kaiming-uniform gates", "[lora][mixture]") {
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  // router_init_range 5 (the default) is nn.Linear's init: bound 1 / sqrt(in).
  const auto r5 = moe::init_mixture_router(8, 400, 5.0, g, at::kCPU);
  CHECK(r5.requires_grad());
  CHECK(r5.abs().max().item<double>() <= 1.0 / 20.0);
  CHECK(r5.abs().max().item<double>() > 0.98 / 20.0);
  // range 0: bound sqrt(6 / in) (kaiming_uniform_ with a = 0).
  const auto r0 = moe::init_mixture_router(8, 400, 0.0, g, at::kCPU);
  CHECK(r0.abs().max().item<double>() == Approx(std::sqrt(6.0 / 400.0)).epsilon(0.02));
}

TEST_CASE("LoRAMoE and MoLA adapters train on the copy task and reload bit-identically",
          "[train][mixture]") {
  for (const auto type : {config::PeftType::loramoe, config::PeftType::mola}) {
    INFO(config::peft_type_name(type));
    config::AdapterConfig a;
    a.name = "mix";
    a.peft_type = type;
    a.lora = {4, 8.0, 0.05};
    a.num_experts = 4;
    a.top_k = 2;
    a.router_init_range = 5.0;
    a.router_loss = type == config::PeftType::mola;  // MoLA's optional load-balancing loss, on
    a.lr = 1e-2;
    a.batch_size = 8;
    a.micro_batch_size = 4;
    a.num_epochs = 2;
    a.target_modules = {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
    test::TempDir out;
    config::TrainConfig c;
    c.adapters = {a};
    c.output_dir = out.str();
    c.log_every = 1;
    c.gradient_checkpointing =
        type == config::PeftType::mola;  // router records through checkpoints
    train::TrainerOptions options;
    options.base_model_name = test::stories_dir();
    train::prepare_output(c, options);
    const auto summary = train::train(c, test::stories(), {test::copy_task_rows(64)}, options);
    REQUIRE(summary.size() == 1);
    CHECK(summary[0].steps == 16);
    CHECK(summary[0].last_loss < summary[0].first_loss - 0.3);

    const auto dir = (std::filesystem::path(out.str()) / "mix").string();
    const auto loaded = adapters::Adapter::load(dir, test::stories());
    CHECK(loaded.config.peft_type == type);
    auto file = io::SafeTensorsFile::open(dir + "/adapter_model.safetensors");
    const std::string root = type == config::PeftType::mola ? "mola" : "loramoe";
    const auto has = [&](const std::string& name) {
      for (const auto& info : file.tensors())
        if (info.name == name) return true;
      return false;
    };
    // MoE-PEFT's names: per-projection gates and experts; LoRAMoE's attention LoRAs stay plain.
    CHECK(has(root + ".layers.0.mlp.up_proj.moe_gate.weight"));
    CHECK(has(root + ".layers.0.mlp.up_proj.experts.3.lora_B.weight"));
    CHECK(has(root + ".layers.0.self_attn.q_proj.moe_gate.weight") ==
          (type == config::PeftType::mola));
    CHECK(has(root + ".layers.0.self_attn.q_proj.lora_A.weight") ==
          (type == config::PeftType::loramoe));
    for (const auto& [name, tensor] : loaded.state_dict()) {
      INFO(name);
      CHECK(at::equal(tensor.cpu(), file.load(name)));
    }
    test::TempDir again;
    loaded.save(again.str(), test::stories_dir());
    CHECK(test::slurp(again / "adapter_model.safetensors") ==
          test::slurp(dir + "/adapter_model.safetensors"));
  }
}
