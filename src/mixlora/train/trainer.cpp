#include "mixlora/train/trainer.h"

#include "mixlora/common/error.h"
#include "mixlora/common/signals.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/model/decoder.h"
#include "mixlora/report/html_report.h"
#include "mixlora/train/adapter_run.h"
#include "mixlora/train/data_parallel.h"
#include "mixlora/train/progress.h"
#include "mixlora/train/recipe.h"
#include "mixlora/train/step.h"
#include "mixlora/train/step_guard.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>  // getpid (LibTorch 1.13 headers brought it in, 2.x do not)

namespace mixlora::train {

namespace fs = std::filesystem;

namespace {

fs::path adapter_dir(const config::TrainConfig& config, const std::string& name) {
  return fs::path(config.output_dir) / name;
}

// adapter_config.json is written last (Adapter::save): without it the final save was cut short.
bool is_finished(const fs::path& dir) {
  return fs::exists(dir / "adapter_model.safetensors") && fs::exists(dir / "adapter_config.json");
}

// The nearest existing directory at or above `dir`: where creating it would start.
fs::path existing_ancestor(fs::path dir) {
  std::error_code ec;
  dir = fs::absolute(dir, ec).lexically_normal();
  while (!fs::exists(dir, ec) && dir.has_parent_path() && dir.parent_path() != dir)
    dir = dir.parent_path();
  return dir;
}

// After a resume from step `step`, the records of later steps will be logged again: drop them.
void trim_metrics(const fs::path& dir, int64_t step) {
  const auto path = dir / "metrics.jsonl";
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object() && record.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  io::write_file_atomically(path.string(), kept);
}

}  // namespace

void prepare_output(const config::TrainConfig& config, const TrainerOptions& options) {
  // Nothing is created or removed here: a run that then fails on its model or data must leave
  // the output directory as it found it. Writability is probed where creation would start.
  std::error_code ec;
  const auto base = existing_ancestor(config.output_dir);
  if (!fs::is_directory(base, ec)) {
    fail_input(
        "{}: cannot create the output directory: {} is not a directory (set output_dir or "
        "--output-dir)",
        config.output_dir, base.string());
  }
  const auto probe = base / fmt::format(".mixlora-write-test-{}", ::getpid());
  {
    std::ofstream out(probe);
    if (!out) {
      fail_input(
          "{}: cannot create the output directory: {} is not writable (set output_dir or "
          "--output-dir)",
          config.output_dir, base.string());
    }
  }
  fs::remove(probe, ec);
  if (options.overwrite) return;
  for (const auto& adapter : config.adapters) {
    const auto dir = adapter_dir(config, adapter.name);
    if (is_finished(dir) && !options.resume) {
      fail_input("{}: a finished adapter is already there (use --overwrite to replace it)",
                 dir.string());
    }
    const bool has_checkpoints = fs::exists(dir) && !fs::is_empty(dir, ec);
    if (has_checkpoints && !options.resume) {
      fail_input(
          "{}: holds an unfinished run (use --resume to continue it or --overwrite to start over)",
          dir.string());
    }
  }
}

void create_output(const config::TrainConfig& config, const TrainerOptions& options) {
  std::error_code ec;
  if (options.overwrite) {
    for (const auto& adapter : config.adapters)
      fs::remove_all(adapter_dir(config, adapter.name), ec);
  }
  fs::create_directories(config.output_dir, ec);
  if (ec) {
    fail_input("{}: cannot create the output directory: {} (set output_dir or --output-dir)",
               config.output_dir, ec.message());
  }
}

namespace {

// The training recipe in torchtune's shape: setup (constructor), resume, then one fused step
// and what follows it until every adapter is done, saving as adapters finish, stopping at a
// step boundary on a signal or a fault. train() below reads as exactly that sequence.
class FusedTrainingRecipe {
 public:
  FusedTrainingRecipe(const config::TrainConfig& config, const model::BaseModel& base,
                      std::vector<std::vector<data::Sample>> samples, const TrainerOptions& options,
                      const std::vector<std::vector<data::TaskData>>& eval_sets)
      : config_(config),
        base_(base),
        options_(options),
        eval_sets_(eval_sets),
        decoder_(base),
        dp_(options.comm, config.adapters.size()),
        guard_(config.adapters.size(), config.max_nonfinite_steps),
        pending_(config.adapters.size()),
        summaries_(config.adapters.size()) {
    if (dp_.writes()) create_output(config, options);
    for (size_t i = 0; i < config.adapters.size(); ++i) {
      const auto& ac = config.adapters[i];
      if (config.eval_every > 0 && !eval_set(i))
        spdlog::warn("adapter '{}': eval_every is set but it has no eval_data", ac.name);
      runs_.push_back(std::make_unique<AdapterRun>(ac, base, std::move(samples[i]), config.seed));
      summaries_[i].name = ac.name;
      summaries_[i].output_dir = adapter_dir(config, ac.name).string();
      const auto& run = *runs_.back();
      spdlog::info(
          "adapter '{}': {} {} parameters, {} steps ({} epochs, batch {} = {} x {})", ac.name,
          run.adapter().is_mixlora()
              ? std::string("MixLoRA ") + config::routing_strategy_name(ac.routing_strategy)
              : std::string(config::peft_type_name(ac.peft_type)),
          run.adapter().num_parameters(), run.total_steps(), ac.num_epochs, ac.batch_size,
          run.accumulation(), ac.micro_batch_size);
    }
  }

