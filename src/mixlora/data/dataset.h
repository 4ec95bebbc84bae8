// Data files to tokenized Samples for training and evaluation (SPEC section 6): one TaskData per
// task of an adapter. Row formats are recognised by their fields, within what the task allows:
//   causal LM ("casual"):   {instruction, input?, output?} rendered with the adapter's prompt
//                           template, {text}, or pre-tokenized {input_ids, labels?}
//   classification:         {text, text_pair?, label} or pre-tokenized {input_ids, label}
//   glue:<task>:            the GLUE fields of the task (sst2 {sentence, label}, mnli {premise,
//                           hypothesis, label}, ...) or pre-tokenized {input_ids, label}
//   multiple choice:        the original dataset's fields (multiple_choice.h) or pre-tokenized
//                           {input_ids, labels?, prompt_length, choice_token_ids, answer_index}
// Text is tokenized as MoE-PEFT does (Hugging Face tokenizer defaults: BOS, and EOS only when
// the tokenizer adds one by default, as LLaMA's does not) and truncated to cutoff_len.
// docs/data-formats.md describes every format with an example.
#pragma once

#include "mixlora/config/train_config.h"
#include "mixlora/data/sample.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mixlora::data {

class Tokenizer;

struct DatasetOptions {
  int64_t cutoff_len =
      256;  // longest sequence, in tokens (longer ones are truncated); <= 0: no limit
  bool skip_bad_rows = false;  // skip and count bad rows instead of failing on the first
  int64_t vocab_size = 0;      // the model's vocabulary: every id must lie below it when > 0
};

struct TaskData {
  std::string task_name;  // canonical task id ("casual", "classification", "arc-e", "glue:sst2")
  std::string path;
  std::vector<Sample> samples;
  int64_t skipped = 0;  // bad rows skipped (skip_bad_rows)
};

// One TaskData per task of the adapter, in order: task_name "a;b" reads data[0] as task a and
// data[1] as task b. `tokenizer` may be null (a model without tokenizer.model): then only
// pre-tokenized rows are accepted. Uses the adapter's prompt, train_on_inputs, labels and
// num_labels. Every bad row is an InputError "file:line: field: what, got found" (or skipped
// and counted with skip_bad_rows); a file without a usable row is an InputError.
std::vector<TaskData> load_task_data(const config::AdapterConfig& adapter,
                                     const Tokenizer* tokenizer, const DatasetOptions& options);

// The same for the adapter's eval_data (held-out files scored during training); empty when
// it has none.
std::vector<TaskData> load_eval_data(const config::AdapterConfig& adapter,
                                     const Tokenizer* tokenizer, const DatasetOptions& options);

// One file read as one task (`task`: any task id; "" / "causal" mean "casual"), with the
// prompt, train_on_inputs and labels of `adapter` (its task_name and data are not used). For
// mixlora-eval's --data / --task.
TaskData load_task_file(const std::string& task, const std::string& path,
                        const config::AdapterConfig& adapter, const Tokenizer* tokenizer,
                        const DatasetOptions& options);

// The class names of "glue:<task>" as the GLUE datasets define them (sst2: negative, positive);
// empty for other tasks. Rows may give these names instead of label ids.
std::vector<std::string> glue_label_names(const std::string& task);

}  // namespace mixlora::data
