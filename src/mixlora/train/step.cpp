#include "mixlora/train/step.h"

#include "mixlora/tasks/causal_lm.h"
#include "mixlora/tasks/chunked_lm_loss.h"
#include "mixlora/tasks/classification.h"

namespace mixlora::train {

namespace {

struct SegmentLoss {
  at::Tensor total;  // task + router losses
  at::Tensor task, aux, z;
  int64_t tokens = 0;
};

SegmentLoss segment_loss(const model::Decoder& decoder, const adapters::Adapter* adapter,
                         const at::Tensor& hidden, const data::Batch& batch,
                         const adapters::AdapterSegment& segment,
                         const std::vector<moe::RouterRecord>& records, bool full_lm_loss) {
  const auto device = hidden.device();
  auto rows = [&](const at::Tensor& t) {
    return t.narrow(0, segment.row_begin, segment.row_count);
  };
  auto h = rows(hidden);
  auto labels = rows(batch.labels);
  auto class_labels = rows(batch.class_labels);
  SegmentLoss out;
  out.tokens = rows(batch.attention_mask).sum().item<int64_t>();  // host tensor: no device sync
  // Which losses apply is decided on the host batch, so the device never has to answer.
  const bool has_lm = labels.ne(data::kIgnoreIndex).any().item<bool>();
  const bool has_class =
      adapter && adapter->classifier.defined() && class_labels.ge(0).any().item<bool>();
  at::Tensor task = at::zeros({}, h.options().dtype(at::kFloat));
  // Causal-LM rows (any labelled position) and classification rows may mix in a multi-task adapter.
  // The chunked loss differentiates w.r.t. the hidden rows only: a head that trains (full-
  // parameter pretraining) takes the full one.
  if (has_lm && (full_lm_loss || decoder.model().lm_head.requires_grad())) {
    task = task + tasks::causal_lm_loss(decoder.logits(h), labels.to(device)).mean();
  } else if (has_lm) {
    const tasks::LogitsFn logits_of = [&](const at::Tensor& x) { return decoder.logits(x); };
    const auto chunk = tasks::lm_loss_chunk_rows(decoder.model().config.vocab_size);
    task = task + tasks::chunked_causal_lm_loss(logits_of, h, labels.to(device), chunk).mean();
  }
  if (has_class) {
    auto logits =
        tasks::classification_logits(h, rows(batch.last_token).to(device), adapter->classifier);
    task = task + tasks::classification_loss(logits, class_labels.to(device));
  }
  // Base rows (full-parameter training) have no router: their router losses are zero.
  const auto router = adapter ? adapters::router_losses(*adapter, records)
                              : adapters::RouterLosses{at::zeros_like(task), at::zeros_like(task)};
  out.total = task + router.aux + router.z;
  out.task = task.detach();
  out.aux = router.aux.detach();
  out.z = router.z.detach();
  return out;
}

}  // namespace

std::vector<StepLosses> forward_backward(const model::Decoder& decoder, const data::Batch& batch,
                                         const std::vector<adapters::AdapterSegment>& segments,
                                         const std::vector<int64_t>& accumulation,
                                         const StepOptions& options) {
  const auto mask = batch.attention_mask.to(decoder.model().device);
  adapters::AdapterHooks hooks(segments, mask, /*training=*/true, options.ffn_path);
  // The host mask: the decoder checks it for right padding (is_causal attention) without a sync.
  const auto hidden = decoder.hidden_states(batch.input_ids, batch.attention_mask, nullptr, &hooks,
                                            options.gradient_checkpointing);
  at::Tensor total;
  std::vector<SegmentLoss> losses;
  std::vector<moe::RouterBatchStats> router_stats(segments.size());
  for (size_t k = 0; k < segments.size(); ++k) {
    if (options.router_telemetry && segments[k].adapter && segments[k].adapter->is_mixlora()) {
      router_stats[k] = moe::router_batch_stats(hooks.router_records(k),
                                                segments[k].adapter->config.moe_options());
    }
    losses.push_back(segment_loss(decoder, segments[k].adapter, hidden, batch, segments[k],
                                  hooks.router_records(k), options.full_lm_loss));
    auto scaled = losses.back().total / static_cast<double>(accumulation[k]);
    total = total.defined() ? total + scaled : scaled;
  }
  total.backward();
  // The loss values are read after backward in one transfer: one host sync per step, not one
  // per loss.
  std::vector<at::Tensor> parts;
  for (const auto& l : losses)
    parts.insert(parts.end(), {l.task, l.aux.to(l.task.device()), l.z.to(l.task.device())});
  const auto values = at::stack(parts).to(at::kCPU, at::kDouble);
  const auto* v = values.data_ptr<double>();
  std::vector<StepLosses> out;
  for (size_t k = 0; k < losses.size(); ++k) {
    out.push_back(
        {v[3 * k], v[3 * k + 1], v[3 * k + 2], losses[k].tokens, std::move(router_stats[k])});
  }
  return out;
}

}  // namespace mixlora::train
