#include "mixlora/moe/router.h"

namespace mixlora::moe {

Routing router_topk(const at::Tensor& logits, int64_t top_k) {
  Routing r;
  r.probs = at::softmax(logits.to(at::kFloat), /*dim=*/-1);
  auto [top_weights, top_experts] = r.probs.topk(top_k, /*dim=*/-1);
  r.weights = top_weights / top_weights.sum(-1, /*keepdim=*/true);
  r.experts = top_experts;
  return r;
}

Routing router_topp(const at::Tensor& logits, double top_p, double temperature) {
  Routing r;
  auto scaled = logits.to(at::kFloat);
  if (temperature > 0.0) scaled = scaled / temperature;
  r.probs = at::softmax(scaled, /*dim=*/-1);
  auto [sorted, order] = r.probs.sort(/*dim=*/-1, /*descending=*/true);
  // Rank i is kept when the mass before it has not yet exceeded top_p; rank 0 always is.
  auto mass_before = sorted.cumsum(-1) - sorted;
  auto keep = (mass_before <= top_p).detach();
  keep.select(-1, 0).fill_(true);
  // Ranks beyond the first exceedance: mass_before > top_p there, so they are dropped.
  r.weights = sorted * keep.to(at::kFloat);
  r.experts = order.masked_fill(keep.logical_not(), -1);
  return r;
}

Routing router_switch(const at::Tensor& logits, int64_t batch, int64_t capacity,
                      const at::Tensor& token_mask) {
  Routing r;
  const int64_t tokens = logits.size(0), num_experts = logits.size(1);
  const int64_t steps = tokens / batch;
  r.probs = at::softmax(logits.to(at::kFloat), /*dim=*/-1);
  auto [top_prob, top_expert] = r.probs.max(/*dim=*/-1);
  r.argmax_experts = top_expert;
  // Position of each token in its expert's queue within its sequence: a running count over
  // positions of the one-hot choice (padding excluded).
  auto one_hot = at::one_hot(top_expert, num_experts).view({batch, steps, num_experts});
  if (token_mask.defined()) one_hot = one_hot * token_mask.view({batch, steps, 1}).to(at::kLong);
  auto queue_position = (one_hot.cumsum(/*dim=*/1) * one_hot).sum(-1).view({tokens});  // 1-based
  r.dropped = (queue_position == 0) | (queue_position > capacity);
  r.experts = top_expert.masked_fill(r.dropped, -1).unsqueeze(1);
  r.weights = top_prob.unsqueeze(1);
  return r;
}

}  // namespace mixlora::moe
