// Sequence classification: a bias-free fp32 head [num_labels, hidden] on the final-norm hidden
// state of each row's last real token, trained with cross-entropy.
#pragma once

#include <ATen/ATen.h>

namespace mixlora::tasks {

// hidden [B, T, H]; last_token [B] index of each row's last real token -> logits [B, labels].
at::Tensor classification_logits(const at::Tensor& hidden, const at::Tensor& last_token,
                                 const at::Tensor& head);

// Mean cross-entropy over rows whose class label is >= 0.
at::Tensor classification_loss(const at::Tensor& logits, const at::Tensor& class_labels);

}  // namespace mixlora::tasks
