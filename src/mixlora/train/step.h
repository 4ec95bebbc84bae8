// One forward + backward pass of a fused training batch: the step the trainer repeats and the
// benchmark times. The optimizer update stays with each adapter's AdapterRun.
#pragma once

#include "mixlora/adapters/adapter.h"
#include "mixlora/data/sample.h"
#include "mixlora/model/decoder.h"
#include "mixlora/moe/mixlora_ffn.h"
#include "mixlora/moe/router_stats.h"

#include <vector>

namespace mixlora::train {

// Losses of one adapter's rows in a fused batch, as they entered its backward pass.
struct StepLosses {
  double task = 0.0, aux = 0.0, z = 0.0;
  int64_t tokens = 0;  // real tokens of its rows
  // MixLoRA with StepOptions::router_telemetry: the routing statistics, still on the device.
  moe::RouterBatchStats router;
};

// Losses of several micro-batches (and, data-parallel, of every rank's) summed: what the
// progress log averages per micro-batch.
struct LossSums {
  double task = 0.0, aux = 0.0, z = 0.0;
  int64_t tokens = 0, micro_batches = 0;
  void add(const StepLosses& l) {
    task += l.task;
    aux += l.aux;
    z += l.z;
    tokens += l.tokens;
    ++micro_batches;
  }
};

struct StepOptions {
  moe::FfnPath ffn_path = moe::FfnPath::efficient;
  bool gradient_checkpointing = false;
  bool router_telemetry = false;  // fill StepLosses::router (no host sync; docs/telemetry.md)
  // The reference LM loss over full [tokens, vocab] logits instead of the chunked one (same
  // value): mixlora-bench --full-lm-loss measures what chunking saves.
  bool full_lm_loss = false;
};

// Runs `batch` (segments say which rows belong to which adapter) through the decoder with the
// adapters, takes each adapter's task + router losses, and backpropagates
// sum_k loss_k / accumulation[k] into the adapters' gradients. Returns the losses per segment.
std::vector<StepLosses> forward_backward(const model::Decoder& decoder, const data::Batch& batch,
                                         const std::vector<adapters::AdapterSegment>& segments,
                                         const std::vector<int64_t>& accumulation,
                                         const StepOptions& options);

}  // namespace mixlora::train
