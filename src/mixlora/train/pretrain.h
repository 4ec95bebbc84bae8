// Full-parameter training of a base model (`mixlora-train --pretrain`): every weight of the
// BaseModel learns, on causal-LM rows, with the optimisation settings and data of the config's
// single adapter entry (its LoRA / MixLoRA keys are ignored). Used to pretrain the tiny demo
// model data/tiny-llama on Moby-Dick (scripts/make_tiny_llama.sh) and to continue pretraining
// a checkpoint. docs/pretrain.md describes the mode.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/data/sample.h"
#include "mixlora/model/base_model.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mixlora::train {

struct PretrainOptions {
  // The model directory to write (config.json, model.safetensors, metrics.jsonl, tokenizer
  // files). Empty: nothing is written (tests).
  std::string output_dir;
  // Where tokenizer.model / tokenizer_config.json / special_tokens_map.json are copied from:
  // a directory, or a tokenizer.model file (its siblings come along). Empty: none.
  std::string tokenizer_source;
  int64_t pad_id = 0;
};

struct PretrainSummary {
  int64_t steps = 0;
  int64_t tokens = 0;       // target tokens the loss was taken on
  double first_loss = 0.0;  // mean loss of the first logged window
  double last_loss = 0.0;   // ... and of the last
  double seconds = 0.0;
};

// Makes every tensor of `model` a trainable fp32 leaf (a private copy; tied embeddings stay one
// tensor) and returns them, each once, in a stable order.
std::vector<at::Tensor> make_trainable(model::BaseModel& model);

// Trains every weight of `model` in place on `samples` (causal LM) with config.adapters[0]'s
// optim, lr, weight_decay (matrices only; norms never decay), scheduler_type, warmup_steps /
// warmup_ratio, batch_size, micro_batch_size, num_epochs and group_by_length, and the config's
// seed, max_grad_norm, log_every and gradient_checkpointing, through the adapter trainer's loop
// (recipe.h), data plan and step. Logs like the adapter trainer; with an output_dir, writes
// metrics.jsonl there as it goes and the model (save_base_model + tokenizer files) at the end.
// A SIGINT / SIGTERM finishes the step, saves the model as it is and throws common::Interrupted.
// `model` must be fp32. Throws InputError on an unusable config or data.
PretrainSummary pretrain(const config::TrainConfig& config, model::BaseModel& model,
                         std::vector<data::Sample> samples, const PretrainOptions& options);

}  // namespace mixlora::train
