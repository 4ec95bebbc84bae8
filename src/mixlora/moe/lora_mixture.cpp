#include "mixlora/moe/lora_mixture.h"

#include "mixlora/moe/expert_assignment.h"

#include <cmath>

namespace mixlora::moe {

at::Tensor init_mixture_router(int64_t num_experts, int64_t in_features, double init_range,
                               at::Generator& generator, c10::Device device) {
  // kaiming_uniform_(a): gain sqrt(2 / (1 + a^2)), bound gain * sqrt(3 / fan_in).
  const double bound = std::sqrt(6.0 / ((1.0 + init_range) * static_cast<double>(in_features)));
  return at::empty({num_experts, in_features}, at::TensorOptions(at::kFloat))
      .uniform_(-bound, bound, generator)
      .to(device)
      .requires_grad_(true);
}

LoraMixtureOutput apply_lora_mixture(const LoraMixtureWeights& weights, const at::Tensor& x,
                                     const at::Tensor& base_output, int64_t top_k, bool training,
                                     const c10::optional<at::Generator>& generator) {
  const int64_t in = x.size(-1);
  const int64_t out = base_output.size(-1);
  const auto flat = x.reshape({-1, in}).to(at::kFloat);
  LoraMixtureOutput result;
  result.logits = at::linear(flat, weights.router);
  result.probs = at::softmax(result.logits, /*dim=*/-1);
  auto mixture = at::zeros({flat.size(0), out}, flat.options());
  const auto num_experts = static_cast<int64_t>(weights.experts.size());
  if (top_k == 0) {
    for (int64_t e = 0; e < num_experts; ++e) {
      mixture = mixture + result.probs.narrow(1, e, 1) *
                              lora::lora_delta(weights.experts[e], flat, training, generator);
    }
  } else {
    auto [kept, chosen] = result.probs.topk(top_k, /*dim=*/-1);
    kept = kept / kept.sum(-1, /*keepdim=*/true);
    result.chosen = chosen;
    // One gather, one LoRA and one scatter-add per expert that has tokens.
    const auto assignment = assign_experts(chosen, kept, num_experts);
    int64_t offset = 0;
    for (int64_t e = 0; e < num_experts; ++e) {
      const int64_t count = assignment.counts[static_cast<size_t>(e)];
      if (count == 0) continue;
      const auto tokens = assignment.tokens.narrow(0, offset, count);
      const auto weight = assignment.weights.narrow(0, offset, count).unsqueeze(1);
      offset += count;
      auto delta =
          lora::lora_delta(weights.experts[e], flat.index_select(0, tokens), training, generator);
      mixture = mixture.index_add(0, tokens, delta * weight);
    }
  }
  result.output = (base_output.to(at::kFloat) + mixture.view(base_output.sizes()))
                      .to(base_output.scalar_type());
  return result;
}

}  // namespace mixlora::moe
