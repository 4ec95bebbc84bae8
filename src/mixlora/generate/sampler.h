// Choosing the next token from logits: greedy, temperature, top-k and top-p (in HF's order).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <random>

namespace mixlora::generate {

struct SamplingOptions {
  double temperature = 0.0;  // 0 = greedy argmax
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
};

// Validates ranges; throws InputError naming the flag.
void validate(const SamplingOptions& options);

// logits: [vocab] fp32 (any device). The random engine lives on the host so that a seed gives
// the same tokens on CPU and CUDA.
int64_t sample_token(const at::Tensor& logits, const SamplingOptions& options,
                     std::mt19937_64& rng);

}  // namespace mixlora::generate
