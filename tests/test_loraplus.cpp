// LoRA+ (loraplus_lr_ratio) as MoE-PEFT applies it: lora_B and 1-D parameters train with
// lr * ratio, everything else with lr; the scaled parameters move exactly as an unscaled
// optimizer at the scaled learning rate would move them.
#include "mixlora/train/optimizer.h"

#include "catch.h"

using namespace mixlora::train;

TEST_CASE("loraplus_lr_scales groups lora_B and 1-D parameters like MoE-PEFT",
          "[optimizer][loraplus]") {
  const std::vector<std::pair<std::string, at::Tensor>> named = {
      {"x.q_proj.lora_A.weight", at::zeros({2, 4})},
      {"x.q_proj.lora_B.weight", at::zeros({4, 2})},
      {"x.q_proj.lora_magnitude_vector", at::zeros({4})},
      {"mixlora.layers.0.mlp.moe_gate.weight", at::zeros({3, 4})},
      {"classifier", at::zeros({2, 4})}};
  CHECK(loraplus_lr_scales(named, 16.0) == std::vector<double>{1.0, 16.0, 16.0, 1.0, 1.0});
}

TEST_CASE("an optimizer with LoRA+ scales moves each parameter as with lr * scale",
          "[optimizer][loraplus]") {
  for (const bool adamw : {true, false}) {
    DYNAMIC_SECTION((adamw ? "adamw" : "sgd")) {
      at::manual_seed(0);
      const auto a0 = at::randn({3, 4}), b0 = at::randn({4, 3});
      const auto ga = at::randn({3, 4}), gb = at::randn({4, 3});
      const auto make = [&](std::vector<at::Tensor> params) {
        return adamw ? make_adamw(std::move(params), {0.9, 0.999, 1e-8, 0.01})
                     : make_sgd(std::move(params), {0.9, 0.01});
      };
      const auto param = [](const at::Tensor& t) { return t.clone().requires_grad_(true); };
      auto a = param(a0), b = param(b0);
      auto scaled = make({a, b});
      scaled->set_lr_scales({1.0, 8.0});
      auto b_alone = param(b0);
      auto reference = make({b_alone});
      auto a_alone = param(a0);
      auto reference_a = make({a_alone});
      for (int step = 0; step < 3; ++step) {
        a.mutable_grad() = ga * (step + 1);
        b.mutable_grad() = gb * (step + 1);
        b_alone.mutable_grad() = gb * (step + 1);
        a_alone.mutable_grad() = ga * (step + 1);
        scaled->step(1e-2);
        reference->step(8e-2);
        reference_a->step(1e-2);
      }
      CHECK(at::equal(b, b_alone));
      CHECK(at::equal(a, a_alone));
      CHECK_FALSE(at::equal(b, b0));
    }
  }
}
