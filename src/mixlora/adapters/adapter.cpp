#include "mixlora/adapters/adapter.h"

#include "mixlora/common/error.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/io/json_file.h"
#include "mixlora/io/safetensors.h"
#include "mixlora/io/torch_bin.h"
#include "mixlora/io/torch_bin_reader.h"
#include "mixlora/model/base_linear.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <filesystem>
#include <set>

namespace mixlora::adapters {

namespace fs = std::filesystem;
using model::Projection;

namespace {

constexpr Projection kAttention[] = {Projection::q_proj, Projection::k_proj, Projection::v_proj,
                                     Projection::o_proj};
constexpr Projection kMlp[] = {Projection::gate_proj, Projection::up_proj, Projection::down_proj};

// Phi-3's fused projections and the parts the loader splits them into, in row order.
struct FusedGroup {
  const char* name;
  std::vector<Projection> parts;
};
const FusedGroup kFusedGroups[] = {
    {"qkv_proj", {Projection::q_proj, Projection::k_proj, Projection::v_proj}},
    {"gate_up_proj", {Projection::gate_proj, Projection::up_proj}}};

// The fused projection `p` is a part of, or nullptr.
const char* fused_group_of(Projection p) {
  for (const auto& group : kFusedGroups)
    if (std::find(group.parts.begin(), group.parts.end(), p) != group.parts.end())
      return group.name;
  return nullptr;
}

bool is_attention(Projection p) {
  return p == Projection::q_proj || p == Projection::k_proj || p == Projection::v_proj ||
         p == Projection::o_proj;
}

const at::Tensor& base_weight(const model::DecoderLayerWeights& layer, Projection p) {
  switch (p) {
    case Projection::q_proj: return layer.attention.q_proj;
    case Projection::k_proj: return layer.attention.k_proj;
    case Projection::v_proj: return layer.attention.v_proj;
    case Projection::o_proj: return layer.attention.o_proj;
    case Projection::gate_proj: return layer.mlp.gate_proj;
    case Projection::up_proj: return layer.mlp.up_proj;
    case Projection::down_proj: return layer.mlp.down_proj;
  }
  return layer.mlp.down_proj;
}

// PEFT names plain-LoRA tensors after the module path inside the wrapped HF model; the MixLoRA
// plugin and MoE-PEFT's LoRAMoE / MoLA use their own roots ("mixlora.", "loramoe.", "mola.").
std::string module_prefix(const Adapter& adapter, int64_t layer, const std::string& name,
                          bool attention) {
  const std::string block = attention ? "self_attn." : "mlp.";
  const auto type = adapter.config.peft_type;
  const std::string root = type == config::PeftType::lora
                               ? "base_model.model." + model::layer_prefix(layer)
                               : fmt::format("{}.layers.{}.",
                                             type == config::PeftType::mixlora   ? "mixlora"
                                             : type == config::PeftType::loramoe ? "loramoe"
                                                                                 : "mola",
                                             layer);
  return root + block + name;
}

std::string module_prefix(const Adapter& adapter, int64_t layer, Projection p) {
  return module_prefix(adapter, layer, model::projection_name(p), is_attention(p));
}

// One LoRA over the rows of `parts` stacked (a fused projection) and, per part, a LoRA that
// shares its A and views its row block of B: gradients of the parts reach the fused tensors,
// and the optimizer's updates of those reach the parts.
std::pair<LoraWeights, std::vector<LoraWeights>> fused_lora(const std::vector<at::Tensor>& parts,
                                                            const lora::LoraShape& shape,
                                                            bool use_rslora, lora::LoraInit init,
                                                            at::Generator& generator,
                                                            c10::Device device) {
  int64_t rows = 0;
  for (const auto& w : parts) rows += w.size(0);
  auto fused = lora::init_lora(parts[0].size(1), rows, shape, use_rslora, init, generator, device);
  at::AutoGradMode grad_mode(true);  // the views must stay connected to B even under no_grad
  std::vector<LoraWeights> views;
  int64_t offset = 0;
  for (const auto& w : parts) {
    auto view = fused;
    view.b = fused.b.narrow(0, offset, w.size(0));
    offset += w.size(0);
    views.push_back(view);
  }
  return {fused, views};
}

// Phi-3 stores q/k/v and gate/up fused; PEFT and MoE-PEFT target them by those names, and so do we.
void check_fused_targets(const config::AdapterConfig& config, const model::BaseModel& base) {
  const bool fused_base = base.config.fused_projections;
  for (const auto& group : kFusedGroups) {
    if (!fused_base && config.targets(group.name)) {
      fail_input(
          "adapter '{}': target_modules: {} exists only in models with fused projections (Phi-3); "
          "{} has separate ones",
          config.name, group.name, base.config.architecture);
    }
    for (auto p : group.parts) {
      if (fused_base && config.targets(model::projection_name(p))) {
        fail_input(
            "adapter '{}': target_modules: {} fuses {} into {}: target \"{}\" (as PEFT and "
            "MoE-PEFT name it)",
            config.name, base.config.architecture, model::projection_name(p), group.name,
            group.name);
      }
    }
  }
  if (!fused_base) return;
  if (config.is_lora_mixture()) {
    fail_input(
        "adapter '{}': LoRAMoE / MoLA adapters on {} (fused projections) are not supported; "
        "use LORA or MIXLORA there",
        config.name, base.config.architecture);
  }
  if (config.use_dora) {
    fail_input("adapter '{}': use_dora on {} (fused projections) is not supported", config.name,
               base.config.architecture);
  }
}

void add_lora(std::vector<std::pair<std::string, at::Tensor>>& out, const std::string& prefix,
              const LoraWeights& lora) {
  out.emplace_back(prefix + ".lora_A.weight", lora.a);
  out.emplace_back(prefix + ".lora_B.weight", lora.b);
  if (lora.magnitude.defined()) out.emplace_back(prefix + ".lora_magnitude_vector", lora.magnitude);
}

}  // namespace

Adapter Adapter::create(const config::AdapterConfig& config, const model::BaseModel& base,
                        uint64_t seed) {
  if (config.use_dora && config.peft_type != config::PeftType::lora &&
      (config.targets("gate_proj") || config.targets("up_proj") || config.targets("down_proj"))) {
    fail_input(
        "adapter '{}': use_dora is supported on plain LoRA projections only, not on "
        "MixLoRA / LoRAMoE / MoLA experts (drop gate/up/down_proj from target_modules or set "
        "use_dora false)",
        config.name);
  }
  check_fused_targets(config, base);
  Adapter adapter;
  adapter.config = config;
  // Unset act_fn: the experts use the base FFN's activation, as MoE-PEFT and the plugin do.
  if (!config.act_fn_given) adapter.config.act_fn = base.config.hidden_act;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto device = base.device;
  const bool mixlora = config.peft_type == config::PeftType::mixlora;
  for (size_t i = 0; i < base.layers.size(); ++i) {
    const auto& layer = base.layers[i];
    AdapterLayer out;
    auto plain = [&](Projection p) {
      const auto& w = base_weight(layer, p);
      out.projections.emplace(
          p, lora::init_lora(w.size(1), w.size(0), config.lora, config.use_rslora, config.lora_init,
                             generator, device, w, config.use_dora));
    };
    auto mixture = [&](Projection p) {
      const auto& w = base_weight(layer, p);
      moe::LoraMixtureWeights m;
      m.router = moe::init_mixture_router(config.num_experts, w.size(1), config.router_init_range,
                                          generator, device);
      for (int64_t e = 0; e < config.num_experts; ++e) {
        m.experts.push_back(lora::init_lora(w.size(1), w.size(0), config.lora, config.use_rslora,
                                            config.lora_init, generator, device));
      }
      out.mixtures.emplace(p, std::move(m));
    };
    // Phi-3: one LoRA per fused projection, its parts as views (fused_lora).
    auto fused = [&](const FusedGroup& group, const lora::LoraShape& shape) {
      std::vector<at::Tensor> parts;
      for (auto p : group.parts) parts.push_back(base_weight(layer, p));
      return fused_lora(parts, shape, config.use_rslora, config.lora_init, generator, device);
    };
    for (const auto& group : kFusedGroups) {
      const bool experts_carry = mixlora && std::string(group.name) == "gate_up_proj";
      if (!config.targets(group.name) || experts_carry) continue;
      auto [whole, parts] = fused(group, config.lora);
      out.fused.emplace(group.name, whole);
      for (size_t k = 0; k < parts.size(); ++k) out.projections.emplace(group.parts[k], parts[k]);
    }
    for (auto p : kAttention) {
      const std::string name = model::projection_name(p);
      if (config.mixes(name)) {
        mixture(p);
      } else if (config.targets(name)) {
        plain(p);
      }
    }
    if (config.is_lora_mixture()) {
      for (auto p : kMlp)
        if (config.mixes(model::projection_name(p))) mixture(p);
    } else if (!mixlora) {
      for (auto p : kMlp)
        if (config.targets(model::projection_name(p))) plain(p);
    } else {
      moe::MixLoraLayerWeights moe_layer;
      moe_layer.router =
          at::normal(0.0, config.router_init_range, {config.num_experts, base.config.hidden_size},
                     generator, at::TensorOptions(at::kFloat))
              .to(device)
              .requires_grad_(true);
      for (int64_t e = 0; e < config.num_experts; ++e) {
        moe::ExpertLoras expert;
        auto make = [&](Projection p) -> std::optional<LoraWeights> {
          if (!config.targets(model::projection_name(p))) return std::nullopt;
          const auto& w = base_weight(layer, p);
          return lora::init_lora(w.size(1), w.size(0), config.expert_shape(), config.use_rslora,
                                 config.lora_init, generator, device);
        };
        expert.gate_proj = make(Projection::gate_proj);
        expert.up_proj = make(Projection::up_proj);
        if (config.targets("gate_up_proj")) {
          auto [whole, parts] = fused(kFusedGroups[1], config.expert_shape());
          expert.gate_up_proj = whole;
          expert.gate_proj = parts[0];
          expert.up_proj = parts[1];
        }
        expert.down_proj = make(Projection::down_proj);
        moe_layer.experts.push_back(std::move(expert));
      }
      out.mixlora = std::move(moe_layer);
    }
    adapter.layers.push_back(std::move(out));
  }
  if (config.num_labels > 0) {
    // Classification head: bias-free, N(0, 0.02) like HF's score layer init.
    adapter.classifier = at::normal(0.0, 0.02, {config.num_labels, base.config.hidden_size},
                                    generator, at::TensorOptions(at::kFloat))
                             .to(device)
                             .requires_grad_(true);
  }
  return adapter;
}

std::vector<std::pair<std::string, at::Tensor>> Adapter::state_dict() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& layer = layers[i];
    for (const auto& [name, lora] : layer.fused) {
      add_lora(out, module_prefix(*this, i, name, name == "qkv_proj"), lora);
    }
    for (const auto& [p, lora] : layer.projections) {
      const char* group = fused_group_of(p);
      if (group && layer.fused.count(group)) continue;  // a view of a fused LoRA written above
      add_lora(out, module_prefix(*this, i, p), lora);
    }
    // MoE-PEFT's plugin MoE names: <projection>.moe_gate.weight, <projection>.experts.<e>.lora_A...
    for (const auto& [p, mixture] : layer.mixtures) {
      const auto prefix = module_prefix(*this, i, p);
      out.emplace_back(prefix + ".moe_gate.weight", mixture.router);
      for (size_t e = 0; e < mixture.experts.size(); ++e) {
        add_lora(out, fmt::format("{}.experts.{}", prefix, e), mixture.experts[e]);
      }
    }
    if (!layer.mixlora) continue;
    const std::string mlp = fmt::format("mixlora.layers.{}.mlp.", i);
    out.emplace_back(mlp + "moe_gate.weight", layer.mixlora->router);
    for (size_t e = 0; e < layer.mixlora->experts.size(); ++e) {
      const auto& expert = layer.mixlora->experts[e];
      const bool fused = expert.gate_up_proj.has_value();  // Phi-3: gate/up are its views
      const std::pair<const char*, const std::optional<LoraWeights>*> parts[] = {
          {"gate_proj", fused ? nullptr : &expert.gate_proj},
          {"up_proj", fused ? nullptr : &expert.up_proj},
          {"gate_up_proj", &expert.gate_up_proj},
          {"down_proj", &expert.down_proj}};
      for (const auto& [name, lora] : parts) {
        if (lora && *lora) add_lora(out, fmt::format("{}{}.experts.{}", mlp, name, e), **lora);
      }
    }
  }
  // MoE-PEFT's ClassificationOutputLayer reads and writes the head as "classifier".
  if (classifier.defined()) out.emplace_back("classifier", classifier);
  return out;
}

