#include "mixlora/data/sample.h"

#include <algorithm>

namespace mixlora::data {

Batch make_batch(const std::vector<const Sample*>& samples, int64_t pad_id) {
  int64_t longest = 0;
  for (const auto* s : samples) longest = std::max<int64_t>(longest, s->input_ids.size());
  const int64_t rows = static_cast<int64_t>(samples.size());
  Batch batch;
  batch.input_ids = at::full({rows, longest}, pad_id, at::kLong);
  batch.attention_mask = at::zeros({rows, longest}, at::kLong);
  batch.labels = at::full({rows, longest}, kIgnoreIndex, at::kLong);
  batch.class_labels = at::full({rows}, -1, at::kLong);
  batch.last_token = at::zeros({rows}, at::kLong);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  auto labels = batch.labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < rows; ++b) {
    const auto& s = *samples[b];
    for (size_t t = 0; t < s.input_ids.size(); ++t) {
      ids[b][t] = s.input_ids[t];
      mask[b][t] = 1;
      labels[b][t] = s.labels[t];
    }
    batch.class_labels[b] = s.class_label;
    batch.last_token[b] = static_cast<int64_t>(s.input_ids.size()) - 1;
    batch.tokens += static_cast<int64_t>(s.input_ids.size());
  }
  return batch;
}

}  // namespace mixlora::data
