#include "mixlora/generate/generator.h"

#include "mixlora/common/error.h"

#include <torch/csrc/autograd/grad_mode.h>

namespace mixlora::generate {

std::vector<int64_t> generate(const model::Decoder& decoder, const std::vector<int64_t>& prompt,
                              const GenerationOptions& options, model::DecoderHooks* hooks,
                              const std::function<void(int64_t)>& on_token) {
  validate(options.sampling);
  const auto& model = decoder.model();
  const auto& config = model.config;
  if (prompt.empty()) fail_input("the prompt is empty: give at least one token");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= config.vocab_size) {
      fail_input("prompt token {} at position {} is outside the vocabulary [0, {})", prompt[i], i,
                 config.vocab_size);
    }
  }
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  if (prompt_length > config.max_position_embeddings) {
    fail_input("the prompt has {} tokens but the model's context (max_position_embeddings) is {}",
               prompt_length, config.max_position_embeddings);
  }
  int64_t budget = std::max<int64_t>(0, options.max_new_tokens);
  // The last new token is never fed back, so it may sit one past the cache.
  const int64_t room = config.max_position_embeddings - prompt_length + 1;
  if (budget > room) {
    spdlog::warn("stopping after {} new tokens: the model's context is {} tokens", room,
                 config.max_position_embeddings);
    budget = room;
  }
  std::vector<int64_t> produced;
  if (budget == 0) return produced;

  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(options.seed);
  model::KVCache cache(config, /*batch_size=*/1, prompt_length + budget - 1, model.dtype,
                       model.device);
  auto input = at::tensor(prompt, at::kLong).view({1, prompt_length});
  for (int64_t step = 0; step < budget; ++step) {
    auto hidden = decoder.hidden_states(input, at::Tensor(), &cache, hooks);
    auto logits = decoder.logits(hidden.select(1, hidden.size(1) - 1)).squeeze(0);
    const int64_t token = sample_token(logits, options.sampling, rng);
    produced.push_back(token);
    if (on_token) on_token(token);
    if (token == options.eos_token_id) break;
    input = at::full({1, 1}, token, at::kLong);
  }
  return produced;
}

}  // namespace mixlora::generate
