#include "mixlora/train/trainer.h"

#include "mixlora/common/error.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/common/signals.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/model/decoder.h"
#include "mixlora/train/adapter_run.h"
#include "mixlora/train/data_parallel.h"
#include "mixlora/train/progress.h"
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
  while (!fs::exists(dir, ec) && dir.has_parent_path() && dir.parent_path() != dir) dir = dir.parent_path();
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

// The same scoring as mixlora-eval (dropout off, no gradients) on the adapter's held-out sets;
// data-parallel ranks each score a share of the batches and sum the totals (every rank calls this).
std::vector<eval::EvalResult> evaluate_run(const model::Decoder& decoder, const AdapterRun& run,
                                           const std::vector<data::TaskData>& sets, int64_t pad_id,
                                           DataParallel& dp) {
  std::vector<eval::EvalInput> inputs;
  for (const auto& set : sets) inputs.push_back({&run.adapter(), set.task_name, &set.samples});
  auto totals = eval::score(decoder, inputs, run.adapter().config.evaluate_batch_size, pad_id, dp.eval_shard());
  dp.sum_eval_totals(totals);
  return eval::results_of(inputs, totals);
}

// A stop must wait for a step boundary: a checkpoint taken mid-accumulation would lose the
// micro-batches already summed into the gradients.
bool stop_now(const std::vector<std::unique_ptr<AdapterRun>>& runs) {
  return std::none_of(runs.begin(), runs.end(), [](const auto& run) { return !run->done() && run->mid_step(); });
}

// Checkpoints every unfinished adapter that has taken a step since its last checkpoint.
void checkpoint_unfinished(const config::TrainConfig& config, const std::vector<std::unique_ptr<AdapterRun>>& runs,
                           const TrainerOptions& options) {
  for (const auto& run : runs) {
    const auto dir = adapter_dir(config, run->name());
    if (run->done() || run->step() == 0 || fs::exists(dir / fmt::format("checkpoint-{}", run->step()))) continue;
    const auto path = save_checkpoint(dir.string(), run->step(), run->adapter(), options.base_model_name,
                                      run->checkpoint_content());
    spdlog::info("adapter '{}': checkpoint {}", run->name(), path);
  }
}

}  // namespace

void prepare_output(const config::TrainConfig& config, const TrainerOptions& options) {
  // Nothing is created or removed here: a run that then fails on its model or data must leave
  // the output directory as it found it. Writability is probed where creation would start.
  std::error_code ec;
  const auto base = existing_ancestor(config.output_dir);
  if (!fs::is_directory(base, ec)) {
    fail_input("{}: cannot create the output directory: {} is not a directory (set output_dir or --output-dir)",
               config.output_dir, base.string());
  }
  const auto probe = base / fmt::format(".mixlora-write-test-{}", ::getpid());
  {
    std::ofstream out(probe);
    if (!out) {
      fail_input("{}: cannot create the output directory: {} is not writable (set output_dir or --output-dir)",
                 config.output_dir, base.string());
    }
  }
  fs::remove(probe, ec);
  if (options.overwrite) return;
  for (const auto& adapter : config.adapters) {
    const auto dir = adapter_dir(config, adapter.name);
    if (is_finished(dir) && !options.resume) {
      fail_input("{}: a finished adapter is already there (use --overwrite to replace it)", dir.string());
    }
    const bool has_checkpoints = fs::exists(dir) && !fs::is_empty(dir, ec);
    if (has_checkpoints && !options.resume) {
      fail_input("{}: holds an unfinished run (use --resume to continue it or --overwrite to start over)",
                 dir.string());
    }
  }
}

void create_output(const config::TrainConfig& config, const TrainerOptions& options) {
  std::error_code ec;
  if (options.overwrite) {
    for (const auto& adapter : config.adapters) fs::remove_all(adapter_dir(config, adapter.name), ec);
  }
  fs::create_directories(config.output_dir, ec);
  if (ec) {
    fail_input("{}: cannot create the output directory: {} (set output_dir or --output-dir)", config.output_dir,
               ec.message());
  }
}