std::vector<at::Tensor> Adapter::parameters() const {
  std::vector<at::Tensor> params;
  for (auto& [name, tensor] : state_dict()) params.push_back(tensor);
  return params;
}

int64_t Adapter::num_parameters() const {
  int64_t n = 0;
  for (const auto& t : parameters()) n += t.numel();
  return n;
}

void Adapter::save(const std::string& dir, const std::string& base_model_name,
                   bool export_bin) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail_runtime("{}: cannot create the adapter directory: {}", dir, ec.message());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, tensor] : state_dict()) {
    tensors.emplace_back(name, tensor.detach().to(at::kCPU, at::kFloat).contiguous());
  }
  io::save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors,
                       {{"format", "pt"}});
  if (export_bin) io::save_torch_bin((fs::path(dir) / "adapter_model.bin").string(), tensors);
  // The config last: a directory with adapter_config.json is a complete adapter.
  io::write_file_atomically((fs::path(dir) / "adapter_config.json").string(),
                            config::adapter_config_to_json(config, base_model_name).dump(2) + "\n");
}

namespace {

// The head's name as MoE-PEFT writes it and as we wrote it before; both are read.
constexpr const char* kClassifier = "classifier";
constexpr const char* kClassifierAlias = "classifier.weight";

struct AdapterWeights {
  std::string path;  // the file they came from, for messages
  std::map<std::string, at::Tensor> tensors;
};

// adapter_model.safetensors, else adapter_model.bin (torch.save format: MoE-PEFT, the MixLoRA
// plugin) through the restricted reader that reads tensor records only.
AdapterWeights read_adapter_weights(const std::string& dir) {
  const std::string safetensors = (fs::path(dir) / "adapter_model.safetensors").string();
  const std::string bin = (fs::path(dir) / "adapter_model.bin").string();
  std::error_code ec;
  AdapterWeights weights;
  if (fs::exists(safetensors, ec)) {
    weights.path = safetensors;
    const auto file = io::SafeTensorsFile::open(safetensors);
    for (const auto& info : file.tensors())
      weights.tensors.emplace(info.name, file.load(info.name));
  } else if (fs::exists(bin, ec)) {
    weights.path = bin;
    for (auto& [name, tensor] : io::load_torch_bin(bin))
      weights.tensors.emplace(name, std::move(tensor));
  } else {
    fail_input("{}: missing adapter_model.safetensors (or adapter_model.bin)", dir);
  }
  if (weights.tensors.count(kClassifierAlias)) {
    if (weights.tensors.count(kClassifier)) {
      fail_input("{}: both '{}' and '{}' are present; keep one classification head", weights.path,
                 kClassifier, kClassifierAlias);
    }
    auto node = weights.tensors.extract(kClassifierAlias);
    node.key() = kClassifier;
    weights.tensors.insert(std::move(node));
  }
  return weights;
}

// MoE-PEFT writes no task_name into adapter_config.json: a classification head in the weights
// says what the adapter is, and its rows how many labels it has.
void infer_task_from_head(config::AdapterConfig& config, const AdapterWeights& weights) {
  auto head = weights.tensors.find(kClassifier);
  if (head == weights.tensors.end() || config.num_labels > 0) return;
  if (head->second.dim() != 2 || head->second.size(0) < 2) {
    fail_input("{}: tensor '{}' has shape [{}]; a classification head is [num_labels >= 2, hidden]",
               weights.path, kClassifier, fmt::join(head->second.sizes(), ", "));
  }
  config.task_name = "classification";
  config.num_labels = head->second.size(0);
}

}  // namespace

