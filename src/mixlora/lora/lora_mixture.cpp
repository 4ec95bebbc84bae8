#include "mixlora/lora/lora_mixture.h"

#include <cmath>

namespace mixlora::lora {

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
                              lora_delta(weights.experts[e], flat, training, generator);
    }
  } else {
    auto [kept, chosen] = result.probs.topk(top_k, /*dim=*/-1);
    kept = kept / kept.sum(-1, /*keepdim=*/true);
    result.chosen = chosen;
    // Which (token, slot) pairs each expert serves: read once on the host, then one gather,
    // one LoRA and one scatter-add per expert that has tokens.
    const auto chosen_host = chosen.to(at::kCPU).contiguous();
    const auto* ids = chosen_host.data_ptr<int64_t>();
    std::vector<std::vector<int64_t>> pairs(static_cast<size_t>(num_experts));
    std::vector<std::vector<int64_t>> tokens_of(static_cast<size_t>(num_experts));
    for (int64_t i = 0; i < chosen_host.numel(); ++i) {
      pairs[static_cast<size_t>(ids[i])].push_back(i);
      tokens_of[static_cast<size_t>(ids[i])].push_back(i / top_k);
    }
    const auto kept_flat = kept.reshape({-1});
    for (int64_t e = 0; e < num_experts; ++e) {
      const auto& list = pairs[static_cast<size_t>(e)];
      if (list.empty()) continue;
      const auto index = at::tensor(list, at::TensorOptions(at::kLong)).to(x.device());
      const auto tokens = at::tensor(tokens_of[static_cast<size_t>(e)], at::TensorOptions(at::kLong)).to(x.device());
      auto delta = lora_delta(weights.experts[e], flat.index_select(0, tokens), training, generator);
      delta = delta * kept_flat.index_select(0, index).unsqueeze(1);
      mixture = mixture.index_add(0, tokens, delta);
    }
  }
  result.output = (base_output.to(at::kFloat) + mixture.view(base_output.sizes()))
                      .to(base_output.scalar_type());
  return result;
}

}  // namespace mixlora::lora
