// What mixlora-report reads: the metrics.jsonl records of a training run's adapters
// (docs/telemetry.md), as series over steps.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace mixlora::report {

struct Series {
  std::vector<double> steps, values;  // values may be NaN (not finite / absent)
  void add(double step, double value) {
    steps.push_back(step);
    values.push_back(value);
  }
  bool empty() const { return steps.empty(); }
};

// One adapter's metrics.jsonl.
struct AdapterMetrics {
  std::string run;   // the run directory's name (labels when several runs are compared)
  std::string name;  // adapter name
  int64_t total_steps = 0;
  Series loss, aux_loss, z_loss, lr, grad_norm, tokens_per_s;
  std::map<std::string, Series> eval;  // "<task> accuracy" / "<task> loss"
  // Router telemetry of the logged steps, in step order: (step, "router" object).
  std::vector<std::pair<int64_t, nlohmann::json>> router;
  std::vector<nlohmann::json> alarms;  // every alarm raised, with its step
  bool is_mixlora() const { return !router.empty(); }
};

struct RunMetrics {
  std::string dir, name;
  std::vector<AdapterMetrics> adapters;  // sorted by name
};

// Reads RUN_DIR/<adapter>/metrics.jsonl for every adapter directory (or RUN_DIR/metrics.jsonl
// when RUN_DIR is one adapter's directory). InputError when there is none or a line is not JSON.
RunMetrics read_run(const std::string& run_dir);

// One adapter's records (lines of metrics.jsonl), `source` names them in errors.
AdapterMetrics parse_metrics(const std::string& text, const std::string& source);

}  // namespace mixlora::report