Adapter Adapter::load(const std::string& dir, const model::BaseModel& base) {
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail_input("{}: adapter directory not found", dir);
  if (!fs::exists(config_path, ec)) fail_input("{}: missing adapter_config.json", dir);
  auto config = config::parse_adapter_config_file(io::read_json_file(config_path), config_path);
  // PEFT files carry no name; the directory is the adapter's name there.
  if (config.name.empty()) config.name = fs::path(dir).lexically_normal().filename().string();
  if (config.name.empty())
    config.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  const auto weights = read_adapter_weights(dir);
  const std::string& weights_path = weights.path;
  infer_task_from_head(config, weights);
  auto adapter = create(config, base, /*seed=*/0);
  torch::NoGradGuard no_grad;
  std::set<std::string> expected;
  for (auto& [name, tensor] : adapter.state_dict()) {
    expected.insert(name);
    const auto found = weights.tensors.find(name);
    if (found == weights.tensors.end()) {
      fail_input("{}: missing tensor '{}' (shape [{}]) required by adapter_config.json",
                 weights_path, name, fmt::join(tensor.sizes(), ", "));
    }
    if (found->second.sizes() != tensor.sizes()) {
      fail_input(
          "{}: tensor '{}' has shape [{}] but this base model needs [{}] (wrong base model?)",
          weights_path, name, fmt::join(found->second.sizes(), ", "),
          fmt::join(tensor.sizes(), ", "));
    }
    tensor.copy_(found->second);
  }
  for (const auto& [name, tensor] : weights.tensors) {
    if (!expected.count(name)) {
      fail_input(
          "{}: unexpected tensor '{}' (does adapter_config.json match the weights, and "
          "was this adapter trained on a base model with {} layers?)",
          weights_path, name, base.config.num_layers);
    }
  }
  return adapter;
}