  // --resume: finished adapters are skipped, the others continue from their newest complete
  // checkpoint; then every rank agrees on where each adapter starts.
  void resume() {
    for (auto& run_ptr : runs_) {
      auto& run = *run_ptr;
      if (!options_.resume) break;
      const auto dir = adapter_dir(config_, run.name());
      if (is_finished(dir)) {
        spdlog::info("adapter '{}': already finished in {}", run.name(), dir.string());
        run.mark_finished();
        continue;
      }
      if (dp_.writes()) remove_incomplete(dir.string());
      if (const auto checkpoint = newest_checkpoint(dir.string())) {
        run.restore(load_checkpoint(*checkpoint, run.mutable_adapter(), base_));
        if (dp_.writes()) trim_metrics(dir, run.step());
        spdlog::info("adapter '{}': resumed from {} (step {})", run.name(), *checkpoint,
                     run.step());
      } else if (dp_.writes()) {
        trim_metrics(dir, 0);  // killed before its first checkpoint: start over
      }
    }
    dp_.synchronize_start(runs_);
    progress_ = std::make_unique<ProgressReporter>(config_, runs_);
    common::install_stop_handlers();
  }

  // The adapters of the next fused batch: up to train_lora_simultaneously_num unfinished ones,
  // those with similar sample lengths together (less padding). Empty when all are done.
  std::vector<size_t> next_batch() const {
    std::vector<size_t> active;
    for (size_t i = 0; i < runs_.size(); ++i)
      if (!runs_[i]->done()) active.push_back(i);
    if (config_.train_strategy == config::TrainStrategy::optim) {
      std::stable_sort(active.begin(), active.end(), [&](size_t a, size_t b) {
        return runs_[a]->average_length() < runs_[b]->average_length();
      });
    }
    const auto simultaneous =
        static_cast<size_t>(std::max<int64_t>(1, config_.train_lora_simultaneously_num));
    if (active.size() > simultaneous) active.resize(simultaneous);
    return active;
  }

