// The training configuration: MoE-PEFT's JSON format (SPEC section 4) plus our own keys.
// Field names follow the JSON keys; defaults are MoE-PEFT's.
#pragma once

#include "mixlora/config/task_names.h"
#include "mixlora/lora/lora_options.h"
#include "mixlora/model/activation.h"
#include "mixlora/moe/moe_options.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mixlora::config {

// lora: plain LoRA; mixlora: MixLoRA experts in the feed-forward block; loramoe / mola:
// MoE-PEFT's mixtures of LoRA experts on each targeted linear (moe/lora_mixture.h), LoRAMoE on
// the MLP projections (dense), MoLA on every targeted projection (top-k).
enum class PeftType { lora, mixlora, loramoe, mola };
using lora::LoraInit;
using lora::LoraShape;
using moe::RoutingStrategy;
enum class Optimizer { adamw, sgd };
enum class SchedulerType { constant, linear, cosine, constant_with_warmup };
enum class TrainStrategy { optim, none };

struct AdapterConfig {
  std::string name;
  // Stored canonical: "", "causal" and "casual" read as "casual" (kCausalTask, MoE-PEFT's
  // spelling); else "classification", an MC task id, "glue:<task>", or several joined by ';'.
  std::string task_name = "casual";
  std::vector<std::string> data;  // files; one per task of a multi-task adapter ("a;b" split)
  std::vector<std::string>
      eval_data;       // held-out files, same shape as data: scored every eval_every steps
  std::string prompt;  // template name ("moe_peft", "alpaca") or a JSON file
  bool train_on_inputs = true;
  std::vector<std::string> labels;  // classification label names, in order
  int64_t num_labels = 0;           // classification: labels.size() when labels given;
                                    // glue:<task>: that task's label count; else 0

  // optimisation
  Optimizer optim = Optimizer::adamw;
  double lr = 3e-4;
  double loraplus_lr_ratio = 1.0;  // MoE-PEFT: lr of lora_B (and 1-D params) = lr * ratio
  double momentum = 0.0;
  double weight_decay = 0.01;
  SchedulerType scheduler_type = SchedulerType::constant;
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  int64_t batch_size = 16;
  int64_t micro_batch_size = 8;  // parsing: batch_size when absent (as MoE-PEFT)
  int64_t num_epochs = 2;
  bool group_by_length = false;
  int64_t evaluate_batch_size = 16;

  // LoRA
  LoraShape lora;  // r, lora_alpha, lora_dropout
  // Targeted projections among q_proj k_proj v_proj o_proj gate_proj up_proj down_proj.
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
  bool use_rslora = false;
  bool use_dora = false;
  LoraInit lora_init = LoraInit::original;

  // MixLoRA (peft_type == mixlora); LoRAMoE and MoLA use num_experts, top_k (MoLA),
  // router_init_range (default 5) and the router loss keys (MoLA, off by default).
  PeftType peft_type = PeftType::lora;  // mixlora when routing_strategy or num_experts is given
  RoutingStrategy routing_strategy = RoutingStrategy::mixlora;
  int64_t num_experts = 8;
  int64_t top_k = 2;
  double top_p = 0.8;
  double temperature = 0.0;
  double router_aux_loss_coef = 0.001;
  double router_z_loss_coef = 0.001;
  bool router_loss = true;
  double router_init_range = 0.02;  // switch default 1.0
  double jitter_noise = 0.0;        // switch default 0.01
  int64_t expert_capacity = 32;
  std::optional<double> capacity_factor;  // ours: capacity = ceil(f * tokens_per_seq / E)
  double ffn_dropout = 0.0;
  model::Activation act_fn = model::Activation::silu;
  // False when the file leaves act_fn out (or null): like MoE-PEFT and the plugin, the experts then
  // use the base FFN's own activation, which Adapter::create puts into act_fn (Gemma:
  // gelu_pytorch_tanh).
  bool act_fn_given = false;
  std::optional<LoraShape> expert_lora;  // overrides `lora` for the experts

  // ours: an adapter directory whose weights training starts from instead of a fresh init
  // (adapters/adapter_init.h); --init-adapter sets it from the command line.
  std::string init_adapter;

