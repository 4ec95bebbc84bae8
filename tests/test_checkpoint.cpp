// Gradient checkpointing: the same gradients (adapter weights, routers through their losses)
// and the same generator states after the step as without it, on the real stories260K model.
#include "mixlora/adapters/adapter.h"
#include "mixlora/train/step.h"

#include "catch.h"
#include "stories_model.h"
#include <ATen/CPUGeneratorImpl.h>

using namespace mixlora;

namespace {

config::AdapterConfig mixlora_adapter(const std::string& name, config::RoutingStrategy strategy) {
  config::AdapterConfig c;
  c.name = name;
  c.peft_type = config::PeftType::mixlora;
  c.routing_strategy = strategy;
  c.lora = {4, 8.0, 0.1};  // dropout: the recomputation must replay the masks
  c.num_experts = 4;
  c.top_k = 2;
  c.ffn_dropout = 0.1;
  // Large router-loss coefficients: a router record cut off from the graph would show.
  c.router_aux_loss_coef = 1.0;
  c.router_z_loss_coef = 1.0;
  if (strategy == config::RoutingStrategy::mixlora_switch) {
    c.jitter_noise = 0.1;
    c.capacity_factor = 1.0;
    c.router_init_range = 1.0;
  }
  c.target_modules = {"q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return c;
}

struct StepResult {
  std::vector<at::Tensor> grads;
  std::vector<at::Tensor> rng_after;
  std::vector<train::StepLosses> losses;
};

StepResult run_step(bool checkpointing) {
  const auto& base = test::stories();
  const model::Decoder decoder(base);
  std::vector<adapters::Adapter> adapters{
      adapters::Adapter::create(mixlora_adapter("topk", config::RoutingStrategy::mixlora), base, 1),
      adapters::Adapter::create(mixlora_adapter("switch", config::RoutingStrategy::mixlora_switch),
                                base, 2)};
  // A LoRA segment too: plain LoRA dropout drawn from its generator.
  auto lora = mixlora_adapter("lora", config::RoutingStrategy::mixlora);
  lora.peft_type = config::PeftType::lora;
  adapters.push_back(adapters::Adapter::create(lora, base, 3));
  std::vector<at::Generator> generators;
  for (uint64_t seed : {11, 12, 13})
    generators.push_back(at::make_generator<at::CPUGeneratorImpl>(seed));

  const auto rows = test::copy_task_rows(6);  // different lengths: padding and token masks
  std::vector<const data::Sample*> pointers;
  for (const auto& r : rows) pointers.push_back(&r);
  const auto batch = data::make_batch(pointers, 0);
  std::vector<adapters::AdapterSegment> segments;
  for (size_t i = 0; i < adapters.size(); ++i) {
    segments.push_back({&adapters[i], static_cast<int64_t>(2 * i), 2, generators[i]});
  }
  StepResult out;
  out.losses = train::forward_backward(decoder, batch, segments, {1, 2, 1},
                                       {moe::FfnPath::efficient, checkpointing});
  for (const auto& a : adapters) {
    for (const auto& p : a.parameters()) {
      REQUIRE(p.grad().defined());
      out.grads.push_back(p.grad().clone());
    }
  }
  for (auto& g : generators) out.rng_after.push_back(g.get_state());
  return out;
}

}  // namespace

TEST_CASE("gradient checkpointing gives the gradients of the plain backward pass",
          "[train][checkpoint]") {
  const auto plain = run_step(false);
  const auto checkpointed = run_step(true);
  REQUIRE(plain.grads.size() == checkpointed.grads.size());
  double max_diff = 0.0, max_grad = 0.0;
  for (size_t i = 0; i < plain.grads.size(); ++i) {
    max_diff =
        std::max(max_diff, (plain.grads[i] - checkpointed.grads[i]).abs().max().item<double>());
    max_grad = std::max(max_grad, plain.grads[i].abs().max().item<double>());
  }
  CHECK(max_grad > 1e-3);  // the comparison is not between zeros
  CHECK(max_diff <= 1e-6);
  for (size_t k = 0; k < plain.losses.size(); ++k) {
    CHECK(plain.losses[k].task == Approx(checkpointed.losses[k].task).epsilon(1e-6));
    CHECK(plain.losses[k].aux == Approx(checkpointed.losses[k].aux).epsilon(1e-6));
    CHECK(plain.losses[k].z == Approx(checkpointed.losses[k].z).epsilon(1e-6));
  }
  // The recomputation replays the draws and leaves each generator where the forward run left it.
  for (size_t i = 0; i < plain.rng_after.size(); ++i)
    CHECK(plain.rng_after[i].equal(checkpointed.rng_after[i]));
}
