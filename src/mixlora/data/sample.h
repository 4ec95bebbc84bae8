// A tokenized training or evaluation example, and padding a list of them into a batch.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mixlora::data {

constexpr int64_t kIgnoreIndex = -100;  // label of positions that carry no loss (PyTorch's)

struct Sample {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> labels;  // same length; kIgnoreIndex where no loss is taken
  // Classification: the class index, scored by the head on the last token's hidden state.
  int64_t class_label = -1;
  // Multiple choice (evaluation): the answer is scored at position prompt_length - 1 by the
  // argmax over the logits of choice_token_ids; answer_index is the right choice.
  int64_t prompt_length = 0;
  std::vector<int64_t> choice_token_ids;
  int64_t answer_index = -1;
};

struct Batch {
  at::Tensor input_ids;       // [B, T] int64, right-padded with `pad_id`
  at::Tensor attention_mask;  // [B, T] int64, 1 for tokens
  at::Tensor labels;          // [B, T] int64, kIgnoreIndex on padding
  at::Tensor class_labels;    // [B] int64 (classification), -1 elsewhere
  at::Tensor last_token;      // [B] int64 index of each row's last real token
  int64_t tokens = 0;         // real tokens in the batch
};

// Right-pads samples to the longest one.
Batch make_batch(const std::vector<const Sample*>& samples, int64_t pad_id);

}  // namespace mixlora::data
