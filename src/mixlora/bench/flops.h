// Useful training FLOPs per token, the numerator of MFU (documented in docs/benchmarks.md):
//   4 per frozen weight (forward + input gradient; no weight gradient),
//   6 per trainable weight (forward + input and weight gradients),
//   12 * layers * seq * (heads * head_dim) for attention scores and mixing (forward 4 * seq * d
//   per layer: QK^T and PV over the whole sequence, causal half not subtracted; backward 2x).
// Frozen weights count once per token: the dense FFN whatever top_k is (what the efficient
// MixLoRA path computes); expert LoRAs count for the experts a token actually uses:
// `experts_per_token` when > 0 (the bench measures it: top-p routing picks a data-dependent
// number), else top_k (1 for switch); lm_head counts, the embedding lookup does not.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/model/model_config.h"

namespace mixlora::bench {

double useful_flops_per_token(const model::ModelConfig& model, const config::AdapterConfig& adapter,
                              int64_t seq_len, double experts_per_token = 0.0);

}  // namespace mixlora::bench
