// Training progress for people and tools: a log line per adapter every log_every steps (step,
// epoch, loss, aux, z, lr, grad norm, tokens/s, elapsed, ETA), a progress bar when stderr is a
// terminal, and <output_dir>/<adapter>/metrics.jsonl with one JSON object per logged step.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/train/router_telemetry.h"
#include "mixlora/train/step.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixlora::train {

class AdapterRun;
struct AdapterSummary;

// Seconds as hh:mm:ss for the log ("--:--:--" when unknown).
std::string clock_text(double seconds);

// One logged optimizer step, written the same way by the adapter trainer and by pretraining:
// step_line() for the log, step_record() for metrics.jsonl.
struct StepLog {
  struct RouterLosses {
    double aux = 0.0, z = 0.0;
  };
  std::string name;
  int64_t step = 0, total_steps = 0;
  int64_t line_epoch = 0;    // the epoch the line names (1-based, the one the step belongs to)
  int64_t record_epoch = 0;  // the record's "epoch": epochs completed
  double loss = 0.0, lr = 0.0, grad_norm = 0.0, tokens_per_s = 0.0, elapsed_s = 0.0, eta_s = 0.0;
  std::optional<RouterLosses> router;  // mean aux and z losses; pretraining has no router
};
std::string step_line(const StepLog& log);
nlohmann::json step_record(const StepLog& log);
// Appends one JSON object as a line to `dir`/metrics.jsonl (creating `dir`).
void append_metrics(const std::filesystem::path& dir, const nlohmann::json& record);

class ProgressReporter {
 public:
  ProgressReporter(const config::TrainConfig& config,
                   const std::vector<std::unique_ptr<AdapterRun>>& runs);
  // The losses of one optimizer step of `adapter` (its micro-batches, over every rank).
  void add_losses(size_t adapter, const LossSums& losses);
  // After adapter `adapter` took an optimizer step with `lr`.
  void finish_step(size_t adapter, double lr, double grad_norm, AdapterSummary& summary);
  // After adapter `adapter` was scored on its eval_data (trainer's eval_every).
  void log_eval(size_t adapter, const std::vector<eval::EvalResult>& results);
  void finish();
  // Routing statistics of the logged steps: finish_step adds them as the record's "router".
  RouterTelemetry& router_telemetry() { return router_telemetry_; }

 private:
  struct Window {
    double loss = 0.0, aux = 0.0, z = 0.0;
    int64_t micro_batches = 0;
  };
  void draw_bar();

  const config::TrainConfig& config_;
  const std::vector<std::unique_ptr<AdapterRun>>& runs_;
  std::vector<Window> windows_;
  std::vector<bool> first_logged_;
  std::chrono::steady_clock::time_point start_;
  int64_t tokens_ = 0;
  int64_t steps_done_ = 0;      // optimizer steps of all adapters in this process
  int64_t steps_at_start_ = 0;  // already done before (resume)
  int64_t steps_total_ = 0;
  bool terminal_ = false;
  RouterTelemetry router_telemetry_;
};

}  // namespace mixlora::train
