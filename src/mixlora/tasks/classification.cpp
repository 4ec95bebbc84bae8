#include "mixlora/tasks/classification.h"

namespace mixlora::tasks {

at::Tensor classification_logits(const at::Tensor& hidden, const at::Tensor& last_token,
                                 const at::Tensor& head) {
  const int64_t batch = hidden.size(0), steps = hidden.size(1);
  auto rows = at::arange(batch, last_token.options().device(hidden.device()));
  auto flat_index = rows * steps + last_token.to(hidden.device());
  auto last =
      hidden.reshape({batch * steps, hidden.size(2)}).index_select(0, flat_index);  // [B, H]
  return at::linear(last.to(at::kFloat), head);
}

at::Tensor classification_loss(const at::Tensor& logits, const at::Tensor& class_labels) {
  return at::cross_entropy_loss(logits, class_labels.to(logits.device()), /*weight=*/{},
                                at::Reduction::Mean, /*ignore_index=*/-1);
}

}  // namespace mixlora::tasks
