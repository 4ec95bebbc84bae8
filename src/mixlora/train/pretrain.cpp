#include "mixlora/train/pretrain.h"

#include "mixlora/common/error.h"
#include "mixlora/model/decoder.h"
#include "mixlora/tasks/causal_lm.h"
#include "mixlora/train/adapter_run.h"
#include "mixlora/train/optimizer.h"
#include "mixlora/train/scheduler.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

namespace mixlora::train {

namespace fs = std::filesystem;

namespace {

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  const auto s = static_cast<int64_t>(seconds);
  return fmt::format("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

// tokenizer.model and its Hugging Face companions, from a directory or next to a model file.
void copy_tokenizer_files(const std::string& source, const fs::path& out) {
  if (source.empty()) return;
  const fs::path src = fs::is_directory(source) ? fs::path(source) : fs::path(source).parent_path();
  std::error_code ec;
  for (const char* name :
       {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    fs::path from = src / name;
    if (std::string(name) == "tokenizer.model" && !fs::is_directory(source)) from = source;
    if (std::string(name) == "tokenizer.json" && !fs::is_directory(source))
      continue;  // a tokenizer.model was named
    if (!fs::exists(from) || fs::equivalent(from.parent_path(), out, ec)) continue;
    fs::copy_file(from, out / name, fs::copy_options::overwrite_existing, ec);
    if (ec) fail_runtime("{}: cannot copy to {}: {}", from.string(), out.string(), ec.message());
  }
}

}  // namespace

std::vector<at::Tensor> make_trainable(model::BaseModel& model) {
  if (model.dtype != at::kFloat) {
    fail_input("full-parameter training needs fp32 weights, got {} (use --dtype fp32)",
               c10::toString(model.dtype));
  }
  std::vector<at::Tensor> params;
  auto own = [&](at::Tensor& t) {
    if (!t.defined()) return;
    t = t.detach().clone().requires_grad_(true);
    params.push_back(t);
  };
  const bool tied = model.lm_head.defined() && model.lm_head.is_same(model.embed_tokens);
  own(model.embed_tokens);
  for (auto& layer : model.layers) {
    own(layer.input_norm);
    own(layer.post_attention_norm);
    own(layer.attention_output_norm);     // Gemma-2/3 only
    own(layer.feed_forward_output_norm);  // Gemma-2/3 only
    auto& a = layer.attention;
    for (auto* t : {&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &a.q_bias, &a.k_bias, &a.v_bias,
                    &a.o_bias, &a.q_norm, &a.k_norm})
      own(*t);
    for (auto* t : {&layer.mlp.gate_proj, &layer.mlp.up_proj, &layer.mlp.down_proj}) own(*t);
  }
  own(model.final_norm);
  if (tied) {
    model.lm_head = model.embed_tokens;
  } else {
    own(model.lm_head);
  }
  return params;
}

PretrainSummary pretrain(const config::TrainConfig& config, model::BaseModel& model,
                         std::vector<data::Sample> samples, const PretrainOptions& options) {
  if (config.adapters.size() != 1) {
    fail_input("--pretrain takes its settings from exactly one lora[] entry, got {}",
               config.adapters.size());
  }
  const auto& ac = config.adapters[0];
  if (samples.empty()) fail_input("pretraining: no training samples");
  for (const auto& s : samples) {
    if (s.class_label >= 0)
      fail_input("pretraining: task '{}' is not causal LM (use task_name \"casual\")",
                 ac.task_name);
  }

  const auto params = make_trainable(model);
  // Weight decay on matrices (projections, embeddings) only, never on norm weights and biases.
  std::vector<at::Tensor> matrices, vectors;
  int64_t num_params = 0;
  for (const auto& p : params) {
    (p.dim() >= 2 ? matrices : vectors).push_back(p);
    num_params += p.numel();
  }
  std::vector<std::unique_ptr<Optimizer>> optimizers;
  if (ac.optim == config::Optimizer::sgd) {
    optimizers.push_back(make_sgd(matrices, {ac.momentum, ac.weight_decay}));
    optimizers.push_back(make_sgd(vectors, {ac.momentum, 0.0}));
  } else {
    optimizers.push_back(make_adamw(matrices, {0.9, 0.999, 1e-8, ac.weight_decay}));
    optimizers.push_back(make_adamw(vectors, {0.9, 0.999, 1e-8, 0.0}));
  }

  // Steps, schedule and data order exactly as an adapter of the same settings (AdapterRun).
  const int64_t accumulation = ac.batch_size / ac.micro_batch_size;
  const int64_t micro_batches =
      (static_cast<int64_t>(samples.size()) + ac.micro_batch_size - 1) / ac.micro_batch_size;
  const int64_t steps_per_epoch = (micro_batches + accumulation - 1) / accumulation;
  Schedule schedule;
  schedule.type = ac.scheduler_type;
  schedule.total_steps = steps_per_epoch * ac.num_epochs;
  schedule.warmup_steps = warmup_steps(ac.warmup_steps, ac.warmup_ratio, schedule.total_steps);
  const uint64_t data_seed = adapter_seed(config.seed, ac.name) + 2;

  int64_t sample_tokens = 0;
  for (const auto& s : samples) sample_tokens += static_cast<int64_t>(s.input_ids.size());
  spdlog::info(
      "pretraining all {} parameters: {} samples ({} tokens), {} steps ({} epochs, batch {} = {} x "
      "{}), "
      "{} lr {:.2e} {}",
      num_params, samples.size(), sample_tokens, schedule.total_steps, ac.num_epochs, ac.batch_size,
      accumulation, ac.micro_batch_size, config::optimizer_name(ac.optim), ac.lr,
      config::scheduler_type_name(ac.scheduler_type));
  if (config.save_step < schedule.total_steps)
    spdlog::debug("pretraining writes no checkpoints (save_step ignored)");

  fs::path out;
  if (!options.output_dir.empty()) {
    out = options.output_dir;
    fs::create_directories(out);
    std::ofstream(out / "metrics.jsonl", std::ios::trunc);
  }

  const model::Decoder decoder(model);
  PretrainSummary summary;
  const auto start = std::chrono::steady_clock::now();
  double window_loss = 0.0;
  int64_t window_micro = 0;
  bool first_logged = false;
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < ac.num_epochs; ++epoch) {
    std::vector<int64_t> order(samples.size());
    std::iota(order.begin(), order.end(), 0);
    if (ac.group_by_length) {
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return samples[a].input_ids.size() > samples[b].input_ids.size();
      });
    } else {
      std::mt19937_64 rng(data_seed + static_cast<uint64_t>(epoch));
      std::shuffle(order.begin(), order.end(), rng);
    }
    int64_t micro_step = 0;
    for (size_t cursor = 0; cursor < order.size(); cursor += ac.micro_batch_size) {
      std::vector<const data::Sample*> rows;
      for (size_t i = cursor; i < std::min(order.size(), cursor + ac.micro_batch_size); ++i)
        rows.push_back(&samples[order[i]]);
      const auto batch = data::make_batch(rows, options.pad_id);
      const auto mask = batch.attention_mask.to(model.device);
      const auto hidden = decoder.hidden_states(batch.input_ids.to(model.device), mask);
      const auto loss =
          tasks::causal_lm_loss(decoder.logits(hidden), batch.labels.to(model.device));
      const auto mean = loss.mean();
      (mean / static_cast<double>(accumulation)).backward();
      window_loss += mean.item<double>();
      ++window_micro;
      summary.tokens += loss.count.item<int64_t>();

      const bool epoch_end = cursor + ac.micro_batch_size >= order.size();
      if (++micro_step < accumulation && !epoch_end) continue;
      micro_step = 0;

      const double lr = ac.lr * lr_factor(schedule, step);
      const double norm = clip_grad_norm(params, config.max_grad_norm);
      if (std::isfinite(norm)) {
        for (auto& o : optimizers) o->step(lr);
      } else {
        spdlog::warn("step {}: gradients not finite, step skipped", step + 1);
      }
      for (auto& o : optimizers) o->zero_grad();
      ++step;

      const bool done = step == schedule.total_steps;
      if (step % std::max<int64_t>(1, config.log_every) != 0 && !done) continue;
      const double mean_loss =
          window_loss / static_cast<double>(std::max<int64_t>(1, window_micro));
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double tokens_per_s = elapsed > 0 ? static_cast<double>(summary.tokens) / elapsed : 0.0;
      const double eta =
          elapsed / static_cast<double>(step) * static_cast<double>(schedule.total_steps - step);
      if (!first_logged) summary.first_loss = mean_loss;
      first_logged = true;
      summary.last_loss = mean_loss;
      spdlog::info(
          "{} | step {}/{} | epoch {} | loss {:.4f} | lr {:.3e} | grad {:.3f} | {:.0f} tok/s | {} "
          "elapsed | ETA {}",
          ac.name, step, schedule.total_steps, epoch + 1, mean_loss, lr, norm, tokens_per_s,
          clock_text(elapsed), clock_text(eta));
      if (!out.empty()) {
        const nlohmann::json record = {
            {"adapter", ac.name},
            {"step", step},
            {"total_steps", schedule.total_steps},
            {"epoch", epoch + (epoch_end ? 1 : 0)},
            {"loss", mean_loss},
            {"lr", lr},
            {"grad_norm", std::isfinite(norm) ? nlohmann::json(norm) : nlohmann::json(nullptr)},
            {"tokens_per_s", tokens_per_s},
            {"elapsed_s", elapsed}};
        std::ofstream(out / "metrics.jsonl", std::ios::app) << record.dump() << "\n";
      }
      window_loss = 0.0;
      window_micro = 0;
    }
  }
  summary.steps = step;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!out.empty()) {
    model::save_base_model(model, out.string());
    copy_tokenizer_files(options.tokenizer_source, out);
    spdlog::info("pretraining finished after {} steps ({} tokens, {}), model saved to {}", step,
                 summary.tokens, clock_text(summary.seconds), out.string());
  }
  return summary;
}

}  // namespace mixlora::train
