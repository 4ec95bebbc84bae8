// One LoRA on a frozen linear W:  y = W x + s * B(A(dropout(x))),  s = alpha / r
// (rsLoRA: alpha / sqrt(r)). The leaf of the module stack: it needs only LibTorch. A [r, in] and B
// [out, r] are fp32 whatever the base dtype; the sum is returned in the base dtype, as PEFT does.
// DoRA rescales each output row of W + s B A to a learned magnitude.
#pragma once

#include "mixlora/lora/lora_options.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mixlora::lora {

struct LoraWeights {
  at::Tensor a;          // [r, in], fp32, trainable
  at::Tensor b;          // [out, r], fp32, trainable
  at::Tensor magnitude;  // [out], fp32, trainable; defined only with DoRA
  double scale = 1.0;
  double dropout = 0.0;
};

double lora_scale(const LoraShape& shape, bool use_rslora);

// Fresh weights: A kaiming-uniform(a = sqrt(5)) as nn.Linear, or N(0, 1/r) for "gaussian";
// B = 0, so a new adapter leaves the base model unchanged. With DoRA, the magnitude starts at
// the row norms of `base_weight`.
LoraWeights init_lora(int64_t in_features, int64_t out_features, const LoraShape& shape,
                      bool use_rslora, LoraInit init, at::Generator& generator, c10::Device device,
                      const at::Tensor& base_weight = {}, bool use_dora = false);

// Inverted dropout drawing from `generator`. Each adapter trains with its own generator, so
// its dropout masks do not depend on which other adapters share its batches.
at::Tensor dropout(const at::Tensor& x, double p, const c10::optional<at::Generator>& generator);

// s * B(A(dropout(x))) in fp32; dropout only when `training`.
at::Tensor lora_delta(const LoraWeights& lora, const at::Tensor& x, bool training,
                      const c10::optional<at::Generator>& generator = c10::nullopt);

// W x (+ b) plus the adapter, in the dtype of `base_output` (= W x + b). `base_weight` and
// `base_bias` are needed only for DoRA.
at::Tensor apply_lora(const LoraWeights& lora, const at::Tensor& x, const at::Tensor& base_output,
                      bool training, const at::Tensor& base_weight = {},
                      const at::Tensor& base_bias = {},
                      const c10::optional<at::Generator>& generator = c10::nullopt);

}  // namespace mixlora::lora
