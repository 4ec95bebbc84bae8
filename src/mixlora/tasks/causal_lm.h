// The causal language-modelling loss: next-token cross-entropy over labelled positions.
#pragma once

#include <ATen/ATen.h>

namespace mixlora::tasks {

struct TokenLoss {
  at::Tensor sum;    // fp32 scalar: summed cross-entropy over target tokens
  at::Tensor count;  // int64 scalar: number of target tokens
  at::Tensor mean() const { return sum / count.clamp_min(1).to(sum.scalar_type()); }
};

// logits [B, T, V] predict labels shifted by one: position t is scored on labels[t + 1];
// labels equal to -100 (padding, or prompt tokens when train_on_inputs is false) are skipped.
TokenLoss causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace mixlora::tasks
