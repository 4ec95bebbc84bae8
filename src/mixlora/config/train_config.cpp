#include "mixlora/config/train_config.h"

#include "mixlora/common/error.h"
#include "mixlora/config/adapter_fields.h"
#include "mixlora/config/json_object_reader.h"
#include "mixlora/io/json_file.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

namespace mixlora::config {

namespace {

// Keys MoE-PEFT reads (moe_peft/__main__.py, trainer.py, evaluator.py, common/config.py,
// adapters/mixlora/config.py) or writes in its templates, plus ours (SPEC section 4).
const std::vector<std::string> kTopLevelKeys = {
    "cutoff_len", "save_step", "train_lora_candidate_num", "train_lora_simultaneously_num",
    "train_strategy", "lora", "adapters",
    // MoE-PEFT's inference / evaluation modes: accepted, unused by training.
    "inference_lora_simultaneously_num", "eval_lora_simultaneously_num",
    "eval_rollback_retrying_steps", "evaluate_result",
    // ours
    "base_model", "output_dir", "seed", "dtype", "gradient_checkpointing", "max_grad_norm",
    "log_every", "eval_every", "max_nonfinite_steps", "router_telemetry",
    "router_alarm_dead_share_factor", "router_alarm_dead_steps", "router_alarm_collapse_share",
    "router_alarm_entropy_ratio", "router_alarm_drop_rate"};

const std::vector<std::string> kIgnoredTopLevelKeys = {
    "inference_lora_simultaneously_num", "eval_lora_simultaneously_num",
    "eval_rollback_retrying_steps", "evaluate_result"};

const std::vector<std::string> kAdapterKeys = {
    // task and data
    "name", "task_name", "data", "eval_data", "prompt", "train_on_inputs", "labels", "num_labels",
    // optimisation
    "optim", "lr", "loraplus_lr_ratio", "momentum", "weight_decay", "scheduler_type",
    "warmup_steps", "warmup_ratio", "batch_size", "micro_batch_size", "num_epochs",
    "group_by_length", "evaluate_batch_size", "evaluate_steps",
    // LoRA
    "peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora",
    "lora_init",
    // MixLoRA
    "routing_strategy", "num_experts", "top_k", "top_p", "temperature", "router_aux_loss_coef",
    "router_z_loss_coef", "router_loss", "router_init_range", "jitter_noise", "expert_capacity",
    "capacity_factor", "ffn_dropout", "act_fn", "expert_lora",
    // ours
    "init_adapter",
    // MoE-PEFT keys without an effect here (see kIgnoredAdapterKeys)
    "sparse_step", "router_dyn_loss_coef", "entropy_index", "entropy_type", "entropy_eps"};

// Accepted so MoE-PEFT configs run unchanged; what they do there is not implemented here.
const std::vector<std::pair<std::string, std::string>> kIgnoredAdapterKeys = {
    {"evaluate_steps", "on-the-fly evaluation; use the top-level eval_every"},
    {"sparse_step", "MoE-PEFT's switch sparse_step"},
    {"router_dyn_loss_coef", "an older MoE-PEFT dynamic-routing loss"},
    {"entropy_index", "an older MoE-PEFT dynamic-routing loss"},
    {"entropy_type", "an older MoE-PEFT dynamic-routing loss"},
    {"entropy_eps", "an older MoE-PEFT dynamic-routing loss"}};

// Names other trainers use for our keys.
const std::vector<std::pair<std::string, std::string>> kKeyHints = {
    {"learning_rate", "lr"},
    {"rank", "r"},
    {"lora_r", "r"},
    {"alpha", "lora_alpha"},
    {"dropout", "lora_dropout"},
    {"epochs", "num_epochs"},
    {"num_train_epochs", "num_epochs"},
    {"optimizer", "optim"},
    {"lr_scheduler_type", "scheduler_type"},
    {"lr_scheduler", "scheduler_type"},
    {"experts", "num_experts"},
    {"data_path", "data"},
    {"prompt_template", "prompt"},
    {"adapter_name", "name"},
    {"max_seq_len", "cutoff_len"},
    {"model", "base_model"},
    {"base_model_name_or_path", "base_model"}};

void require(bool ok, const JsonObjectReader& in, const char* key, std::string_view what,
             std::string_view fallback = "nothing") {
  if (!ok) in.fail(key, what, fallback);
}

bool is_safe_file_name(const std::string& name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

// `key` is "data" or "eval_data": a file name, "a;b" (MoE-PEFT's multi-task form) or a list.
std::vector<std::string> read_data(const JsonObjectReader& in, const char* key) {
  const auto* value = in.find(key);
  if (!value) return {};
  std::vector<std::string> files;
  if (value->is_string()) {
    // MoE-PEFT joins the files of a multi-task adapter with ';' in one string.
    files = split_tasks(value->get<std::string>());
    for (auto& file : files) {
      if (file.empty()) in.fail(key, "has an empty file name");
    }
    return files;
  }
  if (!value->is_array() || value->empty()) {
    fail_input("{}: {}: expected a file name or a non-empty list of file names, got {}",
               in.source(), in.path_of(key), io::describe(*value));
  }
  for (size_t i = 0; i < value->size(); ++i) {
    const auto& item = (*value)[i];
    if (!item.is_string() || item.get<std::string>().empty()) {
      fail_input("{}: {}: expected a file name, got {}", in.source(),
                 in.path_of(fmt::format("{}[{}]", key, i)), io::describe(item));
    }
    files.push_back(item.get<std::string>());
  }
  return files;
}

void read_optimisation(const JsonObjectReader& in, AdapterConfig& a) {
  if (auto v = read_enum(in, "optim", {Optimizer::adamw, Optimizer::sgd}, optimizer_name))
    a.optim = *v;
  if (auto v = in.get_number("lr")) {
    require(*v > 0.0, in, "lr", "must be > 0");
    a.lr = *v;
  }
  if (auto v = in.get_number("loraplus_lr_ratio")) {
    require(*v >= 1.0, in, "loraplus_lr_ratio", "must be >= 1 (lr of lora_B / lr of lora_A)");
    a.loraplus_lr_ratio = *v;  // LoRA+: applied by AdapterRun through loraplus_lr_scales
  }
  if (auto v = in.get_number("momentum")) {
    require(*v >= 0.0, in, "momentum", "must be >= 0");
    a.momentum = *v;
  }
  if (auto v = in.get_number("weight_decay")) {
    require(*v >= 0.0, in, "weight_decay", "must be >= 0");
    a.weight_decay = *v;
  }
  if (auto v = read_enum(in, "scheduler_type",
                         {SchedulerType::constant, SchedulerType::linear, SchedulerType::cosine,
                          SchedulerType::constant_with_warmup},
                         scheduler_type_name)) {
    a.scheduler_type = *v;
  }
  if (auto v = in.get_int("warmup_steps")) {
    require(*v >= 0, in, "warmup_steps", "must be >= 0");
    a.warmup_steps = *v;
  }
  if (auto v = in.get_number("warmup_ratio")) {
    require(*v >= 0.0 && *v < 1.0, in, "warmup_ratio", "must be in [0, 1)");
    a.warmup_ratio = *v;
  }
  if (auto v = in.get_int("batch_size")) {
    require(*v >= 1, in, "batch_size", "must be >= 1");
    a.batch_size = *v;
  }
  // MoE-PEFT: micro_batch_size defaults to batch_size (no gradient accumulation).
  a.micro_batch_size = a.batch_size;
  if (auto v = in.get_int("micro_batch_size")) {
    require(*v >= 1, in, "micro_batch_size", "must be >= 1");
    a.micro_batch_size = *v;
  }
  if (a.batch_size % a.micro_batch_size != 0) {
    in.fail("batch_size",
            fmt::format("must be a multiple of micro_batch_size ({})", a.micro_batch_size),
            fmt::format("{} (the default)", a.batch_size));
  }
  if (auto v = in.get_int("num_epochs")) {
    require(*v >= 1, in, "num_epochs", "must be >= 1");
    a.num_epochs = *v;
  }
  if (auto v = in.get_bool("group_by_length")) a.group_by_length = *v;
  if (auto v = in.get_int("evaluate_batch_size")) {
    require(*v >= 1, in, "evaluate_batch_size", "must be >= 1");
    a.evaluate_batch_size = *v;
  }
  if (auto v = in.get_int("evaluate_steps")) require(*v >= 1, in, "evaluate_steps", "must be >= 1");
}

AdapterConfig parse_adapter(const JsonObjectReader& in) {
  in.reject_unknown_keys(kAdapterKeys, kKeyHints);
  AdapterConfig a;
  const auto name = in.get_string("name");
  if (!name) in.fail("name", "is required (the adapter's output directory name)");
  if (!is_safe_file_name(*name)) {
    in.fail("name",
            "must be a file name of letters, digits, '-', '_' and '.', not starting "
            "with '.' (at most 128 characters)");
  }
  a.name = *name;

  read_task_fields(in, a);
  a.data = read_data(in, "data");
  a.eval_data = read_data(in, "eval_data");
  const size_t task_count = a.tasks().size();
  for (const auto* key : {"data", "eval_data"}) {
    const auto& files = std::string(key) == "data" ? a.data : a.eval_data;
    if (!files.empty() && files.size() != task_count) {
      in.fail(key, fmt::format("needs one file per task of task_name \"{}\" ({})", a.task_name,
                               task_count));
    }
  }
  if (auto v = in.get_string("prompt")) a.prompt = *v;
  if (auto v = in.get_bool("train_on_inputs")) a.train_on_inputs = *v;
  if (auto v = in.get_string("init_adapter")) {
    if (v->empty()) in.fail("init_adapter", "must name an adapter directory");
    a.init_adapter = *v;
  }

  read_optimisation(in, a);
  read_lora_fields(in, a, KeySource::train_config);
  read_mixlora_fields(in, a, KeySource::train_config);

  for (const auto& [key, what] : kIgnoredAdapterKeys) {
    if (in.has(key)) {
      spdlog::warn("{}: {}: accepted for MoE-PEFT compatibility but ignored ({})", in.source(),
                   in.path_of(key), what);
    }
  }
  return a;
}

// Router telemetry switch and alarm thresholds (docs/telemetry.md).
void read_router_alarms(const JsonObjectReader& in, TrainConfig& c) {
  if (auto v = in.get_bool("router_telemetry")) c.router_telemetry = *v;
  if (auto v = in.get_number("router_alarm_dead_share_factor")) {
    require(*v >= 0.0 && *v <= 1.0, in, "router_alarm_dead_share_factor",
            "must be in [0, 1] (a fraction of the uniform share 1/num_experts; 0 = off)");
    c.router_alarm_dead_share_factor = *v;
  }
  if (auto v = in.get_int("router_alarm_dead_steps")) {
    require(*v >= 1, in, "router_alarm_dead_steps", "must be >= 1 (logged steps in a row)");
    c.router_alarm_dead_steps = *v;
  }
  if (auto v = in.get_number("router_alarm_collapse_share")) {
    require(*v > 0.0 && *v <= 1.0, in, "router_alarm_collapse_share",
            "must be in (0, 1] (1 = off)");
    c.router_alarm_collapse_share = *v;
  }
  if (auto v = in.get_number("router_alarm_entropy_ratio")) {
    require(*v >= 0.0 && *v <= 1.0, in, "router_alarm_entropy_ratio",
            "must be in [0, 1] (a fraction of log(num_experts); 0 = off)");
    c.router_alarm_entropy_ratio = *v;
  }
  if (auto v = in.get_number("router_alarm_drop_rate")) {
    require(*v >= 0.0 && *v <= 1.0, in, "router_alarm_drop_rate", "must be in [0, 1] (1 = off)");
    c.router_alarm_drop_rate = *v;
  }
}

void read_top_level(const JsonObjectReader& in, TrainConfig& c) {
  if (auto v = in.get_int("cutoff_len")) {
    require(*v == -1 || *v >= 2, in, "cutoff_len", "must be >= 2 (or -1: the model's maximum)");
    c.cutoff_len = *v;
  }
  if (auto v = in.get_int("save_step")) {
    require(*v >= 1, in, "save_step", "must be >= 1");
    c.save_step = *v;
  }
  if (auto v = in.get_int("train_lora_candidate_num")) {
    require(*v >= 1, in, "train_lora_candidate_num", "must be >= 1");
    c.train_lora_candidate_num = *v;
  }
  if (auto v = in.get_int("train_lora_simultaneously_num")) {
    require(*v >= 1, in, "train_lora_simultaneously_num", "must be >= 1");
    c.train_lora_simultaneously_num = *v;
  }
  if (auto v = read_enum(in, "train_strategy", {TrainStrategy::optim, TrainStrategy::none},
                         train_strategy_name)) {
    c.train_strategy = *v;
  }

  if (auto v = in.get_string("base_model")) c.base_model = *v;
  if (auto v = in.get_string("output_dir")) {
    require(!v->empty(), in, "output_dir", "must not be empty");
    c.output_dir = *v;
  }
  if (auto v = in.get_int("seed")) {
    require(*v >= 0, in, "seed", "must be >= 0");
    c.seed = static_cast<uint64_t>(*v);
  }
  if (auto v = read_choice(in, "dtype", {"fp32", "bf16", "fp16"})) c.dtype = *v;
  if (auto v = in.get_bool("gradient_checkpointing")) c.gradient_checkpointing = *v;
  if (auto v = in.get_int("max_nonfinite_steps")) {
    require(*v >= 0, in, "max_nonfinite_steps", "must be >= 0 (0 = never stop)");
    c.max_nonfinite_steps = *v;
  }
  if (auto v = in.get_number("max_grad_norm")) {
    require(*v >= 0.0, in, "max_grad_norm", "must be >= 0 (0 = no clipping)");
    c.max_grad_norm = *v;
  }
  if (auto v = in.get_int("log_every")) {
    require(*v >= 1, in, "log_every", "must be >= 1");
    c.log_every = *v;
  }
  if (auto v = in.get_int("eval_every")) {
    require(*v >= 0, in, "eval_every", "must be >= 0 (0 = never)");
    c.eval_every = *v;
  }
  read_router_alarms(in, c);
  for (const auto& key : kIgnoredTopLevelKeys) {
    if (in.has(key)) {
      spdlog::warn(
          "{}: {}: accepted for MoE-PEFT compatibility but ignored (it configures "
          "MoE-PEFT's inference/evaluation modes)",
          in.source(), key);
    }
  }
}

}  // namespace

bool AdapterConfig::targets(const std::string& module) const {
  return std::find(target_modules.begin(), target_modules.end(), module) != target_modules.end();
}

bool AdapterConfig::mixes(const std::string& module) const {
  if (!targets(module)) return false;
  if (peft_type == PeftType::mola) return true;
  return peft_type == PeftType::loramoe &&
         (module == "gate_proj" || module == "up_proj" || module == "down_proj");
}

moe::MoeOptions AdapterConfig::moe_options() const {
  moe::MoeOptions o;
  o.routing_strategy = routing_strategy;
  o.num_experts = num_experts;
  o.top_k = top_k;
  o.top_p = top_p;
  o.temperature = temperature;
  o.jitter_noise = jitter_noise;
  o.expert_capacity = expert_capacity;
  o.capacity_factor = capacity_factor;
  o.ffn_dropout = ffn_dropout;
  o.act_fn = act_fn;
  o.router_loss = router_loss;
  o.router_aux_loss_coef = router_aux_loss_coef;
  o.router_z_loss_coef = router_z_loss_coef;
  return o;
}

const char* optimizer_name(Optimizer optimizer) {
  return optimizer == Optimizer::sgd ? "sgd" : "adamw";
}

const char* scheduler_type_name(SchedulerType type) {
  switch (type) {
    case SchedulerType::constant: return "constant";
    case SchedulerType::linear: return "linear";
    case SchedulerType::cosine: return "cosine";
    case SchedulerType::constant_with_warmup: return "constant_with_warmup";
  }
  return "constant";
}

const char* train_strategy_name(TrainStrategy strategy) {
  return strategy == TrainStrategy::none ? "none" : "optim";
}

const char* lora_init_name(LoraInit init) {
  return init == LoraInit::gaussian ? "gaussian" : "original";
}

const char* routing_strategy_name(RoutingStrategy strategy) { return moe::strategy_name(strategy); }

const char* peft_type_name(PeftType type) {
  switch (type) {
    case PeftType::mixlora: return "MIXLORA";
    case PeftType::loramoe: return "LORAMOE";
    case PeftType::mola: return "MOLA";
    case PeftType::lora: break;
  }
  return "LORA";
}

TrainConfig parse_train_config(const nlohmann::json& json, const std::string& source) {
  const JsonObjectReader in(json, source, "");
  in.reject_unknown_keys(kTopLevelKeys, kKeyHints);
  TrainConfig config;
  read_top_level(in, config);

  if (in.has("lora") && in.has("adapters")) {
    in.fail_plain("adapters", "give the adapter list as \"lora\" or as \"adapters\", not both");
  }
  const std::string list_key = in.has("adapters") ? "adapters" : "lora";
  const auto* list = in.find(list_key);
  if (!list) in.fail("lora", "is required: the list of adapters to train");
  if (!list->is_array() || list->empty()) {
    fail_input("{}: {}: expected a non-empty list of adapter objects, got {}", source, list_key,
               io::describe(*list));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < list->size(); ++i) {
    const JsonObjectReader adapter_in((*list)[i], source, fmt::format("{}[{}]", list_key, i));
    auto adapter = parse_adapter(adapter_in);
    if (!names.insert(adapter.name).second) {
      adapter_in.fail("name", "must be unique: another adapter has this name");
    }
    config.adapters.push_back(std::move(adapter));
  }
  return config;
}

void apply_init_adapters(TrainConfig& config, const std::vector<std::string>& values) {
  for (const auto& value : values) {
    const auto eq = value.find('=');
    AdapterConfig* named = nullptr;
    if (eq != std::string::npos) {
      for (auto& a : config.adapters)
        if (a.name == value.substr(0, eq)) named = &a;
    }
    if (named) {
      if (eq + 1 == value.size()) fail_input("--init-adapter {}: no directory after '='", value);
      named->init_adapter = value.substr(eq + 1);
    } else if (config.adapters.size() == 1) {
      config.adapters[0].init_adapter = value;
    } else {
      std::vector<std::string> names;
      for (const auto& a : config.adapters) names.push_back(a.name);
      fail_input(
          "--init-adapter {}: the config has {} adapters ({}); say which: --init-adapter NAME=DIR",
          value, config.adapters.size(), fmt::join(names, ", "));
    }
  }
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  auto json = io::read_json_file(path);
  for (const auto& assignment : overrides) apply_override(json, assignment);
  return parse_train_config(json, path);
}

int64_t resolve_cutoff_len(const TrainConfig& config, const std::string& source,
                           int64_t max_positions) {
  if (config.cutoff_len < 0) return max_positions;
  if (config.cutoff_len > max_positions) {
    fail_input(
        "{}: cutoff_len: {} is more than the base model's max_position_embeddings ({}); use at "
        "most {}, "
        "or -1 for the model's maximum",
        source, config.cutoff_len, max_positions, max_positions);
  }
  return config.cutoff_len;
}

void require_training_inputs(const TrainConfig& config, const std::string& source) {
  if (config.base_model.empty()) {
    fail_input("{}: base_model: missing; give it in the config or with --base-model DIR", source);
  }
  for (size_t i = 0; i < config.adapters.size(); ++i) {
    const auto& adapter = config.adapters[i];
    if (adapter.data.empty()) {
      fail_input(
          "{}: lora[{}].data: missing for adapter '{}'; give it in the config or with "
          "--set lora[{}].data=FILE",
          source, i, adapter.name, i);
    }
  }
}

}  // namespace mixlora::config