RouterLosses router_losses(const Adapter& adapter, const std::vector<moe::RouterRecord>& layers) {
  const auto& c = adapter.config;
  auto zero = at::zeros(
      {}, at::TensorOptions(at::kFloat)
              .device(layers.empty() ? c10::Device(c10::kCPU) : layers[0].logits.device()));
  RouterLosses losses{zero, zero};
  if (layers.empty() || !c.router_loss) return losses;
  losses.aux = moe::load_balancing_loss(layers) * c.router_aux_loss_coef;
  if (c.routing_strategy == config::RoutingStrategy::mixlora_switch) {
    losses.z = moe::router_z_loss(layers) * c.router_z_loss_coef;
  }
  return losses;
}

AdapterHooks::AdapterHooks(std::vector<AdapterSegment> segments, at::Tensor attention_mask,
                           bool training, moe::FfnPath path)
    : segments_(std::move(segments)),
      attention_mask_(std::move(attention_mask)),
      training_(training),
      path_(path),
      records_(segments_.size()),
      routings_(segments_.size()) {}

namespace {

// Runs `fn(segment, rows)` on each segment's rows and stacks the results back in order.
template <typename Fn>
at::Tensor per_segment(const std::vector<AdapterSegment>& segments, const at::Tensor& rows, Fn fn) {
  if (segments.size() == 1 && segments[0].row_begin == 0 && segments[0].row_count == rows.size(0)) {
    return fn(size_t{0}, rows);
  }
  std::vector<at::Tensor> parts;
  for (size_t s = 0; s < segments.size(); ++s) {
    parts.push_back(fn(s, rows.narrow(0, segments[s].row_begin, segments[s].row_count)));
  }
  return at::cat(parts, 0);
}

}  // namespace

