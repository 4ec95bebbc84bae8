// base_linear / activation_matmul in bf16 (the fp32 fallback on CPUs without oneDNN bf16)
// against at::linear / at::matmul in fp32 on the same bf16 values: outputs and input gradients.
#include "mixlora/model/base_linear.h"

#include "catch.h"

#include <cmath>

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
  const auto exact = at::matmul(a.to(at::kFloat), b.to(at::kFloat));
  if (!model::fast_matmul(at::kCPU, at::kBFloat16)) {
    // The fp32 fallback: one bf16 rounding of the result.
    CHECK(at::allclose(m.to(at::kFloat), exact, 8e-3, 1e-2));
  } else {
    // LibTorch's native bf16 batched matmul (CPUs with AVX512-BF16) may sum in bf16: the
    // worst-case bound of a K-term sum with unit roundoff u = 2^-8 is K u sum_k |a_ik b_kj|,
    // plus the final rounding.
    const double u = std::ldexp(1.0, -8);
    const auto bound =
        at::matmul(a.to(at::kFloat).abs(), b.to(at::kFloat).abs()) * ((8 + 1) * u) + 1e-6;
    CHECK(((m.to(at::kFloat) - exact).abs() <= bound).all().item<bool>());
  }
}

TEST_CASE("fp32 base_linear is at::linear", "[model]") {
  at::manual_seed(4);
  const auto w = at::randn({6, 5});
  const auto x = at::randn({3, 5});
  CHECK(model::base_linear(x, w).equal(at::linear(x, w)));
  CHECK(model::fast_matmul(at::kCPU, at::kFloat));
}
