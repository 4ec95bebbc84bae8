#include "mixlora/tasks/causal_lm.h"

#include "mixlora/data/sample.h"

namespace mixlora::tasks {

TokenLoss causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t steps = logits.size(1);
  auto predictions = logits.narrow(1, 0, steps - 1).reshape({-1, logits.size(2)}).to(at::kFloat);
  auto targets = labels.to(logits.device()).narrow(1, 1, steps - 1).reshape({-1});
  TokenLoss loss;
  loss.sum = at::cross_entropy_loss(predictions, targets, /*weight=*/{}, at::Reduction::Sum,
                                    data::kIgnoreIndex);
  loss.count = targets.ne(data::kIgnoreIndex).sum();
  return loss;
}

}  // namespace mixlora::tasks
