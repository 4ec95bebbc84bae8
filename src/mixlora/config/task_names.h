// Task ids of the `task_name` key (SPEC section 4): causal LM, classification, the multiple-choice
// QA ids of MoE-PEFT, local GLUE tasks, and several of them joined by ';'.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixlora::config {

enum class TaskKind { causal_lm, classification, multiple_choice };

// MoE-PEFT's spelling of the causal-LM task; "", "causal" and "casual" all read as this.
inline constexpr const char* kCausalTask = "casual";

// One task id in its stored spelling ("" / "causal" -> "casual"); other ids are unchanged.
std::string canonical_task(const std::string& task);

// The kind of one (canonical) task id; nullopt when the id is unknown.
std::optional<TaskKind> task_kind(const std::string& task);
bool is_causal_lm_task(const std::string& task);

// "arc-e;boolq" -> {"arc-e", "boolq"}; a single id gives one element.
std::vector<std::string> split_tasks(const std::string& task_name);

// arc-e arc-c boolq obqa piqa siqa hellaswag winogrande.
const std::vector<std::string>& multiple_choice_tasks();
// GLUE task names usable as "glue:<name>", read from local JSONL.
const std::vector<std::string>& glue_tasks();
// The label count of "glue:<name>"; nullopt for anything else.
std::optional<int64_t> glue_num_labels(const std::string& task);

// Every accepted id, for error messages: casual, causal, classification, arc-e, ..., glue:<task>.
std::vector<std::string> known_task_ids();

}  // namespace mixlora::config
