#include "mixlora/train/trainer.h"

#include "mixlora/common/error.h"
#include "mixlora/eval/evaluator.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/model/decoder.h"
#include "mixlora/train/adapter_run.h"
#include "mixlora/train/data_parallel.h"
#include "mixlora/train/progress.h"
#include "mixlora/train/step.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

namespace mixlora::train {

namespace fs = std::filesystem;

namespace {

fs::path adapter_dir(const config::TrainConfig& config, const std::string& name) {
  return fs::path(config.output_dir) / name;
}

bool is_finished(const fs::path& dir) { return fs::exists(dir / "adapter_model.safetensors"); }

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

// The same scoring as mixlora-eval (dropout off, no gradients) on the adapter's held-out sets.
std::vector<eval::EvalResult> evaluate_run(const model::Decoder& decoder, const AdapterRun& run,
                                           const std::vector<data::TaskData>& sets, int64_t pad_id) {
  std::vector<eval::EvalInput> inputs;
  for (const auto& set : sets) inputs.push_back({&run.adapter(), set.task_name, &set.samples});
  return eval::evaluate(decoder, inputs, run.adapter().config.evaluate_batch_size, pad_id);
}

}  // namespace

void prepare_output(const config::TrainConfig& config, const TrainerOptions& options) {
  std::error_code ec;
  fs::create_directories(config.output_dir, ec);
  if (ec) {
    fail_input("{}: cannot create the output directory: {} (set output_dir or --output-dir)",
               config.output_dir, ec.message());
  }
  const auto probe = fs::path(config.output_dir) / fmt::format(".write-test-{}", ::getpid());
  {
    std::ofstream out(probe);
    if (!out) fail_input("{}: output directory is not writable", config.output_dir);
  }
  fs::remove(probe, ec);
  for (const auto& adapter : config.adapters) {
    const auto dir = adapter_dir(config, adapter.name);
    if (options.overwrite) {
      fs::remove_all(dir, ec);
      continue;
    }
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

std::vector<AdapterSummary> train(const config::TrainConfig& config, const model::BaseModel& base,
                                  std::vector<std::vector<data::Sample>> samples,
                                  const TrainerOptions& options,
                                  const std::vector<std::vector<data::TaskData>>& eval_sets) {
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
      if (const auto checkpoint = newest_checkpoint(dir.string())) {
        run.restore(load_checkpoint(*checkpoint, run.mutable_adapter(), base));
        if (dp.writes()) trim_metrics(dir, run.step());
        spdlog::info("adapter '{}': resumed from {} (step {})", ac.name, *checkpoint, run.step());
      }
    }
  }

  dp.synchronize_start(runs);
  ProgressReporter progress(config, runs);
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
      losses = forward_backward(decoder, batch, segments, accumulation,
                                {options.ffn_path, config.gradient_checkpointing});
    }

    for (size_t k = 0; k < active.size(); ++k) {
      auto& run = *runs[active[k]];
      if (!losses.empty()) {
        dp.add_micro_batch(progress, active[k], losses[k].task, losses[k].aux, losses[k].z, losses[k].tokens);
      }
      if (!run.finish_micro_batch()) continue;
      dp.reduce_step(run, active[k], progress);
      const double lr = run.current_lr();
      const double grad_norm = run.optimizer_step(config.max_grad_norm);
      if (dp.writes()) {
        progress.finish_step(active[k], lr, grad_norm, summaries[active[k]]);
        // Rank 0 alone scores the held-out sets (not sharded: they are small next to training).
        if (const auto* sets = eval_set(active[k]);
            sets && config.eval_every > 0 && (run.step() % config.eval_every == 0 || run.done())) {
          progress.log_eval(active[k], evaluate_run(decoder, run, *sets, options.pad_id));
        }
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
  }
  progress.finish();
  for (size_t i = 0; i < runs.size(); ++i) summaries[i].steps = runs[i]->step();
  return summaries;
}

}  // namespace mixlora::train
