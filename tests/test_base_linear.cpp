// base_linear / activation_matmul in bf16 (the fp32 fallback on CPUs without oneDNN bf16)
// against at::linear / at::matmul in fp32 on the same bf16 values: outputs and input gradients.
#include "mixlora/model/base_linear.h"

#include <catch2/catch.hpp>

using namespace mixlora;

TEST_CASE("bf16 base_linear agrees with fp32 linear in value and input gradient", "[model][bf16]") {
  at::manual_seed(3);
  const auto weight = at::randn({48, 40}).to(at::kBFloat16);
  const auto bias = at::randn({48}).to(at::kBFloat16);
  const auto x_values = at::randn({2, 5, 40}).to(at::kBFloat16);
  const auto grad_out = at::randn({2, 5, 48});

  auto x = x_values.clone().requires_grad_(true);
  auto y = model::base_linear(x, weight, bias);
  CHECK(y.scalar_type() == at::kBFloat16);
  y.to(at::kFloat).backward(grad_out);

  auto x_ref = x_values.to(at::kFloat).requires_grad_(true);
  auto y_ref = at::linear(x_ref, weight.to(at::kFloat), bias.to(at::kFloat));
  y_ref.backward(grad_out.to(at::kBFloat16).to(at::kFloat));
  // One bf16 rounding of the result (and of the gradient) apart: relative 2^-8.
  CHECK(at::allclose(y.to(at::kFloat), y_ref, /*rtol=*/8e-3, /*atol=*/1e-2));
  CHECK(at::allclose(x.grad().to(at::kFloat), x_ref.grad(), 8e-3, 1e-2));

  auto a = at::randn({3, 4, 6, 8}).to(at::kBFloat16);
  auto b = at::randn({3, 4, 8, 7}).to(at::kBFloat16);
  auto m = model::activation_matmul(a, b);
  CHECK(m.scalar_type() == at::kBFloat16);
  CHECK(at::allclose(m.to(at::kFloat), at::matmul(a.to(at::kFloat), b.to(at::kFloat)), 8e-3, 1e-2));
}

TEST_CASE("fp32 base_linear is at::linear", "[model]") {
  at::manual_seed(4);
  const auto w = at::randn({6, 5});
  const auto x = at::randn({3, 5});
  CHECK(model::base_linear(x, w).equal(at::linear(x, w)));
  CHECK(model::fast_matmul(at::kCPU, at::kFloat));
}