std::vector<AdapterSummary> train(const config::TrainConfig& config, const model::BaseModel& base,
                                  std::vector<std::vector<data::Sample>> samples,
                                  const TrainerOptions& options,
                                  const std::vector<std::vector<data::TaskData>>& eval_sets) {
  if (!options.comm || options.comm->rank() == 0) create_output(config, options);
  const model::Decoder decoder(base);
  // Accepted config keys whose features have not landed yet: say so instead of pretending.
  auto eval_set = [&](size_t i) { return i < eval_sets.size() && !eval_sets[i].empty() ? &eval_sets[i] : nullptr; };
  for (size_t i = 0; i < config.adapters.size() && config.eval_every > 0; ++i) {
    if (!eval_set(i)) spdlog::warn("adapter '{}': eval_every is set but it has no eval_data", config.adapters[i].name);
  }
  std::vector<std::unique_ptr<AdapterRun>> runs;
  std::vector<AdapterSummary> summaries(config.adapters.size());
  DataParallel dp(options.comm, config.adapters.size());
  for (size_t i = 0; i < config.adapters.size(); ++i) {
    const auto& ac = config.adapters[i];
    runs.push_back(std::make_unique<AdapterRun>(ac, base, std::move(samples[i]), config.seed));
    auto& run = *runs.back();
    summaries[i].name = ac.name;
    summaries[i].output_dir = adapter_dir(config, ac.name).string();
    spdlog::info("adapter '{}': {} {} parameters, {} steps ({} epochs, batch {} = {} x {})", ac.name,
                 run.adapter().is_mixlora() ? std::string("MixLoRA ") + config::routing_strategy_name(ac.routing_strategy)
                                            : std::string("LoRA"),
                 run.adapter().num_parameters(), run.total_steps(), ac.num_epochs, ac.batch_size,
                 run.accumulation(), ac.micro_batch_size);
    if (options.resume) {
      const auto dir = adapter_dir(config, ac.name);
      if (is_finished(dir)) {
        spdlog::info("adapter '{}': already finished in {}", ac.name, dir.string());
        run.mark_finished();
        continue;
      }
      if (dp.writes()) remove_incomplete(dir.string());
      if (const auto checkpoint = newest_checkpoint(dir.string())) {
        run.restore(load_checkpoint(*checkpoint, run.mutable_adapter(), base));
        if (dp.writes()) trim_metrics(dir, run.step());
        spdlog::info("adapter '{}': resumed from {} (step {})", ac.name, *checkpoint, run.step());
      } else if (dp.writes()) {
        trim_metrics(dir, 0);  // killed before its first checkpoint: start over
      }
    }
  }

  dp.synchronize_start(runs);
  ProgressReporter progress(config, runs);
  StepGuard guard(runs.size(), config.max_nonfinite_steps);
  common::install_stop_handlers();
  std::string stop_reason;  // set by a fault; the run stops at the next step boundary
  const auto simultaneous = static_cast<size_t>(std::max<int64_t>(1, config.train_lora_simultaneously_num));
  while (true) {
    std::vector<size_t> active;
    for (size_t i = 0; i < runs.size(); ++i)
      if (!runs[i]->done()) active.push_back(i);
    if (active.empty()) break;
    if (config.train_strategy == "optim") {
      // Adapters with similar sample lengths share batches: less padding.
      std::stable_sort(active.begin(), active.end(), [&](size_t a, size_t b) {
        return runs[a]->average_length() < runs[b]->average_length();
      });
    }
    if (active.size() > simultaneous) active.resize(simultaneous);

    // One fused batch: each active adapter's next micro-batch, one after the other. When
    // data-parallel, the rank that owns this batch alone computes it (data_parallel.h).
    std::vector<StepLosses> losses;
    if (dp.owns_next_batch()) {
      std::vector<const data::Sample*> rows;
      std::vector<adapters::AdapterSegment> segments;
      for (size_t i : active) {
        auto micro = runs[i]->next_micro_batch();
        segments.push_back({&runs[i]->adapter(), static_cast<int64_t>(rows.size()),
                            static_cast<int64_t>(micro.size()), runs[i]->generator()});
        rows.insert(rows.end(), micro.begin(), micro.end());
      }
      const auto batch = data::make_batch(rows, options.pad_id);
      std::vector<int64_t> accumulation;
      for (size_t i : active) accumulation.push_back(runs[i]->accumulation());
      dp.before_backward(runs, active);
      losses = forward_backward(decoder, batch, segments, accumulation,
                                {options.ffn_path, config.gradient_checkpointing});
    }

    for (size_t k = 0; k < active.size(); ++k) {
      auto& run = *runs[active[k]];
      if (!losses.empty()) {
        dp.add_micro_batch(progress, active[k], losses[k].task, losses[k].aux, losses[k].z, losses[k].tokens);
        guard.add_loss(active[k], losses[k].task + losses[k].aux + losses[k].z);
      }
      if (!run.finish_micro_batch()) continue;
      dp.reduce_step(run, active[k], progress);
      const double lr = run.current_lr();
      // Data-parallel ranks see different losses; only the reduced gradients (NaN on every rank
      // alike) may decide a skip there, or the ranks' weights would part.
      const bool poisoned = !dp.enabled() && guard.loss_poisoned(active[k]);
      const double grad_norm = run.optimizer_step(config.max_grad_norm, poisoned);
      if (dp.writes()) progress.finish_step(active[k], lr, grad_norm, summaries[active[k]]);
      if (const auto* sets = eval_set(active[k]);
          sets && config.eval_every > 0 && (run.step() % config.eval_every == 0 || run.done())) {
        const auto results = evaluate_run(decoder, run, *sets, options.pad_id, dp);
        if (dp.writes()) progress.log_eval(active[k], results);
      }
      if (guard.finish_step(active[k], run.name(), run.step(), std::isnan(grad_norm)) && stop_reason.empty()) {
        stop_reason = fmt::format("adapter '{}': {} non-finite steps in a row (up to step {}); stopped with its "
                                  "last finite weights checkpointed (lower lr, set max_grad_norm, or raise "
                                  "max_nonfinite_steps)", run.name(), guard.in_row(active[k]), run.step());
      }
      const auto dir = adapter_dir(config, run.name()).string();
      if (run.done()) {
        dp.check_in_sync(run);
        if (dp.writes()) {
          run.adapter().save(dir, options.base_model_name, options.export_bin);
          spdlog::info("adapter '{}': finished after {} steps, saved to {}", run.name(), run.step(), dir);
        }
        dp.barrier();
      } else if (config.save_step > 0 && run.step() % config.save_step == 0) {
        if (dp.writes()) {
          const auto path = save_checkpoint(dir, run.step(), run.adapter(), options.base_model_name,
                                            run.checkpoint_content());
          spdlog::info("adapter '{}': checkpoint {}", run.name(), path);
        }
        dp.barrier();
      }
    }
    const int signal = common::stop_signal();
    if ((signal || !stop_reason.empty()) && stop_now(runs)) {
      if (dp.writes()) checkpoint_unfinished(config, runs, options);
      dp.barrier();
      if (signal) {
        throw common::Interrupted(signal, fmt::format("stopped by {} after the step in progress; checkpoints "
                                                      "saved, continue with --resume", ::strsignal(signal)));
      }
      fail_runtime("{}", stop_reason);
    }
  }
  progress.finish();
  dp.log_overlap();
  for (size_t i = 0; i < runs.size(); ++i) summaries[i].steps = runs[i]->step();
  return summaries;
}

}  // namespace mixlora::train
