#include "mixlora/model/recompute.h"

#include "mixlora/common/error.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>

namespace mixlora::model {

namespace {

// What backward needs besides the saved input; kept in the node through an IValue capsule.
struct BlockState : torch::CustomClassHolder {
  RecomputedBlock block;
  std::vector<at::Generator> generators;
  std::vector<at::Tensor> rng_states;  // at the start of the forward run
};

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& input,
                                                c10::intrusive_ptr<BlockState> state) {
    for (auto& g : state->generators) state->rng_states.push_back(g.get_state());
    ctx->save_for_backward({input});
    auto outputs = state->block(input);  // grad mode is off here: no graph is kept
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return outputs;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto state =
        c10::static_intrusive_pointer_cast<BlockState>(ctx->saved_data["state"].toCapsule());
    const auto input = ctx->get_saved_variables()[0];
    // Replay the forward run's random draws, then leave the generators as we found them.
    std::vector<at::Tensor> now;
    for (size_t i = 0; i < state->generators.size(); ++i) {
      now.push_back(state->generators[i].get_state());
      state->generators[i].set_state(state->rng_states[i]);
    }
    auto x = input.detach().requires_grad_(true);
    std::vector<at::Tensor> outputs;
    {
      torch::AutoGradMode grad(true);
      outputs = state->block(x);
    }
    for (size_t i = 0; i < state->generators.size(); ++i) state->generators[i].set_state(now[i]);
    if (outputs.size() != grad_outputs.size()) {
      fail_runtime(
          "gradient checkpointing: the recomputed block gave {} outputs, the forward run {}",
          outputs.size(), grad_outputs.size());
    }
    std::vector<at::Tensor> roots, grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        roots.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

std::vector<at::Tensor> run_recomputed(RecomputedBlock block, const at::Tensor& input,
                                       std::vector<at::Generator> generators) {
  if (!at::GradMode::is_enabled()) return block(input);
  // The node is only created when an input requires grad; frozen embeddings give one that does
  // not, and the adapter weights inside the block would then get no gradient.
  auto in = input.requires_grad() ? input : input.detach().requires_grad_(true);
  auto state = c10::make_intrusive<BlockState>();
  state->block = std::move(block);
  state->generators = std::move(generators);
  return CheckpointFunction::apply(in, state);
}

}  // namespace mixlora::model
