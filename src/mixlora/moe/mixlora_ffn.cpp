#include "mixlora/moe/mixlora_ffn.h"

#include "mixlora/model/base_linear.h"
#include "mixlora/model/decoder.h"
#include "mixlora/moe/expert_assignment.h"

#include <cmath>

namespace mixlora::moe {

int64_t switch_capacity(const MoeOptions& options, int64_t steps) {
  if (!options.capacity_factor) return options.expert_capacity;
  const double per_expert = *options.capacity_factor * static_cast<double>(steps) /
                            static_cast<double>(options.num_experts);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(per_expert)));
}

namespace {

Routing route(const at::Tensor& router_input, const at::Tensor& router, const at::Tensor& mask_flat,
              const MoeOptions& options, int64_t batch, int64_t steps, at::Tensor& logits) {
  logits = at::linear(router_input, router);
  switch (options.routing_strategy) {
    case RoutingStrategy::mixlora: return router_topk(logits, options.top_k);
    case RoutingStrategy::mixlora_dynamic:
      return router_topp(logits, options.top_p, options.temperature);
    case RoutingStrategy::mixlora_switch:
      return router_switch(logits, batch, switch_capacity(options, steps), mask_flat);
  }
  return {};
}

at::Tensor maybe_lora(const std::optional<lora::LoraWeights>& lora, const at::Tensor& x,
                      const at::Tensor& base_output, bool training,
                      const c10::optional<at::Generator>& generator) {
  return lora ? lora::apply_lora(*lora, x, base_output, training, {}, {}, generator) : base_output;
}

// Every expert runs its whole FFN on its tokens; weighted outputs summed per token.
at::Tensor naive_experts(const at::Tensor& flat, const model::MlpWeights& mlp,
                         const MixLoraLayerWeights& weights, const MoeOptions& options,
                         const ExpertAssignment& assignment, bool training,
                         const c10::optional<at::Generator>& generator) {
  auto output = at::zeros({flat.size(0), flat.size(1)}, flat.options().dtype(at::kFloat));
  int64_t offset = 0;
  for (int64_t e = 0; e < options.num_experts; ++e) {
    const int64_t count = assignment.counts[e];
    if (count == 0) continue;
    auto tokens = assignment.tokens.narrow(0, offset, count);
    auto weight = assignment.weights.narrow(0, offset, count).unsqueeze(1);
    offset += count;
    const auto& lora = weights.experts[e];
    auto xe = flat.index_select(0, tokens);
    auto inter =
        model::activation(maybe_lora(lora.gate_proj, xe, model::base_linear(xe, mlp.gate_proj),
                                     training, generator),
                          options.act_fn) *
        maybe_lora(lora.up_proj, xe, model::base_linear(xe, mlp.up_proj), training, generator);
    if (training && options.ffn_dropout > 0.0)
      inter = lora::dropout(inter, options.ffn_dropout, generator);
    auto expert_out = maybe_lora(lora.down_proj, inter, model::base_linear(inter, mlp.down_proj),
                                 training, generator);
    output = output.index_add(0, tokens, expert_out.to(at::kFloat) * weight);
  }
  return output;
}

// W1 x and W3 x once for all tokens; the (token, slot) rows gathered once in expert order and
// split into contiguous blocks (whose backward is one concatenation, not one full-size zero
// buffer per expert); per expert only its LoRA work; one index_add per output; the base W2
// once on the weighted sum of intermediates. Random draws in the naive path's order.
at::Tensor efficient_experts(const at::Tensor& flat, c10::ScalarType dtype,
                             const model::MlpWeights& mlp, const MixLoraLayerWeights& weights,
                             const MoeOptions& options, const ExpertAssignment& assignment,
                             bool training, const c10::optional<at::Generator>& generator) {
  const int64_t tokens_count = flat.size(0), intermediate = mlp.gate_proj.size(0);
  auto intermediate_sum = at::zeros({tokens_count, intermediate}, flat.options().dtype(at::kFloat));
  if (assignment.tokens.numel() == 0) {
    return model::base_linear(intermediate_sum.to(dtype), mlp.down_proj).to(at::kFloat);
  }
  const auto& tokens = assignment.tokens;
  auto weight = assignment.weights.unsqueeze(1);
  const auto xs = flat.index_select(0, tokens).split_with_sizes(assignment.counts);
  const auto gates = model::base_linear(flat, mlp.gate_proj)
                         .index_select(0, tokens)
                         .split_with_sizes(assignment.counts);
  const auto ups = model::base_linear(flat, mlp.up_proj)
                       .index_select(0, tokens)
                       .split_with_sizes(assignment.counts);
  std::vector<at::Tensor> inters, deltas;
  for (int64_t e = 0; e < options.num_experts; ++e) {
    if (assignment.counts[e] == 0) continue;
    const auto& lora = weights.experts[e];
    auto inter = model::activation(maybe_lora(lora.gate_proj, xs[e], gates[e], training, generator),
                                   options.act_fn) *
                 maybe_lora(lora.up_proj, xs[e], ups[e], training, generator);
    if (training && options.ffn_dropout > 0.0)
      inter = lora::dropout(inter, options.ffn_dropout, generator);
    inters.push_back(inter);
    if (lora.down_proj)
      deltas.push_back(lora::lora_delta(*lora.down_proj, inter, training, generator));
  }
  intermediate_sum = intermediate_sum.index_add(0, tokens, at::cat(inters).to(at::kFloat) * weight);
  auto output = model::base_linear(intermediate_sum.to(dtype), mlp.down_proj).to(at::kFloat);
  // Every expert of an adapter targets the same projections: all have a down LoRA or none.
  if (!deltas.empty()) output = output.index_add(0, tokens, at::cat(deltas) * weight);
  return output;
}

}  // namespace

