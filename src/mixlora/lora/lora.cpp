#include "mixlora/lora/lora.h"

#include "mixlora/lora/dropout_mask.h"

#include <cmath>

namespace mixlora::lora {

double lora_scale(const LoraShape& shape, bool use_rslora) {
  const double r = static_cast<double>(shape.r);
  return use_rslora ? shape.lora_alpha / std::sqrt(r) : shape.lora_alpha / r;
}

LoraWeights init_lora(int64_t in_features, int64_t out_features, const LoraShape& shape,
                      bool use_rslora, LoraInit init, at::Generator& generator, c10::Device device,
                      const at::Tensor& base_weight, bool use_dora) {
  LoraWeights lora;
  lora.scale = lora_scale(shape, use_rslora);
  lora.dropout = shape.lora_dropout;
  const auto f32 = at::TensorOptions(at::kFloat);
  if (init == LoraInit::gaussian) {
    lora.a =
        at::normal(0.0, 1.0 / static_cast<double>(shape.r), {shape.r, in_features}, generator, f32);
  } else {
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / in)
    // = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    lora.a = at::empty({shape.r, in_features}, f32).uniform_(-bound, bound, generator);
  }
  lora.a = lora.a.to(device).requires_grad_(true);
  lora.b = at::zeros({out_features, shape.r}, f32.device(device)).requires_grad_(true);
  if (use_dora) {
    lora.magnitude =
        base_weight.to(at::kFloat).norm(2, /*dim=*/1).detach().clone().requires_grad_(true);
  }
  return lora;
}

at::Tensor dropout(const at::Tensor& x, double p, const c10::optional<at::Generator>& generator) {
  if (p <= 0.0) return x;
  // Masks are drawn on the host from the adapter's host generator (the same masks on every
  // device) and copied to a GPU tensor's device.
  if (generator && !generator->device().is_cpu()) {
    return x * at::empty_like(x).bernoulli_(1.0 - p, generator) / (1.0 - p);
  }
  auto mask = dropout_scale_mask(x.sizes(), p, generator).to(x.device(), x.scalar_type());
  return x * mask;
}

at::Tensor lora_delta(const LoraWeights& lora, const at::Tensor& x, bool training,
                      const c10::optional<at::Generator>& generator) {
  auto input = x.to(at::kFloat);
  if (training && lora.dropout > 0.0) input = dropout(input, lora.dropout, generator);
  return at::linear(at::linear(input, lora.a), lora.b) * lora.scale;
}

at::Tensor apply_lora(const LoraWeights& lora, const at::Tensor& x, const at::Tensor& base_output,
                      bool training, const at::Tensor& base_weight, const at::Tensor& base_bias,
                      const c10::optional<at::Generator>& generator) {
  auto delta = lora_delta(lora, x, training, generator);
  if (!lora.magnitude.defined())
    return (base_output.to(at::kFloat) + delta).to(base_output.scalar_type());
  // DoRA (PEFT's formulation): with n = ||W + s B A|| per output row (not differentiated, as
  // the DoRA paper recommends), y = (m / n) * (W x + s B A x) + b.
  auto merged = base_weight.to(at::kFloat) + at::matmul(lora.b, lora.a) * lora.scale;
  auto ratio = lora.magnitude / merged.norm(2, /*dim=*/1).detach();
  auto without_bias = base_output.to(at::kFloat);
  if (base_bias.defined()) without_bias = without_bias - base_bias.to(at::kFloat);
  auto out = ratio * (without_bias + delta);
  if (base_bias.defined()) out = out + base_bias.to(at::kFloat);
  return out.to(base_output.scalar_type());
}

}  // namespace mixlora::lora
