#include "mixlora/tasks/chunked_lm_loss.h"

#include "mixlora/data/sample.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

namespace mixlora::tasks {

namespace {

// Summed cross-entropy of `rows` [M, H] against `targets` [M]; its gradient is computed in
// forward (one chunk of logits alive at a time) and only scaled in backward.
struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& rows,
                            const at::Tensor& targets, const LogitsFn* logits_of,
                            int64_t chunk_rows) {
    auto grad_rows = at::empty_like(rows);
    auto sum = at::zeros({}, rows.options().dtype(at::kFloat));
    for (int64_t begin = 0; begin < rows.size(0); begin += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows.size(0) - begin);
      at::AutoGradMode grad_on(true);
      auto chunk = rows.narrow(0, begin, n).detach().requires_grad_(true);
      auto loss =
          at::cross_entropy_loss((*logits_of)(chunk).to(at::kFloat), targets.narrow(0, begin, n),
                                 /*weight=*/{}, at::Reduction::Sum);
      grad_rows.narrow(0, begin, n).copy_(torch::autograd::grad({loss}, {chunk})[0]);
      sum += loss.detach();
    }
    ctx->save_for_backward({grad_rows});
    return sum;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_output) {
    const auto grad_rows = ctx->get_saved_variables()[0];
    return {grad_rows * grad_output[0].to(grad_rows.scalar_type()), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

int64_t lm_loss_chunk_rows(int64_t vocab_size, int64_t bytes) {
  return std::max<int64_t>(1, bytes / (4 * std::max<int64_t>(1, vocab_size)));
}

TokenLoss chunked_causal_lm_loss(const LogitsFn& logits_of, const at::Tensor& hidden,
                                 const at::Tensor& labels, int64_t chunk_rows) {
  const int64_t steps = hidden.size(1);
  auto targets = labels.to(hidden.device()).narrow(1, 1, steps - 1).reshape({-1});
  // Only labelled positions are projected at all: padding and unscored prompt tokens cost nothing.
  const auto scored = targets.ne(data::kIgnoreIndex).nonzero().squeeze(1);
  auto rows = hidden.narrow(1, 0, steps - 1).reshape({-1, hidden.size(2)}).index_select(0, scored);
  targets = targets.index_select(0, scored);
  chunk_rows = std::max<int64_t>(1, chunk_rows);
  TokenLoss loss;
  loss.count =
      at::scalar_tensor(scored.size(0), at::TensorOptions(at::kLong).device(hidden.device()));
  if (at::GradMode::is_enabled() && hidden.requires_grad()) {
    loss.sum = scored.size(0) == 0
                   ? (hidden.sum() * 0.0).to(at::kFloat)
                   : ChunkedCrossEntropy::apply(rows, targets, &logits_of, chunk_rows);
    return loss;
  }
  // Scoring only (evaluation): chunk by chunk, no gradient.
  loss.sum = at::zeros({}, hidden.options().dtype(at::kFloat));
  for (int64_t begin = 0; begin < rows.size(0); begin += chunk_rows) {
    const int64_t n = std::min(chunk_rows, rows.size(0) - begin);
    loss.sum +=
        at::cross_entropy_loss(logits_of(rows.narrow(0, begin, n)).to(at::kFloat),
                               targets.narrow(0, begin, n), /*weight=*/{}, at::Reduction::Sum);
  }
  return loss;
}

}  // namespace mixlora::tasks
