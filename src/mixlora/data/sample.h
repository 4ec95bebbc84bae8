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
};

struct Batch {
  at::Tensor input_ids;       // [B, T] int64, right-padded with `pad_id`
  at::Tensor attention_mask;  // [B, T] int64, 1 for tokens
  at::Tensor labels;          // [B, T] int64, kIgnoreIndex on padding
  int64_t tokens = 0;         // real tokens in the batch
};

// Right-pads samples to the longest one.
Batch make_batch(const std::vector<const Sample*>& samples, int64_t pad_id);

}  // namespace mixlora::data
