#include "mixlora/train/pretrain.h"

#include "mixlora/common/error.h"
#include "mixlora/common/signals.h"
#include "mixlora/model/decoder.h"
#include "mixlora/train/optimizer.h"
#include "mixlora/train/progress.h"
#include "mixlora/train/recipe.h"
#include "mixlora/train/step.h"
#include "mixlora/train/step_plan.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace mixlora::train {

namespace fs = std::filesystem;

namespace {

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

const config::AdapterConfig& single_entry(const config::TrainConfig& config) {
  if (config.adapters.size() != 1) {
    fail_input("--pretrain takes its settings from exactly one lora[] entry, got {}",
               config.adapters.size());
  }
  return config.adapters[0];
}

std::vector<data::Sample> causal_lm_samples(std::vector<data::Sample> samples,
                                            const std::string& task_name) {
  if (samples.empty()) fail_input("pretraining: no training samples");
  for (const auto& s : samples) {
    if (s.class_label >= 0) {
      fail_input("pretraining: task '{}' is not causal LM (use task_name \"casual\")", task_name);
    }
  }
  return samples;
}

// Full-parameter training as a recipe (recipe.h): the data side is the adapters' StepPlan, the
// forward and backward pass the adapters' forward_backward on base rows (no adapter), so data
// order, schedule, accumulation and the LM loss are the adapter trainer's. It differs in what
// learns (every weight, two optimizer groups), where it writes (one model directory) and in
// having no checkpoints: a stop signal saves the model as it is.
class PretrainRecipe {
 public:
  PretrainRecipe(const config::TrainConfig& config, model::BaseModel& model,
                 std::vector<data::Sample> samples, const PretrainOptions& options)
      : config_(config),
        entry_(single_entry(config)),
        model_(model),
        options_(options),
        plan_(entry_, causal_lm_samples(std::move(samples), entry_.task_name), config.seed),
        params_(make_trainable(model)),
        decoder_(model) {
    // Weight decay on matrices (projections, embeddings) only, never on norm weights and biases.
    std::vector<at::Tensor> matrices, vectors;
    int64_t num_params = 0;
    for (const auto& p : params_) {
      (p.dim() >= 2 ? matrices : vectors).push_back(p);
      num_params += p.numel();
    }
    if (entry_.optim == config::Optimizer::sgd) {
      optimizers_.push_back(make_sgd(matrices, {entry_.momentum, entry_.weight_decay}));
      optimizers_.push_back(make_sgd(vectors, {entry_.momentum, 0.0}));
    } else {
      optimizers_.push_back(make_adamw(matrices, {0.9, 0.999, 1e-8, entry_.weight_decay}));
      optimizers_.push_back(make_adamw(vectors, {0.9, 0.999, 1e-8, 0.0}));
    }
    spdlog::info(
        "pretraining all {} parameters: {} samples ({} tokens on average), {} steps "
        "({} epochs, batch {} = {} x {}), {} lr {:.2e} {}",
        num_params, plan_.num_samples(), plan_.average_length(), plan_.total_steps(),
        entry_.num_epochs, entry_.batch_size, plan_.accumulation(), entry_.micro_batch_size,
        config::optimizer_name(entry_.optim), entry_.lr,
        config::scheduler_type_name(entry_.scheduler_type));
    if (config.save_step < plan_.total_steps()) {
      spdlog::debug("pretraining writes no checkpoints (save_step ignored)");
    }
    if (!options.output_dir.empty()) {
      out_ = options.output_dir;
      fs::create_directories(out_);
      std::ofstream(out_ / "metrics.jsonl", std::ios::trunc);
    }
  }

  // No checkpoints to continue from; from here a signal stops the run at a step boundary.
  void resume() {
    common::install_stop_handlers();
    start_ = std::chrono::steady_clock::now();
  }

  // One unit of work (the model) while steps are left.
  std::vector<int> next_batch() const {
    return plan_.done() ? std::vector<int>{} : std::vector<int>{0};
  }