MixLoraOutput mixlora_ffn(const at::Tensor& x, const at::Tensor& token_mask,
                          const model::MlpWeights& mlp, const MixLoraLayerWeights& weights,
                          const MoeOptions& options, bool training, FfnPath path,
                          const c10::optional<at::Generator>& generator) {
  const int64_t batch = x.size(0), steps = x.size(1), hidden = x.size(2);
  const int64_t num_experts = options.num_experts;
  auto flat = x.reshape({batch * steps, hidden});
  at::Tensor mask_flat;
  if (token_mask.defined()) mask_flat = token_mask.reshape({-1}).to(at::kBool);

  auto router_input = flat.to(at::kFloat);
  if (training && options.jitter_noise > 0.0) {
    // Drawn on the host when the adapter's generator is a host one (see lora::dropout).
    auto noise = at::empty(
        router_input.sizes(),
        router_input.options().device(generator ? generator->device() : router_input.device()));
    noise.uniform_(1.0 - options.jitter_noise, 1.0 + options.jitter_noise, generator);
    router_input = router_input * noise.to(router_input.device());
  }
  MixLoraOutput result;
  at::Tensor logits;
  result.routing = route(router_input, weights.router, mask_flat, options, batch, steps, logits);
  auto& routing = result.routing;
  result.record.logits = logits;
  result.record.probs = routing.probs;
  result.record.slot_experts =
      routing.argmax_experts.defined() ? routing.argmax_experts.unsqueeze(1) : routing.experts;
  result.record.token_mask = mask_flat;
  // Padding gets no expert (its output never reaches a real token through the attention mask).
  if (mask_flat.defined()) {
    routing.experts = routing.experts.masked_fill(mask_flat.logical_not().unsqueeze(1), -1);
  }

  const auto assignment = assign_experts(routing.experts, routing.weights, num_experts);
  result.record.routed_counts = assignment.counts;
  auto output = path == FfnPath::efficient
                    ? efficient_experts(flat, x.scalar_type(), mlp, weights, options, assignment,
                                        training, generator)
                    : naive_experts(flat, mlp, weights, options, assignment, training, generator);
  if (routing.dropped.defined()) {
    // Switch: tokens over capacity skip the experts; like the routed ones they are scaled by
    // their top-1 probability.
    auto pass = routing.dropped.to(at::kFloat).unsqueeze(1) * routing.weights;
    output = output + flat.to(at::kFloat) * pass;
  }
  result.output = output.to(x.scalar_type()).view({batch, steps, hidden});
  return result;
}

}  // namespace mixlora::moe
