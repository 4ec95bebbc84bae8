#include "mixlora/train/progress.h"

#include "mixlora/train/adapter_run.h"
#include "mixlora/train/trainer.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace mixlora::train {

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  const auto s = static_cast<int64_t>(seconds);
  return fmt::format("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

std::string step_line(const StepLog& log) {
  const std::string router =
      log.router ? fmt::format(" | aux {:.5f} | z {:.5f}", log.router->aux, log.router->z) : "";
  return fmt::format(
      "{} | step {}/{} | epoch {} | loss {:.4f}{} | lr {:.3e} | grad {:.3f} | {:.0f} tok/s | {} "
      "elapsed | ETA {}",
      log.name, log.step, log.total_steps, log.line_epoch, log.loss, router, log.lr, log.grad_norm,
      log.tokens_per_s, clock_text(log.elapsed_s), clock_text(log.eta_s));
}

nlohmann::json step_record(const StepLog& log) {
  nlohmann::json record = {
      {"adapter", log.name},
      {"step", log.step},
      {"total_steps", log.total_steps},
      {"epoch", log.record_epoch},
      {"loss", log.loss},
      {"lr", log.lr},
      {"grad_norm",
       std::isfinite(log.grad_norm) ? nlohmann::json(log.grad_norm) : nlohmann::json(nullptr)},
      {"tokens_per_s", log.tokens_per_s},
      {"elapsed_s", log.elapsed_s}};
  if (log.router) {
    record["aux_loss"] = log.router->aux;
    record["z_loss"] = log.router->z;
  }
  return record;
}

void append_metrics(const std::filesystem::path& dir, const nlohmann::json& record) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "metrics.jsonl", std::ios::app) << record.dump() << "\n";
}

ProgressReporter::ProgressReporter(const config::TrainConfig& config,
                                   const std::vector<std::unique_ptr<AdapterRun>>& runs)
    : config_(config),
      runs_(runs),
      windows_(runs.size()),
      first_logged_(runs.size(), false),
      start_(std::chrono::steady_clock::now()),
      terminal_(::isatty(STDERR_FILENO) != 0),
      router_telemetry_(config, runs.size()) {
  for (const auto& run : runs) {
    steps_total_ += run->total_steps();
    steps_at_start_ += run->step();
  }
}

void ProgressReporter::add_losses(size_t adapter, const LossSums& losses) {
  auto& w = windows_[adapter];
  w.loss += losses.task;
  w.aux += losses.aux;
  w.z += losses.z;
  w.micro_batches += losses.micro_batches;
  tokens_ += losses.tokens;
}

void ProgressReporter::finish_step(size_t adapter, double lr, double grad_norm,
                                   AdapterSummary& summary) {
  ++steps_done_;
  const auto& run = *runs_[adapter];
  const bool due = run.step() % std::max<int64_t>(1, config_.log_every) == 0 || run.done();
  if (!due) {
    draw_bar();
    return;
  }
  auto& w = windows_[adapter];
  const double n = static_cast<double>(std::max<int64_t>(1, w.micro_batches));
  const double loss = w.loss / n, aux = w.aux / n, z = w.z / n;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double tokens_per_s = elapsed > 0 ? static_cast<double>(tokens_) / elapsed : 0.0;
  const double eta = steps_done_ > 0
                         ? elapsed / static_cast<double>(steps_done_) *
                               static_cast<double>(steps_total_ - steps_at_start_ - steps_done_)
                         : NAN;
  if (!first_logged_[adapter]) {
    summary.first_loss = loss;
    first_logged_[adapter] = true;
  }
  summary.last_loss = loss;
  const StepLog log{run.name(),
                    run.step(),
                    run.total_steps(),
                    run.epoch() + (run.done() ? 0 : 1),
                    run.epoch(),
                    loss,
                    lr,
                    grad_norm,
                    tokens_per_s,
                    elapsed,
                    eta,
                    StepLog::RouterLosses{aux, z}};
  if (terminal_) std::fputs("\r\033[K", stderr);
  spdlog::info("{}", step_line(log));
  auto record = step_record(log);
  if (auto router = router_telemetry_.take(adapter, run); !router.is_null())
    record["router"] = std::move(router);
  append_metrics(std::filesystem::path(config_.output_dir) / run.name(), record);
  w = Window{};
  draw_bar();
}

void ProgressReporter::log_eval(size_t adapter, const std::vector<eval::EvalResult>& results) {
  const auto& run = *runs_[adapter];
  if (terminal_) std::fputs("\r\033[K", stderr);
  for (const auto& r : results) {
    spdlog::info("{} | step {}/{} | eval {} ({} samples) | {}loss {:.4f}", run.name(), run.step(),
                 run.total_steps(), r.task_name, r.samples,
                 r.accuracy ? fmt::format("accuracy {:.4f} | ", *r.accuracy) : "", r.loss);
  }
  const nlohmann::json record = {
      {"adapter", run.name()}, {"step", run.step()}, {"eval", eval::report_json(results)}};
  append_metrics(std::filesystem::path(config_.output_dir) / run.name(), record);
  draw_bar();
}

void ProgressReporter::draw_bar() {
  if (!terminal_ || steps_total_ == 0) return;
  const int64_t done = steps_at_start_ + steps_done_;
  const int width = 30;
  const int filled = static_cast<int>(width * done / steps_total_);
  std::fprintf(stderr, "\r[%s%s] %lld/%lld steps", std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), static_cast<long long>(done),
               static_cast<long long>(steps_total_));
  std::fflush(stderr);
}

void ProgressReporter::finish() {
  if (terminal_) std::fputs("\n", stderr);
}

}  // namespace mixlora::train