  // Projections of the MLP that carry expert LoRAs, and of attention that carry plain LoRAs.
  bool targets(const std::string& module) const;
  // LoRAMoE or MoLA: routers on the targeted projections instead of the feed-forward block.
  bool is_lora_mixture() const {
    return peft_type == PeftType::loramoe || peft_type == PeftType::mola;
  }
  // LoRAMoE / MoLA: the targeted projection carries a mixture of LoRA experts (not one LoRA).
  bool mixes(const std::string& module) const;
  // MoLA's k; 0 for LoRAMoE's dense mixture.
  int64_t mixture_top_k() const { return peft_type == PeftType::mola ? top_k : 0; }
  const LoraShape& expert_shape() const { return expert_lora ? *expert_lora : lora; }
  // The routing knobs the MoE kernel takes.
  moe::MoeOptions moe_options() const;
  // The task ids of task_name, one per data file for a multi-task adapter.
  std::vector<std::string> tasks() const { return split_tasks(task_name); }
};

struct TrainConfig {
  int64_t cutoff_len = 256;  // -1 (MoE-PEFT): the base model's max positions
  int64_t save_step = 2000;
  int64_t train_lora_candidate_num = 2;  // MoE-PEFT scheduler key; accepted, informational
  int64_t train_lora_simultaneously_num = 2;
  TrainStrategy train_strategy = TrainStrategy::optim;
  std::vector<AdapterConfig> adapters;  // "lora" (or "adapters")

  // our keys
  std::string base_model;
  std::string output_dir = "output";
  uint64_t seed = 42;
  std::string dtype = "fp32";
  bool gradient_checkpointing = false;
  double max_grad_norm = 0.0;  // 0 = no clipping
  int64_t log_every = 10;
  int64_t eval_every = 0;  // 0 = never during training
  int64_t max_nonfinite_steps =
      10;  // stop after this many skipped non-finite steps in a row; 0 = never
  // Router telemetry and its alarms (docs/telemetry.md).
  bool router_telemetry = true;                  // per-layer "router" records in metrics.jsonl
  double router_alarm_dead_share_factor = 0.25;  // dead expert: share < factor / num_experts ...
  int64_t router_alarm_dead_steps = 3;           // ... for this many logged steps in a row
  double router_alarm_collapse_share =
      0.5;  // collapse: one expert holds more of the router probability
  double router_alarm_entropy_ratio = 0.1;  // entropy below this fraction of log(num_experts)
  double router_alarm_drop_rate = 0.1;      // switch: more tokens over capacity than this
};

// The projection names target_modules accepts, in the order we store them.
const std::vector<std::string>& known_target_modules();

// Parses and validates. `source` (the file name) prefixes every message, which names the JSON
// path: `cfg.json: lora[0].top_k: must be in 1..num_experts (8), got 9`. Unknown keys are errors
// with a "did you mean" suggestion. Throws InputError.
TrainConfig parse_train_config(const nlohmann::json& json, const std::string& source);

// Reads, applies `overrides` ("lora[0].lr=1e-4", values parsed as JSON when they parse, else as
// strings), then parses.
TrainConfig load_train_config(const std::string& path,
                              const std::vector<std::string>& overrides = {});

// The sequence length to cut samples to: cutoff_len, or the model's max_position_embeddings for
// MoE-PEFT's -1. More than the model allows is an InputError naming `source` rather than a silent
// clamp (positions past the model's context were never trained).
int64_t resolve_cutoff_len(const TrainConfig& config, const std::string& source,
                           int64_t max_positions);

// What training needs beyond a valid config and the reference configs leave to the command line:
// a base model and each adapter's data. InputError naming the key and the flag that sets it.
void require_training_inputs(const TrainConfig& config, const std::string& source);

// Applies mixlora-train's --init-adapter values: "NAME=DIR" sets adapter NAME's init_adapter,
// a plain "DIR" that of the only adapter. InputError for an unknown NAME or a plain DIR with
// several adapters.
void apply_init_adapters(TrainConfig& config, const std::vector<std::string>& values);

// Applies one PATH=VALUE override to a JSON document (creating missing object keys).
void apply_override(nlohmann::json& json, const std::string& assignment);

// An adapter config on its own, as stored in adapter_config.json (SPEC section 7): unknown keys
// are ignored there (PEFT writes many), missing ones take the defaults.
AdapterConfig parse_adapter_config_file(const nlohmann::json& json, const std::string& source);
nlohmann::json adapter_config_to_json(const AdapterConfig& adapter, const std::string& base_model);

const char* routing_strategy_name(RoutingStrategy strategy);
// "LORA", "MIXLORA", "LORAMOE", "MOLA" (MoE-PEFT's peft_type spellings).
const char* peft_type_name(PeftType type);
// The JSON spellings of the enum-typed keys.
const char* optimizer_name(Optimizer optimizer);
const char* scheduler_type_name(SchedulerType type);
const char* train_strategy_name(TrainStrategy strategy);
const char* lora_init_name(LoraInit init);

}  // namespace mixlora::config