at::Tensor AdapterHooks::adapt_projection(size_t s, int64_t layer, Projection p,
                                          const at::Tensor& x, const at::Tensor& base_output,
                                          const at::Tensor& weight, const at::Tensor& bias) {
  const auto& segment = segments_[s];
  const auto& adapter_layer = segment.adapter->layers[layer];
  if (auto plain = adapter_layer.projections.find(p); plain != adapter_layer.projections.end()) {
    return lora::apply_lora(plain->second, x, base_output, training_, weight, bias,
                            segment.generator);
  }
  auto mixture = adapter_layer.mixtures.find(p);
  if (mixture == adapter_layer.mixtures.end()) return base_output;
  const auto& config = segment.adapter->config;
  auto result = moe::apply_lora_mixture(mixture->second, x, base_output, config.mixture_top_k(),
                                        training_, segment.generator);
  if (keep_records_ && config.router_loss && result.chosen.defined()) {
    // MoLA's load-balancing loss: the Mixtral loss over every projection's tokens (padding out).
    moe::RouterRecord record;
    record.logits = result.logits;
    record.probs = result.probs;
    record.slot_experts = result.chosen;
    if (attention_mask_.defined()) {
      record.token_mask = attention_mask_.narrow(0, segment.row_begin, segment.row_count)
                              .reshape({-1})
                              .to(at::kBool);
    }
    records_[s].push_back(record);
  }
  return result.output;
}