  void step(const std::vector<int>&) {
    const auto batch = data::make_batch(plan_.next_micro_batch(), options_.pad_id);
    const std::vector<adapters::AdapterSegment> base_rows = {{nullptr, 0, batch.input_ids.size(0)}};
    const auto losses = forward_backward(decoder_, batch, base_rows, {plan_.accumulation()},
                                         {moe::FfnPath::efficient, config_.gradient_checkpointing});
    window_loss_ += losses[0].task;
    ++window_micro_;
    summary_.tokens += losses[0].tokens;
  }

  // When the micro-batch completed a step: clip, the optimizer step with the scheduled lr, and
  // every log_every steps (and at the end) a log line and a metrics record.
  void after_step(const std::vector<int>&) {
    if (!plan_.finish_micro_batch()) return;
    const double lr = plan_.current_lr();
    const double norm = clip_grad_norm(params_, config_.max_grad_norm);
    if (std::isfinite(norm)) {
      for (auto& o : optimizers_) o->step(lr);
    } else {
      spdlog::warn("step {}: gradients not finite, step skipped", plan_.step() + 1);
    }
    for (auto& o : optimizers_) o->zero_grad();
    const int64_t epoch = plan_.epoch();
    plan_.finish_step();
    if (plan_.step() % std::max<int64_t>(1, config_.log_every) == 0 || plan_.done()) {
      log_window(epoch, lr, norm);
    }
  }

  // A signal at a step boundary: the model as trained so far is saved, then Interrupted.
  void stop_if_requested() {
    const int signal = common::stop_signal();
    if (!signal || plan_.mid_step()) return;
    const auto where = save();
    throw common::Interrupted(
        signal, fmt::format("stopped by {} after step {} of {}; {}", ::strsignal(signal),
                            plan_.step(), plan_.total_steps(),
                            where.empty() ? "nothing written (no output directory)"
                                          : "the model so far is saved in " + where));
  }

  PretrainSummary finish() {
    summary_.steps = plan_.step();
    summary_.seconds = elapsed();
    const auto where = save();
    if (!where.empty()) {
      spdlog::info("pretraining finished after {} steps ({} tokens, {}), model saved to {}",
                   summary_.steps, summary_.tokens, clock_text(summary_.seconds), where);
    }
    return summary_;
  }

 private:
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  void log_window(int64_t epoch, double lr, double norm) {
    const double mean_loss =
        window_loss_ / static_cast<double>(std::max<int64_t>(1, window_micro_));
    const double seconds = elapsed();
    const double tokens_per_s = seconds > 0 ? static_cast<double>(summary_.tokens) / seconds : 0.0;
    const double eta = seconds / static_cast<double>(plan_.step()) *
                       static_cast<double>(plan_.total_steps() - plan_.step());
    if (!first_logged_) summary_.first_loss = mean_loss;
    first_logged_ = true;
    summary_.last_loss = mean_loss;
    const StepLog log{
        entry_.name, plan_.step(), plan_.total_steps(), epoch + 1, plan_.epoch(), mean_loss,
        lr,          norm,         tokens_per_s,        seconds,   eta,           std::nullopt};
    spdlog::info("{}", step_line(log));
    if (!out_.empty()) append_metrics(out_, step_record(log));
    window_loss_ = 0.0;
    window_micro_ = 0;
  }

  // The model and its tokenizer files into the output directory; returns it ("" for none).
  std::string save() const {
    if (out_.empty()) return "";
    model::save_base_model(model_, out_.string());
    copy_tokenizer_files(options_.tokenizer_source, out_);
    return out_.string();
  }

  const config::TrainConfig& config_;
  const config::AdapterConfig& entry_;
  model::BaseModel& model_;
  const PretrainOptions& options_;
  StepPlan plan_;
  std::vector<at::Tensor> params_;
  std::vector<std::unique_ptr<Optimizer>> optimizers_;
  const model::Decoder decoder_;
  fs::path out_;
  std::chrono::steady_clock::time_point start_;
  double window_loss_ = 0.0;
  int64_t window_micro_ = 0;
  bool first_logged_ = false;
  PretrainSummary summary_;
};

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
  PretrainRecipe recipe(config, model, std::move(samples), options);
  return run_recipe(recipe);
}

}  // namespace mixlora::train