  // One fused batch: each active adapter's next micro-batch, one after the other, forward and
  // backward over one pass of the base. When data-parallel, only the rank that owns the batch
  // computes it (data_parallel.h); every rank advances the adapters' data cursors alike.
  void step(const std::vector<size_t>& active) {
    std::vector<const data::Sample*> rows;
    std::vector<adapters::AdapterSegment> segments;
    std::vector<int64_t> accumulation;
    for (size_t i : active) {
      auto micro = runs_[i]->next_micro_batch();
      segments.push_back({&runs_[i]->adapter(), static_cast<int64_t>(rows.size()),
                          static_cast<int64_t>(micro.size()), runs_[i]->generator()});
      rows.insert(rows.end(), micro.begin(), micro.end());
      accumulation.push_back(runs_[i]->accumulation());
    }
    if (!dp_.owns_next_batch()) return;
    dp_.before_backward(runs_, active);
    // Routing statistics for the micro-batches of steps that will be logged (router_telemetry.h).
    std::vector<bool> telemetry;
    for (size_t i : active) telemetry.push_back(progress_->router_telemetry().due(*runs_[i]));
    const bool any_telemetry =
        std::find(telemetry.begin(), telemetry.end(), true) != telemetry.end();
    const auto losses =
        forward_backward(decoder_, data::make_batch(rows, options_.pad_id), segments, accumulation,
                         {options_.ffn_path, config_.gradient_checkpointing, any_telemetry});
    for (size_t k = 0; k < active.size(); ++k) {
      if (telemetry[k]) progress_->router_telemetry().add(active[k], losses[k].router);
      pending_[active[k]].add(losses[k]);
      guard_.add_loss(active[k], losses[k].task + losses[k].aux + losses[k].z);
    }
  }

  // For each adapter of the batch whose step this micro-batch completed: the optimizer step,
  // progress, held-out scoring, the non-finite guard, and its checkpoint or final save.
  void after_step(const std::vector<size_t>& active) {
    for (size_t i : active) {
      auto& run = *runs_[i];
      if (!run.finish_micro_batch()) continue;
      // The losses of this step over all ranks (data-parallel) or this process alone.
      const LossSums step_losses = dp_.reduce_step(run, i, pending_[i]);
      pending_[i] = LossSums{};
      progress_->add_losses(i, step_losses);
      const double lr = run.current_lr();
      // Data-parallel ranks see different losses; only the reduced gradients (NaN on every rank
      // alike) may decide a skip there, or the ranks' weights would part.
      const bool poisoned = !dp_.enabled() && guard_.loss_poisoned(i);
      const double grad_norm = run.optimizer_step(config_.max_grad_norm, poisoned);
      if (dp_.writes()) progress_->finish_step(i, lr, grad_norm, summaries_[i]);
      evaluate_if_due(i);
      if (guard_.finish_step(i, run.name(), run.step(), std::isnan(grad_norm)) &&
          stop_reason_.empty()) {
        stop_reason_ = fmt::format(
            "adapter '{}': {} non-finite steps in a row (up to step {}); stopped with its "
            "last finite weights checkpointed (lower lr, set max_grad_norm, or raise "
            "max_nonfinite_steps)",
            run.name(), guard_.in_row(i), run.step());
      }
      save_if_due(run);
    }
  }

  // A signal or a fault stops the run once no adapter is mid-step: unfinished adapters are
  // checkpointed and the run ends with Interrupted (signal) or RuntimeError (fault).
  void stop_if_requested() {
    const int signal = common::stop_signal();
    if ((!signal && stop_reason_.empty()) || !at_step_boundary()) return;
    if (dp_.writes()) checkpoint_unfinished();
    dp_.barrier();
    if (signal) {
      throw common::Interrupted(signal,
                                fmt::format("stopped by {} after the step in progress; checkpoints "
                                            "saved, continue with --resume",
                                            ::strsignal(signal)));
    }
    fail_runtime("{}", stop_reason_);
  }

  std::vector<AdapterSummary> finish() {
    progress_->finish();
    dp_.log_overlap();
    if (options_.write_report && dp_.writes()) {
      // The adapters are saved: a report that cannot be written costs a warning, not the run.
      try {
        spdlog::info("report: {}",
                     report::write_report({config_.output_dir},
                                          (fs::path(config_.output_dir) / "report.html").string()));
      } catch (const std::exception& e) {
        spdlog::warn("report: not written: {}", e.what());
      }
    }
    for (size_t i = 0; i < runs_.size(); ++i) summaries_[i].steps = runs_[i]->step();
    return summaries_;
  }

