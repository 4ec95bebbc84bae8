#include "mixlora/train/trainer.h"

#include "mixlora/common/error.h"
#include "mixlora/common/signals.h"
#include "mixlora/io/atomic_file.h"
#include "mixlora/model/decoder.h"
#include "mixlora/tasks/causal_lm.h"
#include "mixlora/tasks/classification.h"
#include "mixlora/train/adapter_run.h"
#include "mixlora/train/progress.h"
#include "mixlora/train/step_guard.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

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

// Losses of one adapter's rows in a fused batch, as they enter its backward pass.
struct StepLosses {
  at::Tensor total;  // task + router losses
  double task = 0.0, aux = 0.0, z = 0.0;
  int64_t tokens = 0;
};

StepLosses adapter_losses(const model::Decoder& decoder, const adapters::Adapter& adapter,
                          const at::Tensor& hidden, const data::Batch& batch,
                          const adapters::AdapterSegment& segment,
                          const std::vector<moe::RouterRecord>& records) {
  auto rows = [&](const at::Tensor& t) { return t.narrow(0, segment.row_begin, segment.row_count); };
  auto h = rows(hidden);
  auto labels = rows(batch.labels);
  auto class_labels = rows(batch.class_labels);
  StepLosses out;
  out.tokens = rows(batch.attention_mask).sum().item<int64_t>();  // tokens processed, for tokens/s
  at::Tensor task = at::zeros({}, h.options().dtype(at::kFloat));
  // Causal-LM rows (any labelled position) and classification rows may mix in a multi-task adapter.
  if (labels.ne(data::kIgnoreIndex).any().item<bool>()) {
    auto loss = tasks::causal_lm_loss(decoder.logits(h), labels);
    task = task + loss.mean();
  }
  if (adapter.classifier.defined() && class_labels.ge(0).any().item<bool>()) {
    auto logits = tasks::classification_logits(h, rows(batch.last_token), adapter.classifier);
    task = task + tasks::classification_loss(logits, class_labels);
  }
  const auto router = adapters::router_losses(adapter, records);
  out.total = task + router.aux + router.z;
  out.task = task.item<double>();
  out.aux = router.aux.item<double>();
  out.z = router.z.item<double>();
  return out;
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
                                  const TrainerOptions& options) {
  create_output(config, options);
  const model::Decoder decoder(base);
  // Accepted config keys whose features have not landed yet: say so instead of pretending.
  if (config.gradient_checkpointing) spdlog::warn("gradient_checkpointing is not implemented yet; training without it");
  if (config.eval_every > 0) spdlog::warn("eval_every is not implemented yet; run mixlora-eval on the saved adapters");
  std::vector<std::unique_ptr<AdapterRun>> runs;
  std::vector<AdapterSummary> summaries(config.adapters.size());
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
      remove_incomplete(dir.string());
      if (const auto checkpoint = newest_checkpoint(dir.string())) {
        run.restore(load_checkpoint(*checkpoint, run.mutable_adapter(), base));
        trim_metrics(dir, run.step());
        spdlog::info("adapter '{}': resumed from {} (step {})", ac.name, *checkpoint, run.step());
      } else {
        trim_metrics(dir, 0);  // killed before its first checkpoint: start over
      }
    }
  }

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

    // One fused batch: each active adapter's next micro-batch, one after the other.
    std::vector<const data::Sample*> rows;
    std::vector<adapters::AdapterSegment> segments;
    for (size_t i : active) {
      auto micro = runs[i]->next_micro_batch();
      segments.push_back({&runs[i]->adapter(), static_cast<int64_t>(rows.size()),
                          static_cast<int64_t>(micro.size()), runs[i]->generator()});
      rows.insert(rows.end(), micro.begin(), micro.end());
    }
    const auto batch = data::make_batch(rows, options.pad_id);
    const auto mask = batch.attention_mask.to(base.device);
    adapters::AdapterHooks hooks(segments, mask, /*training=*/true, options.ffn_path);
    const auto hidden = decoder.hidden_states(batch.input_ids, mask, nullptr, &hooks);

    at::Tensor total;
    std::vector<StepLosses> losses;
    for (size_t k = 0; k < active.size(); ++k) {
      auto& run = *runs[active[k]];
      losses.push_back(adapter_losses(decoder, run.adapter(), hidden, batch, segments[k], hooks.router_records(k)));
      auto scaled = losses.back().total / static_cast<double>(run.accumulation());
      total = total.defined() ? total + scaled : scaled;
    }
    total.backward();

    for (size_t k = 0; k < active.size(); ++k) {
      auto& run = *runs[active[k]];
      progress.add_micro_batch(active[k], losses[k].task, losses[k].aux, losses[k].z, losses[k].tokens);
      guard.add_loss(active[k], losses[k].task + losses[k].aux + losses[k].z);
      if (!run.finish_micro_batch()) continue;
      const double lr = run.current_lr();
      const double grad_norm = run.optimizer_step(config.max_grad_norm, guard.loss_poisoned(active[k]));
      progress.finish_step(active[k], lr, grad_norm, summaries[active[k]]);
      if (guard.finish_step(active[k], run.name(), run.step(), std::isnan(grad_norm)) && stop_reason.empty()) {
        stop_reason = fmt::format("adapter '{}': {} non-finite steps in a row (up to step {}); stopped with its "
                                  "last finite weights checkpointed (lower lr, set max_grad_norm, or raise "
                                  "max_nonfinite_steps)", run.name(), guard.in_row(active[k]), run.step());
      }
      const auto dir = adapter_dir(config, run.name()).string();
      if (run.done()) {
        run.adapter().save(dir, options.base_model_name, options.export_bin);
        spdlog::info("adapter '{}': finished after {} steps, saved to {}", run.name(), run.step(), dir);
      } else if (config.save_step > 0 && run.step() % config.save_step == 0) {
        const auto path = save_checkpoint(dir, run.step(), run.adapter(), options.base_model_name,
                                          run.checkpoint_content());
        spdlog::info("adapter '{}': checkpoint {}", run.name(), path);
      }
    }
    const int signal = common::stop_signal();
    if ((signal || !stop_reason.empty()) && stop_now(runs)) {
      checkpoint_unfinished(config, runs, options);
      if (signal) {
        throw common::Interrupted(signal, fmt::format("stopped by {} after the step in progress; checkpoints "
                                                      "saved, continue with --resume", ::strsignal(signal)));
      }
      fail_runtime("{}", stop_reason);
    }
  }
  progress.finish();
  for (size_t i = 0; i < runs.size(); ++i) summaries[i].steps = runs[i]->step();
  return summaries;
}

}  // namespace mixlora::train
