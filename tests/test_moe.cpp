// Routers against hand-computed cases, router losses, and the efficient MixLoRA FFN against the
// naive per-expert path and against a per-token formula written out here.
#include "mixlora/config/train_config.h"
#include "mixlora/model/decoder.h"
#include "mixlora/moe/mixlora_ffn.h"
#include "mixlora/moe/router.h"
#include "mixlora/moe/router_loss.h"

#include "catch.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

using namespace mixlora;

namespace {

at::Tensor rows(std::vector<std::vector<float>> values) {
  std::vector<at::Tensor> parts;
  for (auto& row : values) parts.push_back(at::tensor(row));
  return at::stack(parts);
}

std::vector<int64_t> ints(const at::Tensor& t) {
  auto c = t.to(at::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

double max_relative_error(const at::Tensor& got, const at::Tensor& expected) {
  auto scale = expected.abs().max().item<double>();
  return (got - expected).abs().max().item<double>() / std::max(scale, 1e-30);
}

}  // namespace

TEST_CASE("top-k router: softmax, keep k, renormalise", "[moe][router]") {
  auto logits = rows({{2.0f, 1.0f, 0.0f, -1.0f}, {0.0f, 3.0f, 0.0f, 2.5f}});
  auto r = moe::router_topk(logits, 2);
  CHECK(ints(r.experts) == std::vector<int64_t>{0, 1, 1, 3});
  // Renormalised over the two kept: e^2 / (e^2 + e^1) etc.
  const double w0 = std::exp(2.0) / (std::exp(2.0) + std::exp(1.0));
  const double w1 = std::exp(3.0) / (std::exp(3.0) + std::exp(2.5));
  CHECK(r.weights[0][0].item<double>() == Approx(w0));
  CHECK(r.weights[0][1].item<double>() == Approx(1 - w0));
  CHECK(r.weights[1][0].item<double>() == Approx(w1));
  CHECK(r.probs[0].sum().item<double>() == Approx(1.0));

  SECTION("ties: equal logits give equal weights on two distinct experts") {
    auto tied = moe::router_topk(at::zeros({1, 4}), 2);
    CHECK(tied.weights[0][0].item<double>() == Approx(0.5));
    CHECK(tied.weights[0][1].item<double>() == Approx(0.5));
    CHECK(tied.experts[0][0].item<int64_t>() != tied.experts[0][1].item<int64_t>());
  }
}

TEST_CASE("top-p router keeps the prefix whose mass first exceeds top_p", "[moe][router]") {
  // Probabilities 0.5, 0.3, 0.15, 0.05 from their logs.
  auto logits = at::log(rows({{0.15f, 0.5f, 0.05f, 0.3f}}));
  SECTION("mass passes 0.7 at the second expert: keep two, raw probabilities") {
    auto r = moe::router_topp(logits, 0.7, 0.0);
    CHECK(ints(r.experts) == std::vector<int64_t>{1, 3, -1, -1});
    CHECK(r.weights[0][0].item<double>() == Approx(0.5));
    CHECK(r.weights[0][1].item<double>() == Approx(0.3));
    CHECK(r.weights[0][2].item<double>() == 0.0);
  }
  SECTION("top_p = 1.0 keeps every expert") {
    auto r = moe::router_topp(logits, 1.0, 0.0);
    CHECK(ints(r.experts) == std::vector<int64_t>{1, 3, 0, 2});
    CHECK(r.weights.sum().item<double>() == Approx(1.0));
  }
  SECTION("a top-1 probability above top_p keeps exactly one expert") {
    auto r = moe::router_topp(at::log(rows({{0.9f, 0.05f, 0.05f}})), 0.8, 0.0);
    CHECK(ints(r.experts) == std::vector<int64_t>{0, -1, -1});
    CHECK(r.weights[0][0].item<double>() == Approx(0.9));
  }
  SECTION("temperature divides the logits before the softmax") {
    auto r = moe::router_topp(logits, 0.7, 2.0);
    auto expected = at::softmax(logits / 2.0, -1);
    CHECK(at::allclose(r.probs, expected));
    // Flatter distribution: sqrt-proportional 0.5,0.3,... -> mass 0.7 needs three experts.
    CHECK(ints(r.experts)[2] == 0);
  }
}

TEST_CASE("switch router: top-1 with per-sequence capacity in position order", "[moe][router]") {
  // Two sequences of 4 tokens. Sequence 0: all prefer expert 1; sequence 1: 0, 1, 1, 2.
  auto logits = rows(
      {{0, 5, 0}, {0, 5, 0}, {0, 5, 0}, {0, 5, 0}, {5, 0, 0}, {0, 5, 0}, {0, 5, 0}, {0, 0, 5}});
  SECTION("capacity 2: the third and fourth token of sequence 0 overflow") {
    auto r = moe::router_switch(logits, 2, 2, at::Tensor());
    CHECK(ints(r.experts) == std::vector<int64_t>{1, 1, -1, -1, 0, 1, 1, 2});
    CHECK(ints(r.dropped) == std::vector<int64_t>{0, 0, 1, 1, 0, 0, 0, 0});
    CHECK(ints(r.argmax_experts) == std::vector<int64_t>{1, 1, 1, 1, 0, 1, 1, 2});
    const double p = std::exp(5.0) / (std::exp(5.0) + 2.0);
    CHECK(r.weights[2][0].item<double>() == Approx(p));
  }
  SECTION("padding takes no capacity") {
    auto mask = at::tensor(std::vector<int64_t>{0, 1, 1, 1, 1, 1, 1, 1});
    auto r = moe::router_switch(logits, 2, 2, mask);
    CHECK(ints(r.experts) == std::vector<int64_t>{-1, 1, 1, -1, 0, 1, 1, 2});
  }
}

TEST_CASE("load balancing loss: balanced top-k gives k, one expert gives E * P", "[moe][loss]") {
  // Four experts, token i strongly prefers experts i and i+1: fractions and mean
  // probabilities are all 1/4, so E * sum_slot sum_e f P = 4 * 2 * 4 / 16 = 2 = top_k.
  std::vector<std::vector<float>> values;
  for (int i = 0; i < 4; ++i) {
    std::vector<float> row(4, 0.0f);
    row[i] = 10.0f;
    row[(i + 1) % 4] = 9.0f;
    values.push_back(row);
  }
  auto balanced = moe::router_topk(rows(values), 2);
  moe::RouterRecord record{rows(values), balanced.probs, balanced.experts, at::Tensor()};
  CHECK(moe::load_balancing_loss({record}).item<double>() == Approx(2.0).epsilon(1e-6));

  // Every token to expert 0 (top-1 slot) and 1: f[0] = (1,0,0,0), f[1] = (0,1,0,0).
  auto skewed_logits = rows({{5, 4, 0, 0}, {5, 4, 0, 0}, {5, 4, 0, 0}});
  auto skewed = moe::router_topk(skewed_logits, 2);
  moe::RouterRecord one{skewed_logits, skewed.probs, skewed.experts, at::Tensor()};
  const auto p = skewed.probs[0];
  CHECK(moe::load_balancing_loss({one}).item<double>() ==
        Approx(4.0 * (p[0].item<double>() + p[1].item<double>())));

  SECTION("padding is excluded and layers are pooled") {
    auto padded_logits = at::cat({skewed_logits, rows({{0, 0, 0, 9}})});
    auto padded = moe::router_topk(padded_logits, 2);
    moe::RouterRecord with_pad{padded_logits, padded.probs, padded.experts,
                               at::tensor(std::vector<int64_t>{1, 1, 1, 0}).to(at::kBool)};
    CHECK(moe::load_balancing_loss({with_pad}).item<double>() ==
          Approx(moe::load_balancing_loss({one}).item<double>()));
    // Two identical layers pool to the same fractions and means.
    CHECK(moe::load_balancing_loss({one, one}).item<double>() ==
          Approx(moe::load_balancing_loss({one}).item<double>()));
  }
  SECTION("z-loss is the mean squared logsumexp over real tokens") {
    const double lse = std::log(std::exp(5.0) + std::exp(4.0) + 2.0);
    CHECK(moe::router_z_loss({one}).item<double>() == Approx(lse * lse));
  }
}

namespace {

struct FfnFixture {
  model::MlpWeights mlp;
  moe::MixLoraLayerWeights weights;
  config::AdapterConfig config;
  at::Tensor x;

  FfnFixture(config::RoutingStrategy strategy, int64_t hidden = 16, int64_t inter = 24,
             int64_t experts = 4) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    auto normal = [&](std::vector<int64_t> shape, double std) {
      return at::normal(0.0, std, shape, gen, at::TensorOptions(at::kFloat));
    };
    mlp.gate_proj = normal({inter, hidden}, 0.3);
    mlp.up_proj = normal({inter, hidden}, 0.3);
    mlp.down_proj = normal({hidden, inter}, 0.3);
    config.peft_type = config::PeftType::mixlora;
    config.routing_strategy = strategy;
    config.num_experts = experts;
    config.top_k = 2;
    config.top_p = 0.6;
    config.expert_capacity = 3;
    config.lora = {4, 8.0, 0.0};
    config.target_modules = {"gate_proj", "up_proj", "down_proj"};
    weights.router = normal({experts, hidden}, 1.0).requires_grad_(true);
    for (int64_t e = 0; e < experts; ++e) {
      moe::ExpertLoras expert;
      auto lora = [&](int64_t in, int64_t out) {
        lora::LoraWeights l;
        l.a = normal({4, in}, 0.3).requires_grad_(true);
        l.b = normal({out, 4}, 0.3).requires_grad_(true);  // non-zero so the LoRA matters
        l.scale = 2.0;
        return l;
      };
      expert.gate_proj = lora(hidden, inter);
      expert.up_proj = lora(hidden, inter);
      expert.down_proj = lora(inter, hidden);
      weights.experts.push_back(expert);
    }
    x = normal({2, 5, hidden}, 1.0).requires_grad_(true);
  }

  std::vector<at::Tensor> leaves() {
    std::vector<at::Tensor> all{x, weights.router};
    for (auto& e : weights.experts)
      for (auto* l : {&e.gate_proj, &e.up_proj, &e.down_proj}) {
        all.push_back((*l)->a);
        all.push_back((*l)->b);
      }
    return all;
  }

  // Output and gradients of sum(output * probe) w.r.t. every leaf. In training mode the random
  // draws (LoRA and FFN dropout, switch jitter) come from a generator seeded with `seed`.
  std::pair<at::Tensor, std::vector<at::Tensor>> run(moe::FfnPath path, const at::Tensor& mask,
                                                     bool training = false, uint64_t seed = 0) {
    for (auto& t : leaves()) t.mutable_grad() = at::Tensor();
    const auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto out =
        moe::mixlora_ffn(x, mask, mlp, weights, config.moe_options(), training, path, generator)
            .output;
    auto probe = at::linspace(-1.0, 1.0, out.numel()).view(out.sizes());
    (out * probe).sum().backward();
    std::vector<at::Tensor> grads;
    // An expert no token reached (top-p routing after dropout can leave one idle) has no grad:
    // its gradient is zero, and both paths must agree on that.
    for (auto& t : leaves())
      grads.push_back(t.grad().defined() ? t.grad().clone() : at::zeros_like(t));
    return {out.detach(), grads};
  }
};

}  // namespace

TEST_CASE("efficient MixLoRA FFN equals the naive per-expert path in value and gradient",
          "[moe][ffn]") {
  for (auto strategy : {config::RoutingStrategy::mixlora, config::RoutingStrategy::mixlora_dynamic,
                        config::RoutingStrategy::mixlora_switch}) {
    INFO(config::routing_strategy_name(strategy));
    FfnFixture f(strategy);
    auto mask = at::ones({2, 5}, at::kLong);
    mask[1][4] = 0;  // one padding token
    auto [naive, naive_grads] = f.run(moe::FfnPath::naive, mask);
    auto [fast, fast_grads] = f.run(moe::FfnPath::efficient, mask);
    CHECK(max_relative_error(fast, naive) < 1e-5);
    for (size_t i = 0; i < naive_grads.size(); ++i) {
      INFO("leaf " << i);
      CHECK(max_relative_error(fast_grads[i], naive_grads[i]) < 1e-5);
    }
    CHECK(naive_grads[1].abs().sum().item<double>() > 0);  // the router learns
  }
}

TEST_CASE("efficient and naive paths agree in training mode, dropout and jitter included",
          "[moe][ffn]") {
  for (auto strategy : {config::RoutingStrategy::mixlora, config::RoutingStrategy::mixlora_dynamic,
                        config::RoutingStrategy::mixlora_switch}) {
    INFO(config::routing_strategy_name(strategy));
    FfnFixture f(strategy);
    for (auto& expert : f.weights.experts)
      for (auto* l : {&expert.gate_proj, &expert.up_proj, &expert.down_proj}) (*l)->dropout = 0.3;
    f.config.ffn_dropout = 0.2;
    f.config.jitter_noise = 0.1;  // read by the switch router only
    auto mask = at::ones({2, 5}, at::kLong);
    mask[0][4] = 0;
    auto [naive, naive_grads] = f.run(moe::FfnPath::naive, mask, /*training=*/true, 11);
    auto [fast, fast_grads] = f.run(moe::FfnPath::efficient, mask, /*training=*/true, 11);
    CHECK(max_relative_error(fast, naive) < 1e-5);
    for (size_t i = 0; i < naive_grads.size(); ++i) {
      INFO("leaf " << i);
      CHECK(max_relative_error(fast_grads[i], naive_grads[i]) < 1e-5);
    }
    // The draws really happened: another seed, or no dropout at all, gives another output.
    auto [other_seed, unused1] = f.run(moe::FfnPath::efficient, mask, /*training=*/true, 12);
    auto [inference, unused2] = f.run(moe::FfnPath::efficient, mask, /*training=*/false);
    CHECK(max_relative_error(other_seed, fast) > 1e-3);
    CHECK(max_relative_error(inference, fast) > 1e-3);
  }
}

TEST_CASE("naive path equals the per-token MixLoRA formula written out", "[moe][ffn]") {
  FfnFixture f(config::RoutingStrategy::mixlora);
  torch::NoGradGuard no_grad;
  auto result = moe::mixlora_ffn(f.x, at::Tensor(), f.mlp, f.weights, f.config.moe_options(), false,
                                 moe::FfnPath::naive);
  auto flat = f.x.reshape({-1, f.x.size(2)});
  auto out = result.output.reshape({-1, f.x.size(2)});
  for (int64_t t = 0; t < flat.size(0); ++t) {
    auto xt = flat[t];
    auto p = at::softmax(at::matmul(f.weights.router, xt), 0);
    auto [top, idx] = p.topk(2);
    auto expected = at::zeros_like(xt);
    for (int k = 0; k < 2; ++k) {
      const auto& e = f.weights.experts[idx[k].item<int64_t>()];
      auto merged = [](const at::Tensor& w, const lora::LoraWeights& l) {
        return w + l.scale * at::matmul(l.b, l.a);  // W' = W + s B A
      };
      auto h = at::silu(at::matmul(merged(f.mlp.gate_proj, *e.gate_proj), xt)) *
               at::matmul(merged(f.mlp.up_proj, *e.up_proj), xt);
      expected =
          expected + (top[k] / top.sum()) * at::matmul(merged(f.mlp.down_proj, *e.down_proj), h);
    }
    CHECK(max_relative_error(out[t], expected) < 1e-5);
  }
}

TEST_CASE("switch: overflowing tokens pass through scaled by their top-1 probability",
          "[moe][ffn]") {
  FfnFixture f(config::RoutingStrategy::mixlora_switch);
  f.config.expert_capacity = 1;
  torch::NoGradGuard no_grad;
  auto result =
      moe::mixlora_ffn(f.x, at::Tensor(), f.mlp, f.weights, f.config.moe_options(), false);
  auto flat = f.x.reshape({-1, f.x.size(2)});
  auto out = result.output.reshape({-1, f.x.size(2)});
  int64_t dropped = 0;
  for (int64_t t = 0; t < flat.size(0); ++t) {
    if (!result.routing.dropped[t].item<bool>()) continue;
    ++dropped;
    auto p = result.routing.weights[t][0];
    CHECK(max_relative_error(out[t], flat[t] * p) < 1e-6);
  }
  // 10 tokens in 2 sequences, 4 experts of capacity 1: at least 2 tokens overflow.
  CHECK(dropped >= 2);
  CHECK(moe::switch_capacity(f.config.moe_options(), 5) == 1);
  f.config.capacity_factor = 1.5;
  CHECK(moe::switch_capacity(f.config.moe_options(), 10) == 4);  // ceil(1.5 * 10 / 4)
}
