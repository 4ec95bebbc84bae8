#include "mixlora/bench/flops.h"

namespace mixlora::bench {

double useful_flops_per_token(const model::ModelConfig& m, const config::AdapterConfig& a,
                              int64_t seq_len, double experts_per_token) {
  const double h = static_cast<double>(m.hidden_size);
  const double q_out = static_cast<double>(m.num_heads * m.head_dim);
  const double kv_out = static_cast<double>(m.num_kv_heads * m.head_dim);
  const double inter = static_cast<double>(m.intermediate_size);
  const double layers = static_cast<double>(m.num_layers);
  struct Proj {
    const char* name;
    double in, out;
  };
  const Proj attention[] = {
      {"q_proj", h, q_out}, {"k_proj", h, kv_out}, {"v_proj", h, kv_out}, {"o_proj", q_out, h}};
  const Proj mlp[] = {{"gate_proj", h, inter}, {"up_proj", h, inter}, {"down_proj", inter, h}};

  double frozen = 0.0, trainable = 0.0;
  const bool mixlora = a.peft_type == config::PeftType::mixlora;
  const double r = static_cast<double>(a.lora.r);
  const double expert_r = static_cast<double>(a.expert_shape().r);
  for (const auto& p : attention) {
    frozen += p.in * p.out;
    if (a.targets(p.name)) trainable += r * (p.in + p.out);
  }
  double active_experts = 0.0;
  if (mixlora) {
    active_experts = experts_per_token > 0.0 ? experts_per_token
                     : a.routing_strategy == config::RoutingStrategy::mixlora_switch
                         ? 1.0
                         : static_cast<double>(a.top_k);
    trainable += static_cast<double>(a.num_experts) * h;  // router
  }
  for (const auto& p : mlp) {
    frozen += p.in * p.out;
    if (!a.targets(p.name)) continue;
    trainable += mixlora ? active_experts * expert_r * (p.in + p.out) : r * (p.in + p.out);
  }
  frozen *= layers;
  trainable *= layers;
  frozen += static_cast<double>(m.vocab_size) * h;  // lm_head
  const double attention_flops = 12.0 * layers * static_cast<double>(seq_len) * q_out;
  return 4.0 * frozen + 6.0 * trainable + attention_flops;
}

}  // namespace mixlora::bench
