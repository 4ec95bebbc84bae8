#include "mixlora/config/task_names.h"

#include <algorithm>
#include <map>

namespace mixlora::config {

namespace {

const std::map<std::string, int64_t>& glue_label_counts() {
  // Label counts of the GLUE classification tasks MoE-PEFT ships (STS-B, a regression, is not one).
  static const std::map<std::string, int64_t> counts = {{"cola", 2}, {"mnli", 3}, {"mrpc", 2},
                                                        {"qnli", 2}, {"qqp", 2},  {"rte", 2},
                                                        {"sst2", 2}, {"wnli", 2}};
  return counts;
}

constexpr const char* kGluePrefix = "glue:";

}  // namespace

std::string canonical_task(const std::string& task) {
  if (task.empty() || task == "causal" || task == kCausalTask) return kCausalTask;
  return task;
}

const std::vector<std::string>& multiple_choice_tasks() {
  static const std::vector<std::string> ids = {"arc-e", "arc-c", "boolq",     "obqa",
                                               "piqa",  "siqa",  "hellaswag", "winogrande"};
  return ids;
}

const std::vector<std::string>& glue_tasks() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, count] : glue_label_counts()) out.push_back(name);
    return out;
  }();
  return names;
}

std::optional<int64_t> glue_num_labels(const std::string& task) {
  if (task.rfind(kGluePrefix, 0) != 0) return std::nullopt;
  auto it = glue_label_counts().find(task.substr(std::string(kGluePrefix).size()));
  if (it == glue_label_counts().end()) return std::nullopt;
  return it->second;
}

std::optional<TaskKind> task_kind(const std::string& task) {
  if (canonical_task(task) == kCausalTask) return TaskKind::causal_lm;
  if (task == "classification" || glue_num_labels(task)) return TaskKind::classification;
  const auto& mc = multiple_choice_tasks();
  if (std::find(mc.begin(), mc.end(), task) != mc.end()) return TaskKind::multiple_choice;
  return std::nullopt;
}

bool is_causal_lm_task(const std::string& task) { return task_kind(task) == TaskKind::causal_lm; }

std::vector<std::string> split_tasks(const std::string& task_name) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t end = task_name.find(';', start);
    out.push_back(
        task_name.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::vector<std::string> known_task_ids() {
  std::vector<std::string> ids = {kCausalTask, "causal", "classification"};
  for (const auto& id : multiple_choice_tasks()) ids.push_back(id);
  for (const auto& name : glue_tasks()) ids.push_back(kGluePrefix + name);
  return ids;
}

}  // namespace mixlora::config
