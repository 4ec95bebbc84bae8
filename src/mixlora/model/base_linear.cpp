#include "mixlora/model/base_linear.h"

#include "mixlora/common/cpu_info.h"

#include <torch/csrc/autograd/custom_function.h>

namespace mixlora::model {

namespace {

// LibTorch 1.13's condition for oneDNN bf16 matmul (mkldnn_bf16_device_check).
bool cpu_has_onednn_bf16() {
  const auto& cpu = common::cpu_info();
  return cpu.has("avx512bw") && cpu.has("avx512vl") && cpu.has("avx512dq");
}

// y = x W^T computed in fp32 for a frozen low-precision W; backward gives only dL/dx and keeps
// nothing but the (already stored) weight.
struct UpcastLinear : public torch::autograd::Function<UpcastLinear> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight) {
    ctx->saved_data["weight"] = weight;
    ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());
    return at::linear(x.to(at::kFloat), weight.to(at::kFloat)).to(x.scalar_type());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto weight = ctx->saved_data["weight"].toTensor();
    const auto dtype = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    auto grad_x = at::matmul(grad[0].to(at::kFloat), weight.to(at::kFloat)).to(dtype);
    return {grad_x, at::Tensor()};
  }
};

}  // namespace

bool fast_matmul(c10::Device device, c10::ScalarType dtype) {
  if (device.is_cuda() || dtype == at::kFloat || dtype == at::kDouble) return true;
  return dtype == at::kBFloat16 && cpu_has_onednn_bf16();
}

at::Tensor base_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (fast_matmul(x.device(), x.scalar_type()) || weight.requires_grad())
    return at::linear(x, weight, bias);
  auto y = UpcastLinear::apply(x, weight);
  return bias.defined() ? y + bias : y;
}

at::Tensor activation_matmul(const at::Tensor& a, const at::Tensor& b) {
  if (fast_matmul(a.device(), a.scalar_type())) return at::matmul(a, b);
  return at::matmul(a.to(at::kFloat), b.to(at::kFloat)).to(a.scalar_type());
}

}  // namespace mixlora::model
