// Activation recomputation ("gradient checkpointing"; LibTorch C++ has no torch.utils.checkpoint):
// a block runs forward without keeping its autograd graph; backward recomputes it with gradients on
// and backpropagates through the recomputation (the "reentrant" scheme of PyTorch). Parameters the
// block uses (adapter weights) are autograd leaves and get their gradients accumulated there.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

namespace mixlora::model {

// The block: input -> outputs. outputs[0] is the block's main result; further outputs are side
// results that later losses use (router logits), so they get gradients too.
using RecomputedBlock = std::function<std::vector<at::Tensor>(const at::Tensor& input)>;

// Runs `block` on `input` and returns its outputs attached to one autograd node. The states of
// `generators` (dropout, jitter) are saved before the forward run and replayed for the
// recomputation, then put back, so masks match and later draws are unaffected. The block and
// what it captures must stay alive until backward. Without grad mode this is just block(input).
std::vector<at::Tensor> run_recomputed(RecomputedBlock block, const at::Tensor& input,
                                       std::vector<at::Generator> generators);

}  // namespace mixlora::model
