// LibTorch 2.x: right-padded training batches attend with scaled_dot_product_attention's
// is_causal and no mask (FlashAttention's path on a GPU). Real positions, the losses and the
// adapter gradients must equal the additive-mask path (the reference) on stories260K.
#include "mixlora/adapters/adapter.h"
#include "mixlora/common/torch_compat.h"
#include "mixlora/model/decoder.h"
#include "mixlora/train/step.h"

#include "catch.h"
#include "stories_model.h"
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <iostream>

using namespace mixlora;

namespace {

std::vector<data::Sample> rows_of_different_lengths() {
  auto rows = test::copy_task_rows(6);
  // Cut rows to distinct lengths, so that each batch row has its own amount of right padding.
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t keep = std::max<size_t>(3, rows[i].input_ids.size() - 3 * i);
    rows[i].input_ids.resize(std::min(keep, rows[i].input_ids.size()));
    rows[i].labels.resize(rows[i].input_ids.size());
  }
  return rows;
}

data::Batch right_padded_batch(const std::vector<data::Sample>& rows) {
  std::vector<const data::Sample*> pointers;
  for (const auto& r : rows) pointers.push_back(&r);
  return data::make_batch(pointers, 0);
}

config::AdapterConfig mixlora_adapter() {
  config::AdapterConfig c;
  c.name = "mixlora";
  c.peft_type = config::PeftType::mixlora;
  c.routing_strategy = config::RoutingStrategy::mixlora;
  c.lora = {4, 8.0, 0.0};
  c.num_experts = 4;
  c.top_k = 2;
  c.router_aux_loss_coef = 1.0;  // large: a router loss that saw padding would show
  c.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return c;
}

struct StepResult {
  std::vector<at::Tensor> grads;
  train::StepLosses losses;
};

StepResult train_step(bool causal_fast_path, const data::Batch& batch) {
  const auto& base = test::stories();
  model::Decoder decoder(base);
  decoder.set_causal_fast_path(causal_fast_path);
  auto adapter = adapters::Adapter::create(mixlora_adapter(), base, 7);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(5);
  std::vector<adapters::AdapterSegment> segments{{&adapter, 0, batch.input_ids.size(0), generator}};
  StepResult out;
  out.losses =
      train::forward_backward(decoder, batch, segments, {1}, {moe::FfnPath::efficient, false})
          .at(0);
  for (const auto& p : adapter.parameters()) {
    REQUIRE(p.grad().defined());
    out.grads.push_back(p.grad().clone());
  }
  return out;
}

}  // namespace

TEST_CASE("a mask is right-padded when no row has a token after padding", "[model][attention]") {
  CHECK(model::is_right_padded(at::Tensor()));
  CHECK(model::is_right_padded(
      at::tensor(std::vector<int64_t>{1, 1, 1, 0, 1, 1, 0, 0}).view({2, 4})));
  CHECK(model::is_right_padded(at::ones({3, 1}, at::kLong)));
  CHECK_FALSE(model::is_right_padded(
      at::tensor(std::vector<int64_t>{1, 1, 1, 1, 0, 1, 1, 1}).view({2, 4})));
  CHECK_FALSE(model::is_right_padded(at::tensor(std::vector<int64_t>{1, 0, 1}).view({1, 3})));
}

TEST_CASE("is_causal attention equals the masked path on right-padded batches to 1e-5",
          "[model][attention]") {
  if (!MIXLORA_HAS_SDPA) {
    std::cout << "skipped: needs LibTorch 2.x (scaled_dot_product_attention; 1.13 always uses the "
                 "mask)\n";
    return;
  }
  const auto rows = rows_of_different_lengths();
  const auto batch = right_padded_batch(rows);
  REQUIRE(batch.attention_mask.eq(0).any().item<bool>());  // there is padding to get right
  REQUIRE(model::is_right_padded(batch.attention_mask));
  const auto real = batch.attention_mask.to(at::kBool).unsqueeze(-1);

  SECTION("logits at every real position") {
    torch::NoGradGuard no_grad;
    model::Decoder fast(test::stories());
    model::Decoder masked(test::stories());
    masked.set_causal_fast_path(false);
    const auto a = fast.logits(fast.hidden_states(batch.input_ids, batch.attention_mask));
    const auto b = masked.logits(masked.hidden_states(batch.input_ids, batch.attention_mask));
    const double real_diff = (a - b).masked_select(real).abs().max().item<double>();
    CHECK(real_diff <= 1e-5);
    // Padding queries see padding keys only on the is_causal path: their logits differ, which
    // shows that the fast path ran (padding reaches no real token and no loss).
    const double pad_diff = (a - b).masked_select(real.logical_not()).abs().max().item<double>();
    CHECK(pad_diff > 1e-3);
    // A left-padded (or cached) batch keeps the mask: same as the reference everywhere.
    const auto left_mask = batch.attention_mask.flip({1});
    const auto left_ids = batch.input_ids.flip({1});
    CHECK_FALSE(model::is_right_padded(left_mask));
    const auto c = fast.logits(fast.hidden_states(left_ids, left_mask));
    const auto d = masked.logits(masked.hidden_states(left_ids, left_mask));
    CHECK((c - d).abs().max().item<double>() == 0.0);
  }
  SECTION("a MixLoRA training step: losses and every adapter gradient") {
    const auto fast = train_step(true, batch);
    const auto masked = train_step(false, batch);
    CHECK(fast.losses.task == Approx(masked.losses.task).margin(1e-5));
    CHECK(fast.losses.aux == Approx(masked.losses.aux).margin(1e-5));
    CHECK(fast.losses.z == Approx(masked.losses.z).margin(1e-5));
    REQUIRE(fast.grads.size() == masked.grads.size());
    double max_diff = 0.0, max_grad = 0.0;
    for (size_t i = 0; i < fast.grads.size(); ++i) {
      max_diff = std::max(max_diff, (fast.grads[i] - masked.grads[i]).abs().max().item<double>());
      max_grad = std::max(max_grad, masked.grads[i].abs().max().item<double>());
    }
    CHECK(max_grad > 1e-3);  // the comparison is not between zeros
    CHECK(max_diff <= 1e-5);
  }
}
