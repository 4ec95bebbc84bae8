// Autoregressive generation with a KV cache: prefill the prompt once, then one token per step.
#pragma once

#include "mixlora/generate/sampler.h"
#include "mixlora/model/decoder.h"

#include <functional>
#include <vector>

namespace mixlora::generate {

struct GenerationOptions {
  SamplingOptions sampling;
  int64_t max_new_tokens = 128;
  int64_t eos_token_id = 2;  // generation stops after emitting it; -1 = never
  uint64_t seed = 0;
};

// Returns the new token ids (the EOS included when it ended the run). `on_token` sees each id as
// it is produced, for streaming. Prompt ids are checked against the vocabulary and the model's
// context length (InputError); new tokens stop at the context length.
std::vector<int64_t> generate(const model::Decoder& decoder, const std::vector<int64_t>& prompt,
                              const GenerationOptions& options,
                              model::DecoderHooks* hooks = nullptr,
                              const std::function<void(int64_t)>& on_token = {});

}  // namespace mixlora::generate
