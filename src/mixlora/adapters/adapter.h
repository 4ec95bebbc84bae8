// A trainable adapter over a frozen base model: plain LoRA on the targeted projections and,
// for MixLoRA, a router and expert LoRAs in every feed-forward block; plus a classification
// head for classification tasks. Files follow SPEC section 7 (PEFT / MixLoRA plugin names).
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/lora/lora.h"
#include "mixlora/model/base_model.h"
#include "mixlora/model/decoder.h"
#include "mixlora/moe/lora_mixture.h"
#include "mixlora/moe/mixlora_ffn.h"

#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mixlora::adapters {

using lora::LoraWeights;

struct AdapterLayer {
  // Plain LoRAs: attention targets of LoRA, MixLoRA and LoRAMoE adapters, MLP targets of LoRA
  // adapters.
  std::map<model::Projection, LoraWeights> projections;
  std::optional<moe::MixLoraLayerWeights> mixlora;
  // LoRAMoE (MLP targets) and MoLA (every target): a mixture of LoRA experts per projection.
  std::map<model::Projection, moe::LoraMixtureWeights> mixtures;
  // Phi-3: one LoRA per fused projection ("qkv_proj", "gate_up_proj"), as the files hold them;
  // `projections` then holds its parts (the shared A, a row block of B each).
  std::map<std::string, LoraWeights> fused;
};

class Adapter {
 public:
  // Fresh weights for `config` on `base`, deterministic for `seed`.
  static Adapter create(const config::AdapterConfig& config, const model::BaseModel& base,
                        uint64_t seed);

  // DIR/adapter_config.json + DIR/adapter_model.safetensors. A tensor missing or mis-shaped
  // for `base` is an InputError naming it (with a "wrong base model?" hint).
  static Adapter load(const std::string& dir, const model::BaseModel& base);

  // Writes both files atomically; `export_bin` adds adapter_model.bin for torch.load.
  void save(const std::string& dir, const std::string& base_model_name,
            bool export_bin = false) const;

  // Tensors under their file names (SPEC section 7), in a stable order.
  std::vector<std::pair<std::string, at::Tensor>> state_dict() const;
  std::vector<at::Tensor> parameters() const;
  int64_t num_parameters() const;

  bool is_mixlora() const { return config.peft_type == config::PeftType::mixlora; }

  config::AdapterConfig config;
  std::vector<AdapterLayer> layers;
  at::Tensor classifier;  // [num_labels, hidden] fp32 for classification tasks, else undefined
};

// The router losses of one adapter as they enter the total loss (coefficients applied).
struct RouterLosses {
  at::Tensor aux;  // load balancing (scalar fp32), 0 when off
  at::Tensor z;    // switch z-loss, 0 otherwise
};
RouterLosses router_losses(const Adapter& adapter, const std::vector<moe::RouterRecord>& layers);

// One adapter's rows inside a (possibly fused) batch; adapter == nullptr = base model rows.
struct AdapterSegment {
  AdapterSegment(const Adapter* adapter, int64_t row_begin, int64_t row_count,
                 c10::optional<at::Generator> generator = c10::nullopt)
      : adapter(adapter),
        row_begin(row_begin),
        row_count(row_count),
        generator(std::move(generator)) {}
  const Adapter* adapter = nullptr;
  int64_t row_begin = 0;
  int64_t row_count = 0;
  c10::optional<at::Generator> generator;  // dropout / jitter in training; nullopt = global
};

// Applies each segment's adapter to its rows of the batch and records router outputs.
class AdapterHooks : public model::DecoderHooks {
 public:
  AdapterHooks(std::vector<AdapterSegment> segments, at::Tensor attention_mask, bool training,
               moe::FfnPath path = moe::FfnPath::efficient);

  at::Tensor attention_projection(int64_t layer, model::Projection projection,
                                  const at::Tensor& input, at::Tensor base_output,
                                  const at::Tensor& weight, const at::Tensor& bias) override;
  at::Tensor feed_forward(int64_t layer, const at::Tensor& input, const model::MlpWeights& mlp,
                          const model::ModelConfig& config) override;

  std::vector<at::Tensor> take_layer_outputs() override;
  void restore_layer_outputs(const std::vector<at::Tensor>& tensors) override;
  std::vector<at::Generator> generators() const override;

  // Router records of segment i: one per layer for MixLoRA, one per mixture projection for MoLA
  // with its router loss on, none otherwise.
  const std::vector<moe::RouterRecord>& router_records(size_t segment) const {
    return records_[segment];
  }
  // Router records are kept for the losses unless turned off (generation).
  void keep_records(bool keep) { keep_records_ = keep; }
  // Router decisions of segment i per layer, when kept (router profiles).
  void keep_routing(bool keep) { keep_routing_ = keep; }
  const std::vector<moe::Routing>& routings(size_t segment) const { return routings_[segment]; }

 private:
  // Segment s's rows through projection p of `layer`: a mixture, a plain LoRA, or the base.
  at::Tensor adapt_projection(size_t s, int64_t layer, model::Projection p, const at::Tensor& x,
                              const at::Tensor& base_output, const at::Tensor& weight,
                              const at::Tensor& bias);

  std::vector<AdapterSegment> segments_;
  at::Tensor attention_mask_;
  bool training_;
  moe::FfnPath path_;
  bool keep_records_ = true;
  bool keep_routing_ = false;
  std::vector<std::vector<moe::RouterRecord>> records_;
  // Gradient checkpointing: records already attached to checkpoint nodes, per segment, and the
  // (segment, record) pairs of the last take_layer_outputs.
  std::vector<size_t> committed_;
  std::vector<std::pair<size_t, moe::RouterRecord>> taken_;
  std::vector<std::vector<moe::Routing>> routings_;
};

}  // namespace mixlora::adapters
