#include "mixlora/moe/router_loss.h"

namespace mixlora::moe {

namespace {

// Concatenates one field of every layer's record over the token axis.
at::Tensor gather(const std::vector<RouterRecord>& layers, at::Tensor RouterRecord::*field) {
  std::vector<at::Tensor> parts;
  for (const auto& layer : layers) parts.push_back(layer.*field);
  return at::cat(parts, 0);
}

at::Tensor real_token_mask(const std::vector<RouterRecord>& layers) {
  std::vector<at::Tensor> parts;
  for (const auto& layer : layers) {
    parts.push_back(layer.token_mask.defined() ? layer.token_mask.to(at::kBool)
                                               : at::ones({layer.logits.size(0)},
                                                          layer.logits.options().dtype(at::kBool)));
  }
  return at::cat(parts, 0);
}

}  // namespace

at::Tensor load_balancing_loss(const std::vector<RouterRecord>& layers) {
  auto probs = gather(layers, &RouterRecord::probs);           // [N, E]
  auto experts = gather(layers, &RouterRecord::slot_experts);  // [N, S]
  auto mask = real_token_mask(layers).to(at::kFloat);          // [N]
  const int64_t num_experts = probs.size(1);
  const auto real_tokens = mask.sum().clamp_min(1.0);
  // One-hot of each slot's choice; empty slots (-1) map to a zero row.
  auto one_hot = at::one_hot(experts.clamp_min(0), num_experts).to(at::kFloat) *
                 (experts >= 0).unsqueeze(-1).to(at::kFloat);              // [N, S, E]
  auto fraction = (one_hot * mask.view({-1, 1, 1})).sum(0) / real_tokens;  // [S, E]
  auto mean_prob = (probs * mask.view({-1, 1})).sum(0) / real_tokens;      // [E]
  return (fraction * mean_prob.unsqueeze(0)).sum() * static_cast<double>(num_experts);
}

at::Tensor router_z_loss(const std::vector<RouterRecord>& layers) {
  auto logits = gather(layers, &RouterRecord::logits);
  auto mask = real_token_mask(layers).to(at::kFloat);
  auto z = at::logsumexp(logits.to(at::kFloat), /*dim=*/-1);
  return (z.pow(2) * mask).sum() / mask.sum().clamp_min(1.0);
}

}  // namespace mixlora::moe
