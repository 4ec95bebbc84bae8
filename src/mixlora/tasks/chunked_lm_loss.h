// The causal-LM loss without materialising [tokens, vocab] logits (large vocabularies: Llama-3's
// 128,256 or Gemma-3's 262,144 words make full fp32 logits of a 4 x 2048 batch 4.3 / 2.1 GB
// before their gradient). Only labelled positions are scored; their hidden rows are projected,
// scored and freed a chunk at a time. The gradient w.r.t. the hidden rows is computed in the same
// pass, chunk by chunk, and kept (it is as large as the rows themselves), so backward only scales
// it: the same matmuls as the unchunked loss, peak memory O(chunk x vocab). Reference: causal_lm.h.
#pragma once

#include "mixlora/tasks/causal_lm.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

namespace mixlora::tasks {

// hidden [..., H] -> fp32 logits [..., V] (Decoder::logits: the LM head, soft-capping, ...).
using LogitsFn = std::function<at::Tensor(const at::Tensor& hidden)>;

// Rows per chunk so that one chunk's fp32 logits take about `bytes`.
int64_t lm_loss_chunk_rows(int64_t vocab_size, int64_t bytes = int64_t{64} << 20);

// causal_lm_loss(logits_of(hidden), labels) for hidden [B, T, H]: the same sum and count (equal
// to fp32 rounding). Differentiable w.r.t. `hidden` only: the LM head must be frozen (adapter
// training); a head that trains (pretraining) uses causal_lm_loss.
TokenLoss chunked_causal_lm_loss(const LogitsFn& logits_of, const at::Tensor& hidden,
                                 const at::Tensor& labels, int64_t chunk_rows);

}  // namespace mixlora::tasks