at::Tensor AdapterHooks::attention_projection(int64_t layer, Projection projection,
                                              const at::Tensor& input, at::Tensor base_output,
                                              const at::Tensor& weight, const at::Tensor& bias) {
  // Inputs and outputs are split the same way; pair them through the segment index.
  return per_segment(segments_, base_output, [&](size_t s, const at::Tensor& base_rows) {
    if (!segments_[s].adapter) return base_rows;
    auto x = input.narrow(0, segments_[s].row_begin, segments_[s].row_count);
    return adapt_projection(s, layer, projection, x, base_rows, weight, bias);
  });
}

at::Tensor AdapterHooks::feed_forward(int64_t layer, const at::Tensor& input,
                                      const model::MlpWeights& mlp,
                                      const model::ModelConfig& config) {
  return per_segment(segments_, input, [&](size_t s, const at::Tensor& x) -> at::Tensor {
    const auto* adapter = segments_[s].adapter;
    if (!adapter) return model::dense_feed_forward(x, mlp, config.hidden_act);
    const auto& adapter_layer = adapter->layers[layer];
    if (adapter_layer.mixlora) {
      at::Tensor mask;
      if (attention_mask_.defined()) {
        mask = attention_mask_.narrow(0, segments_[s].row_begin, segments_[s].row_count);
      }
      auto result =
          moe::mixlora_ffn(x, mask, mlp, *adapter_layer.mixlora, adapter->config.moe_options(),
                           training_, path_, segments_[s].generator);
      if (keep_records_) records_[s].push_back(result.record);
      if (keep_routing_) routings_[s].push_back(result.routing);
      return result.output;
    }
    // Plain LoRA (LoRA adapters) or a LoRA mixture (LoRAMoE, MoLA) on each MLP projection.
    auto lora = [&](Projection p, const at::Tensor& in, const at::Tensor& weight) {
      return adapt_projection(s, layer, p, in, model::base_linear(in, weight), weight, {});
    };
    auto hidden =
        model::activation(lora(Projection::gate_proj, x, mlp.gate_proj), config.hidden_act) *
        lora(Projection::up_proj, x, mlp.up_proj);
    return lora(Projection::down_proj, hidden, mlp.down_proj);
  });
}

// Records past committed_[s] are the ones the layer just made (one per MixLoRA segment).
std::vector<at::Tensor> AdapterHooks::take_layer_outputs() {
  committed_.resize(segments_.size(), 0);
  taken_.clear();
  std::vector<at::Tensor> tensors;
  for (size_t s = 0; s < segments_.size(); ++s) {
    while (records_[s].size() > committed_[s]) {
      taken_.emplace_back(s, records_[s][committed_[s]]);
      records_[s].erase(records_[s].begin() + static_cast<std::ptrdiff_t>(committed_[s]));
      tensors.push_back(taken_.back().second.logits);
      tensors.push_back(taken_.back().second.probs);
    }
  }
  return tensors;
}

void AdapterHooks::restore_layer_outputs(const std::vector<at::Tensor>& tensors) {
  committed_.resize(segments_.size(), 0);
  for (size_t i = 0; i < taken_.size(); ++i) {
    auto [s, record] = taken_[i];
    record.logits = tensors.at(2 * i);
    record.probs = tensors.at(2 * i + 1);
    records_[s].push_back(record);
    committed_[s] = records_[s].size();
  }
  taken_.clear();
}

std::vector<at::Generator> AdapterHooks::generators() const {
  std::vector<at::Generator> out;
  for (const auto& s : segments_)
    if (s.generator) out.push_back(*s.generator);
  return out;
}

}  // namespace mixlora::adapters
