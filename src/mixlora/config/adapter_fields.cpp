#include "mixlora/config/adapter_fields.h"

#include "mixlora/common/error.h"
#include "mixlora/config/did_you_mean.h"
#include "mixlora/io/json_file.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

namespace mixlora::config {

namespace {

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::string upper(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// `[lo, hi)` style checks read better at the call site as one line each.
void require(bool ok, const JsonObjectReader& in, const char* key, std::string_view what,
             std::string_view fallback = "nothing") {
  if (!ok) in.fail(key, what, fallback);
}

std::vector<std::string> read_target_list(const JsonObjectReader& in, const nlohmann::json& list) {
  std::vector<std::string> chosen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string key = fmt::format("target_modules[{}]", i);
    if (!list[i].is_string()) {
      fail_input("{}: {}: expected a module name, got {}", in.source(), in.path_of(key),
                 io::describe(list[i]));
    }
    chosen.push_back(list[i].get<std::string>());
  }
  return chosen;
}

std::vector<std::string> read_target_object(const JsonObjectReader& in,
                                            const nlohmann::json& object) {
  std::vector<std::string> chosen;
  for (const auto& item : object.items()) {
    const std::string key = "target_modules." + item.key();
    if (!item.value().is_boolean()) {
      fail_input("{}: {}: expected true or false, got {}", in.source(), in.path_of(key),
                 io::describe(item.value()));
    }
    if (!contains(known_target_modules(), item.key())) {
      fail_input("{}: {}: unknown module \"{}\"{} (known: {})", in.source(), in.path_of(key),
                 item.key(), did_you_mean(item.key(), known_target_modules()),
                 fmt::join(known_target_modules(), ", "));
    }
    if (item.value().get<bool>()) chosen.push_back(item.key());
  }
  return chosen;
}

void read_target_modules(const JsonObjectReader& in, AdapterConfig& adapter, KeySource source) {
  const auto* value = in.find("target_modules");
  if (!value) return;
  const auto& known = known_target_modules();
  std::vector<std::string> chosen;
  if (value->is_array()) {
    chosen = read_target_list(in, *value);
    for (size_t i = 0; i < chosen.size(); ++i) {
      if (contains(known, chosen[i])) continue;
      fail_input("{}: {}: unknown module \"{}\"{} (known: {})", in.source(),
                 in.path_of(fmt::format("target_modules[{}]", i)), chosen[i],
                 did_you_mean(chosen[i], known), fmt::join(known, ", "));
    }
  } else if (value->is_object()) {
    chosen = read_target_object(in, *value);
  } else if (value->is_string() && source == KeySource::adapter_file) {
    // PEFT writes a single name, "all-linear" or a regex; regexes we cannot match reliably.
    const auto name = value->get<std::string>();
    if (name == "all-linear") {
      // The separate projections of a LLaMA-style block (not Phi-3's fused ones).
      for (const auto& m : known)
        if (m != "qkv_proj" && m != "gate_up_proj") chosen.push_back(m);
    } else if (contains(known, name)) {
      chosen = {name};
    } else {
      in.fail("target_modules", fmt::format("must be a list of module names ({}) or \"all-linear\"",
                                            fmt::join(known, ", ")));
    }
  } else {
    fail_input("{}: {}: expected a list of module names or an object {{name: true|false}}, got {}",
               in.source(), in.path_of("target_modules"), io::describe(*value));
  }
  std::vector<std::string> ordered;
  for (const auto& name : known) {
    if (contains(chosen, name)) ordered.push_back(name);
  }
  require(!ordered.empty(), in, "target_modules",
          fmt::format("must select at least one of {}", fmt::join(known, ", ")));
  adapter.target_modules = ordered;
}

// r / lora_alpha / lora_dropout of `in` on top of `shape`.
void read_lora_shape(const JsonObjectReader& in, LoraShape& shape) {
  if (auto r = in.get_int("r")) {
    require(*r >= 1, in, "r", "must be >= 1");
    shape.r = *r;
  }
  if (auto alpha = in.get_number("lora_alpha")) {
    require(*alpha > 0.0, in, "lora_alpha", "must be > 0");
    shape.lora_alpha = *alpha;
  }
  if (auto dropout = in.get_number("lora_dropout")) {
    require(*dropout >= 0.0 && *dropout < 1.0, in, "lora_dropout", "must be in [0, 1)");
    shape.lora_dropout = *dropout;
  }
}

// Values that the MixLoRA plugin and MoE-PEFT assert on (LoraConfig.check: lora_alpha must be an
// int; their LoRA layers: lora_dropout > 0). We accept them, but say so while the config is read.
void warn_python_traps(const JsonObjectReader& in) {
  if (const auto* alpha = in.find("lora_alpha");
      alpha && alpha->is_number() && !alpha->is_number_integer()) {
    const double value = alpha->get<double>();
    if (value != std::floor(value)) {
      spdlog::warn(
          "{}: {}: {} is not an integer: the adapter trains here, but the MixLoRA plugin and "
          "MoE-PEFT refuse it (they assert an int lora_alpha)",
          in.source(), in.path_of("lora_alpha"), value);
    }
  }
  if (const auto* dropout = in.find("lora_dropout");
      dropout && dropout->is_number() && dropout->get<double>() == 0.0) {
    spdlog::warn(
        "{}: {}: 0: the adapter trains here, but the MixLoRA plugin and MoE-PEFT refuse it (their "
        "LoRA layers assert lora_dropout > 0); use e.g. 0.05 to load it there",
        in.source(), in.path_of("lora_dropout"));
  }
}

void read_expert_lora(const JsonObjectReader& in, AdapterConfig& adapter, KeySource source) {
  const auto* value = in.find("expert_lora");
  if (!value) return;
  const JsonObjectReader expert(*value, in.source(), in.path_of("expert_lora"));
  if (source == KeySource::train_config) {
    expert.reject_unknown_keys({"r", "lora_alpha", "lora_dropout", "bias"});
    warn_python_traps(expert);
  }
  // MoE-PEFT merges expert_lora over the adapter's keys: what it leaves out is inherited.
  LoraShape shape = adapter.lora;
  read_lora_shape(expert, shape);
  if (auto bias = expert.get_string("bias"); bias && *bias != "none") {
    expert.fail("bias", "only \"none\" is supported");
  }
  adapter.expert_lora = shape;
}

void read_classification_labels(const JsonObjectReader& in, AdapterConfig& adapter) {
  const auto* labels = in.find("labels");
  if (!labels) return;
  if (!labels->is_array()) {
    fail_input("{}: {}: expected a list of label names, got {}", in.source(), in.path_of("labels"),
               io::describe(*labels));
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < labels->size(); ++i) {
    const auto& label = (*labels)[i];
    const std::string key = fmt::format("labels[{}]", i);
    if (!label.is_string() || label.get<std::string>().empty()) {
      fail_input("{}: {}: expected a non-empty label name, got {}", in.source(), in.path_of(key),
                 io::describe(label));
    }
    if (!seen.insert(label.get<std::string>()).second) {
      fail_input("{}: {}: duplicate label, got {}", in.source(), in.path_of(key), written(label));
    }
    adapter.labels.push_back(label.get<std::string>());
  }
  require(adapter.labels.size() >= 2, in, "labels", "must name at least 2 labels");
}

}  // namespace

const std::vector<std::string>& known_target_modules() {
  // The last two are Phi-3's fused projections (PEFT's and MoE-PEFT's names there).
  static const std::vector<std::string> names = {"q_proj",    "k_proj",    "v_proj",
                                                 "o_proj",    "gate_proj", "up_proj",
                                                 "down_proj", "qkv_proj",  "gate_up_proj"};
  return names;
}

const std::vector<std::string>& mixlora_keys() {
  static const std::vector<std::string> keys = {"routing_strategy",
                                                "num_experts",
                                                "top_k",
                                                "top_p",
                                                "temperature",
                                                "router_aux_loss_coef",
                                                "router_z_loss_coef",
                                                "router_loss",
                                                "router_init_range",
                                                "jitter_noise",
                                                "expert_capacity",
                                                "capacity_factor",
                                                "ffn_dropout",
                                                "act_fn",
                                                "expert_lora"};
  return keys;
}

std::optional<std::string> read_choice(const JsonObjectReader& in, const std::string& key,
                                       const std::vector<std::string>& allowed) {
  auto value = in.get_string(key);
  if (!value || contains(allowed, *value)) return value;
  in.fail_plain(key, fmt::format("must be one of {}, got \"{}\"{}", fmt::join(allowed, ", "),
                                 *value, did_you_mean(*value, allowed)));
}

void read_task_fields(const JsonObjectReader& in, AdapterConfig& adapter) {
  if (auto task_name = in.get_string("task_name")) {
    const auto ids = split_tasks(*task_name);
    std::vector<std::string> canonical;
    int classification_tasks = 0;
    for (const auto& id : ids) {
      if (ids.size() > 1 && id.empty()) {
        in.fail("task_name", "has an empty task id between ';' separators");
      }
      const auto kind = task_kind(id);
      if (!kind) {
        const auto known = known_task_ids();
        in.fail_plain("task_name",
                      fmt::format("unknown task \"{}\"{} (known: {}; or several joined "
                                  "by ';')",
                                  id, did_you_mean(id, known), fmt::join(known, ", ")));
      }
      if (*kind == TaskKind::classification) ++classification_tasks;
      canonical.push_back(canonical_task(id));
    }
    // One adapter has one classification head.
    require(classification_tasks <= 1, in, "task_name",
            "may hold at most one classification task (one head per adapter)");
    adapter.task_name = fmt::format("{}", fmt::join(canonical, ";"));
  }

  read_classification_labels(in, adapter);
  if (auto num_labels = in.get_int("num_labels")) {
    require(*num_labels >= 2, in, "num_labels", "must be >= 2");
    adapter.num_labels = *num_labels;
  }

  std::optional<std::string> classification_task;
  for (const auto& id : adapter.tasks()) {
    if (task_kind(id) == TaskKind::classification) classification_task = id;
  }
  if (!classification_task) {
    if (in.has("labels") || in.has("num_labels")) {
      in.fail(in.has("labels") ? "labels" : "num_labels",
              fmt::format("only classification tasks have labels (task_name \"{}\")",
                          adapter.task_name));
    }
    return;
  }
  const auto labels_count = static_cast<int64_t>(adapter.labels.size());
  if (!adapter.labels.empty() && in.has("num_labels") && adapter.num_labels != labels_count) {
    in.fail("num_labels", fmt::format("must equal the number of labels ({})", labels_count));
  }
  if (!adapter.labels.empty()) adapter.num_labels = labels_count;
  if (auto glue = glue_num_labels(*classification_task)) {
    if (adapter.num_labels != 0 && adapter.num_labels != *glue) {
      in.fail(in.has("labels") ? "labels" : "num_labels",
              fmt::format("{} has {} labels", *classification_task, *glue),
              std::to_string(adapter.num_labels));
    }
    adapter.num_labels = *glue;
  }
  require(adapter.num_labels >= 2, in, "labels",
          "task \"classification\" needs \"labels\" (names, in order) or \"num_labels\" >= 2",
          "neither");
}

void read_lora_fields(const JsonObjectReader& in, AdapterConfig& adapter, KeySource source) {
  if (source == KeySource::train_config) warn_python_traps(in);
  read_lora_shape(in, adapter.lora);
  read_target_modules(in, adapter, source);
  if (auto v = in.get_bool("use_rslora")) adapter.use_rslora = *v;
  if (auto v = in.get_bool("use_dora")) adapter.use_dora = *v;
  if (auto v =
          read_enum(in, "lora_init", {LoraInit::original, LoraInit::gaussian}, lora_init_name)) {
    adapter.lora_init = *v;
  }
}

namespace {

// peft_type, else routing_strategy, else num_experts decides the adapter type, as MoE-PEFT's
// lora_config_factory does; a routing_strategy of another type is an error, not ignored.
void read_peft_type(const JsonObjectReader& in, AdapterConfig& adapter) {
  const auto strategy = in.get_string("routing_strategy");
  auto type_of_strategy = [](const std::string& name) {
    return name == "loramoe" ? PeftType::loramoe
           : name == "mola"  ? PeftType::mola
                             : PeftType::mixlora;
  };
  if (auto peft_type = in.get_string("peft_type")) {
    const std::string name = upper(*peft_type);
    std::vector<std::string> names;
    bool known = false;
    for (auto type : {PeftType::lora, PeftType::mixlora, PeftType::loramoe, PeftType::mola}) {
      names.emplace_back(peft_type_name(type));
      if (name != names.back()) continue;
      adapter.peft_type = type;
      known = true;
    }
    if (!known) {
      in.fail_plain("peft_type",
                    fmt::format("must be one of {}, got \"{}\"{}", fmt::join(names, ", "),
                                *peft_type, did_you_mean(name, names)));
    }
    if (strategy && adapter.peft_type != PeftType::lora &&
        type_of_strategy(*strategy) != adapter.peft_type) {
      in.fail("routing_strategy", fmt::format("does not fit peft_type {}", name));
    }
  } else if (strategy) {
    adapter.peft_type = type_of_strategy(*strategy);
  } else if (in.has("num_experts")) {
    adapter.peft_type = PeftType::mixlora;
  }
}

// LoRAMoE and MoLA (MoE-PEFT's LoraMoeConfig / MolaConfig): num_experts is required there;
// top_k and the router loss are MoLA's; the gates start kaiming-uniform (router_init_range 5).
void read_lora_mixture_fields(const JsonObjectReader& in, AdapterConfig& adapter) {
  const bool mola = adapter.peft_type == PeftType::mola;
  const char* type = mola ? "MoLA" : "LoRAMoE";
  std::vector<std::string> used = {"routing_strategy", "num_experts", "router_init_range"};
  if (mola) used.insert(used.end(), {"top_k", "router_loss", "router_aux_loss_coef"});
  for (const auto& key : mixlora_keys()) {
    if (in.has(key) && !contains(used, key)) {
      spdlog::warn("{}: {}: ignored, {} adapters do not use it", in.source(), in.path_of(key),
                   type);
    }
  }
  const auto num_experts = in.get_int("num_experts");
  require(num_experts.has_value(), in, "num_experts",
          fmt::format("is required for {} adapters", type));
  require(*num_experts >= 1, in, "num_experts", "must be >= 1");
  adapter.num_experts = *num_experts;
  adapter.router_init_range = 5.0;
  if (auto v = in.get_number("router_init_range")) {
    require(*v >= 0.0, in, "router_init_range", "must be >= 0");
    adapter.router_init_range = *v;
  }
  if (adapter.use_dora) {
    in.fail("use_dora",
            fmt::format("is not supported on {} adapters (their experts have no DoRA)", type));
  }
  // MoE-PEFT's MolaConfig: router loss off unless asked for.
  adapter.router_loss = false;
  if (!mola) return;
  if (auto v = in.get_int("top_k")) adapter.top_k = *v;
  require(adapter.top_k >= 1 && adapter.top_k <= adapter.num_experts, in, "top_k",
          fmt::format("must be in 1..num_experts ({})", adapter.num_experts),
          fmt::format("{} (the default)", adapter.top_k));
  if (auto v = in.get_bool("router_loss")) adapter.router_loss = *v;
  if (auto v = in.get_number("router_aux_loss_coef")) {
    require(*v >= 0.0, in, "router_aux_loss_coef", "must be >= 0");
    adapter.router_aux_loss_coef = *v;
  }
}

}  // namespace

void read_mixlora_fields(const JsonObjectReader& in, AdapterConfig& adapter, KeySource source) {
  read_peft_type(in, adapter);
  if (adapter.peft_type == PeftType::lora) {
    for (const auto& key : mixlora_keys()) {
      if (in.has(key)) {
        spdlog::warn("{}: {}: ignored, the adapter is plain LoRA (peft_type LORA)", in.source(),
                     in.path_of(key));
      }
    }
    return;
  }
  if (adapter.is_lora_mixture()) {
    read_lora_mixture_fields(in, adapter);
    return;
  }

  const std::vector<std::string> strategies = {"mixlora", "mixlora-dynamic", "mixlora-switch"};
  if (auto strategy = in.get_string("routing_strategy")) {
    read_choice(in, "routing_strategy", strategies);
    adapter.routing_strategy = *strategy == "mixlora"           ? RoutingStrategy::mixlora
                               : *strategy == "mixlora-dynamic" ? RoutingStrategy::mixlora_dynamic
                                                                : RoutingStrategy::mixlora_switch;
  }
  const bool is_switch = adapter.routing_strategy == RoutingStrategy::mixlora_switch;
  // Switch Transformers' router defaults (MoE-PEFT MixLoraConfig.from_config).
  adapter.router_init_range = is_switch ? 1.0 : 0.02;
  adapter.jitter_noise = is_switch ? 0.01 : 0.0;

  if (auto v = in.get_int("num_experts")) {
    require(*v >= 1, in, "num_experts", "must be >= 1");
    adapter.num_experts = *v;
  }
  if (auto v = in.get_int("top_k")) adapter.top_k = *v;
  // The default top_k 2 only matters (and only can break) under top-k routing.
  if (in.has("top_k") || adapter.routing_strategy == RoutingStrategy::mixlora) {
    require(adapter.top_k >= 1 && adapter.top_k <= adapter.num_experts, in, "top_k",
            fmt::format("must be in 1..num_experts ({})", adapter.num_experts),
            fmt::format("{} (the default)", adapter.top_k));
  }
  if (auto v = in.get_number("top_p")) {
    require(*v > 0.0 && *v <= 1.0, in, "top_p", "must be in (0, 1]");
    adapter.top_p = *v;
  }
  if (auto v = in.get_number("temperature")) {
    require(*v >= 0.0, in, "temperature", "must be >= 0 (0 = off)");
    adapter.temperature = *v;
  }
  if (auto v = in.get_number("router_aux_loss_coef")) {
    require(*v >= 0.0, in, "router_aux_loss_coef", "must be >= 0");
    adapter.router_aux_loss_coef = *v;
  }
  if (auto v = in.get_number("router_z_loss_coef")) {
    require(*v >= 0.0, in, "router_z_loss_coef", "must be >= 0");
    adapter.router_z_loss_coef = *v;
  }
  if (auto v = in.get_bool("router_loss")) adapter.router_loss = *v;
  if (auto v = in.get_number("router_init_range")) {
    // 0 is allowed as in MoE-PEFT: a zero router starts with uniform routing.
    require(*v >= 0.0, in, "router_init_range", "must be >= 0");
    adapter.router_init_range = *v;
  }
  if (auto v = in.get_number("jitter_noise")) {
    require(*v >= 0.0 && *v < 1.0, in, "jitter_noise", "must be in [0, 1)");
    adapter.jitter_noise = *v;
  }
  if (auto v = in.get_int("expert_capacity")) {
    require(*v >= 1, in, "expert_capacity", "must be >= 1");
    adapter.expert_capacity = *v;
  }
  if (auto v = in.get_number("capacity_factor")) {
    require(*v > 0.0, in, "capacity_factor", "must be > 0");
    adapter.capacity_factor = *v;
  }
  if (auto v = in.get_number("ffn_dropout")) {
    require(*v >= 0.0 && *v < 1.0, in, "ffn_dropout", "must be in [0, 1)");
    adapter.ffn_dropout = *v;
  }
  // Absent or null: MoE-PEFT uses the FFN's own activation (act_fn_given stays false and
  // Adapter::create takes the base model's).
  if (auto v = read_choice(in, "act_fn", model::activation_names())) {
    adapter.act_fn = *model::activation_from_name(*v);
    adapter.act_fn_given = true;
  }
  read_expert_lora(in, adapter, source);

  const auto& targets = adapter.target_modules;
  const bool any_mlp = std::any_of(targets.begin(), targets.end(), [](const std::string& t) {
    return t == "gate_proj" || t == "up_proj" || t == "down_proj" || t == "gate_up_proj";
  });
  if (!any_mlp) {
    spdlog::warn(
        "{}: {}: MixLoRA without gate_proj/up_proj/down_proj in target_modules: every "
        "expert equals the frozen FFN",
        in.source(), in.path_of("target_modules"));
  }
}

}  // namespace mixlora::config
