#include "mixlora/generate/sampler.h"

#include "mixlora/common/error.h"

namespace mixlora::generate {

void validate(const SamplingOptions& options) {
  if (!(options.temperature >= 0.0)) {
    fail_input("--temperature: must be >= 0 (0 = greedy), got {}", options.temperature);
  }
  if (options.top_k < 0) fail_input("--top-k: must be >= 0 (0 = off), got {}", options.top_k);
  if (!(options.top_p > 0.0 && options.top_p <= 1.0)) {
    fail_input("--top-p: must be in (0, 1], got {}", options.top_p);
  }
}

int64_t sample_token(const at::Tensor& logits, const SamplingOptions& options,
                     std::mt19937_64& rng) {
  auto scores = logits.to(at::kCPU, at::kDouble).reshape({-1});
  if (options.temperature == 0.0) return scores.argmax().item<int64_t>();

  scores = scores / options.temperature;
  const int64_t vocab = scores.size(0);
  // Sorting once serves both filters: keep a prefix of the descending order.
  auto [sorted, order] = scores.sort(/*dim=*/0, /*descending=*/true);
  int64_t keep = vocab;
  if (options.top_k > 0) keep = std::min(keep, options.top_k);
  auto probs = at::softmax(sorted.narrow(0, 0, keep), 0);
  if (options.top_p < 1.0) {
    // Smallest prefix whose probability mass reaches top_p (always at least one token).
    const auto* p = probs.data_ptr<double>();
    double mass = 0.0;
    int64_t n = 0;
    while (n < keep) {
      mass += p[n++];
      if (mass >= options.top_p) break;
    }
    keep = n;
    probs = probs.narrow(0, 0, keep);
  }
  const auto* p = probs.data_ptr<double>();
  double total = 0.0;
  for (int64_t i = 0; i < keep; ++i) total += p[i];
  double draw = std::uniform_real_distribution<double>(0.0, total)(rng);
  for (int64_t i = 0; i < keep; ++i) {
    draw -= p[i];
    if (draw < 0.0) return order[i].item<int64_t>();
  }
  return order[keep - 1].item<int64_t>();
}

}  // namespace mixlora::generate
