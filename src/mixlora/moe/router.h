// Routing of tokens to experts (SPEC section 5). Each router turns router logits [N, E] into a
// fixed number of slots per token: `experts` [N, S] (-1 = empty slot) and `weights` [N, S].
//   router_topk:   softmax, keep the k largest, renormalise them.
//   router_topp:   softmax (of logits / temperature), keep the smallest prefix of the sorted
//                  probabilities whose sum exceeds top_p (at least one), raw probabilities.
//   router_switch: argmax; per sequence an expert takes at most `capacity` tokens in position
//                  order; the others get no expert. Weight = the top-1 probability.
#pragma once

#include <ATen/ATen.h>

namespace mixlora::moe {

struct Routing {
  at::Tensor probs;    // [N, E] fp32 softmax of the router logits (after temperature)
  at::Tensor experts;  // [N, S] int64 expert per slot, -1 when the slot is empty
  at::Tensor weights;  // [N, S] fp32 weight per slot, 0 when empty
  // Switch only: [N] bool, true where the token overflowed its expert's capacity (or is
  // padding) and passes through without an expert.
  at::Tensor dropped;
  at::Tensor argmax_experts;  // switch only: [N] choice before capacity dropping (for the aux loss)
};

Routing router_topk(const at::Tensor& logits, int64_t top_k);

Routing router_topp(const at::Tensor& logits, double top_p, double temperature);

// `logits` [B*T, E] for B sequences of T positions (row-major); `token_mask` [B*T] (true =
// real token; padding never takes capacity and is always dropped) or undefined.
Routing router_switch(const at::Tensor& logits, int64_t batch, int64_t capacity,
                      const at::Tensor& token_mask);

}  // namespace mixlora::moe
