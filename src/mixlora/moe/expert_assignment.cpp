#include "mixlora/moe/expert_assignment.h"

namespace mixlora::moe {

ExpertAssignment assign_experts(const at::Tensor& experts, const at::Tensor& weights,
                                int64_t num_experts) {
  const int64_t slots = experts.size(1);
  auto flat_experts = experts.reshape({-1});
  // A stable sort groups the (token, slot) pairs by expert, in token order within each, with
  // the empty slots (-1) first.
  auto order = std::get<1>(flat_experts.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto counts = at::bincount(flat_experts + 1, /*weights=*/{}, num_experts + 1).to(at::kCPU);
  const auto* c = counts.data_ptr<int64_t>();
  const int64_t empty = c[0];
  auto pair = order.narrow(0, empty, flat_experts.numel() - empty);
  ExpertAssignment a;
  a.tokens = at::floor_divide(pair, slots);
  a.weights = weights.reshape({-1}).index_select(0, pair);
  a.counts.assign(c + 1, c + 1 + num_experts);
  return a;
}

}  // namespace mixlora::moe