 private:
  const std::vector<data::TaskData>* eval_set(size_t i) const {
    return i < eval_sets_.size() && !eval_sets_[i].empty() ? &eval_sets_[i] : nullptr;
  }

  // The same scoring as mixlora-eval (dropout off, no gradients) on the adapter's held-out sets
  // every eval_every steps and at its end; data-parallel ranks each score a share of the batches
  // and sum the totals (every rank calls this).
  void evaluate_if_due(size_t i) {
    const auto& run = *runs_[i];
    const auto* sets = eval_set(i);
    if (!sets || config_.eval_every <= 0 || (run.step() % config_.eval_every != 0 && !run.done()))
      return;
    std::vector<eval::EvalInput> inputs;
    for (const auto& set : *sets) inputs.push_back({&run.adapter(), set.task_name, &set.samples});
    auto totals = eval::score(decoder_, inputs, run.adapter().config.evaluate_batch_size,
                              options_.pad_id, dp_.eval_shard());
    dp_.sum_eval_totals(totals);
    if (dp_.writes()) progress_->log_eval(i, eval::results_of(inputs, totals));
  }

  // A finished adapter is saved; every save_step steps an unfinished one is checkpointed.
  void save_if_due(AdapterRun& run) {
    const auto dir = adapter_dir(config_, run.name()).string();
    if (run.done()) {
      dp_.check_in_sync(run);
      if (dp_.writes()) {
        run.adapter().save(dir, options_.base_model_name, options_.export_bin);
        spdlog::info("adapter '{}': finished after {} steps, saved to {}", run.name(), run.step(),
                     dir);
      }
      dp_.barrier();
    } else if (config_.save_step > 0 && run.step() % config_.save_step == 0) {
      if (dp_.writes()) {
        const auto path = save_checkpoint(dir, run.step(), run.adapter(), options_.base_model_name,
                                          run.checkpoint_content());
        spdlog::info("adapter '{}': checkpoint {}", run.name(), path);
      }
      dp_.barrier();
    }
  }

  // A stop must wait for a step boundary: a checkpoint taken mid-accumulation would lose the
  // micro-batches already summed into the gradients.
  bool at_step_boundary() const {
    return std::none_of(runs_.begin(), runs_.end(),
                        [](const auto& run) { return !run->done() && run->mid_step(); });
  }

  // Checkpoints every unfinished adapter that has taken a step since its last checkpoint.
  void checkpoint_unfinished() const {
    for (const auto& run : runs_) {
      const auto dir = adapter_dir(config_, run->name());
      if (run->done() || run->step() == 0 ||
          fs::exists(dir / fmt::format("checkpoint-{}", run->step())))
        continue;
      const auto path = save_checkpoint(dir.string(), run->step(), run->adapter(),
                                        options_.base_model_name, run->checkpoint_content());
      spdlog::info("adapter '{}': checkpoint {}", run->name(), path);
    }
  }

  const config::TrainConfig& config_;
  const model::BaseModel& base_;
  const TrainerOptions& options_;
  const std::vector<std::vector<data::TaskData>>& eval_sets_;
  const model::Decoder decoder_;
  std::vector<std::unique_ptr<AdapterRun>> runs_;
  DataParallel dp_;
  StepGuard guard_;
  std::unique_ptr<ProgressReporter> progress_;
  std::vector<LossSums> pending_;  // per adapter: losses of its micro-batches of the step under way
  std::vector<AdapterSummary> summaries_;
  std::string stop_reason_;  // set by a fault; the run stops at the next step boundary
};

}  // namespace

std::vector<AdapterSummary> train(const config::TrainConfig& config, const model::BaseModel& base,
                                  std::vector<std::vector<data::Sample>> samples,
                                  const TrainerOptions& options,
                                  const std::vector<std::vector<data::TaskData>>& eval_sets) {
  FusedTrainingRecipe recipe(config, base, std::move(samples), options, eval_sets);
  return run_recipe(recipe);
}

}  // namespace mixlora::train
