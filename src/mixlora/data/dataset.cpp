#include "mixlora/data/dataset.h"

#include "mixlora/common/error.h"
#include "mixlora/config/task_names.h"
#include "mixlora/data/multiple_choice.h"
#include "mixlora/data/pretokenized.h"
#include "mixlora/data/prompt_template.h"
#include "mixlora/data/row_reader.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/io/json_file.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>

namespace mixlora::data {

namespace {

using config::TaskKind;

// A row that needs a tokenizer when the model has none: a setup error, not a bad row, so it is
// not skipped by skip_bad_rows.
struct NeedsTokenizer {
  std::string message;
};

// The fields of each GLUE task: the sentence and, for pairs, the second sentence.
struct GlueFields {
  const char* text;
  const char* text_pair;  // nullptr: single sentence
};

const std::map<std::string, GlueFields>& glue_fields() {
  static const std::map<std::string, GlueFields> fields = {
      {"glue:cola", {"sentence", nullptr}},      {"glue:sst2", {"sentence", nullptr}},
      {"glue:mrpc", {"sentence1", "sentence2"}}, {"glue:rte", {"sentence1", "sentence2"}},
      {"glue:wnli", {"sentence1", "sentence2"}}, {"glue:qqp", {"question1", "question2"}},
      {"glue:qnli", {"question", "sentence"}},   {"glue:mnli", {"premise", "hypothesis"}}};
  return fields;
}

// What one task of an adapter needs to turn rows into samples.
struct TaskContext {
  std::string task;
  TaskKind kind = TaskKind::causal_lm;
  const Tokenizer* tokenizer = nullptr;
  DatasetOptions options;
  bool train_on_inputs = true;
  std::optional<PromptTemplate> prompt;  // causal LM with a tokenizer
  std::vector<std::string> label_names;  // classification
  int64_t num_labels = 0;                // classification
  const GlueFields* glue = nullptr;      // glue:<task>
};

const Tokenizer& need_tokenizer(const TaskContext& ctx, const std::string& where,
                                const char* pretokenized_form) {
  if (ctx.tokenizer) return *ctx.tokenizer;
  throw NeedsTokenizer{
      fmt::format("{}: this row is text, but the model has no tokenizer.json or tokenizer.model to "
                  "tokenize it: give pre-tokenized rows {}",
                  where, pretokenized_form)};
}

std::vector<int64_t> encode(const Tokenizer& tokenizer, const std::string& text) {
  return tokenizer.encode(text, tokenizer.add_bos_default(), tokenizer.add_eos_default());
}

void truncate(Sample& sample, int64_t cutoff_len) {
  if (cutoff_len <= 0 || static_cast<int64_t>(sample.input_ids.size()) <= cutoff_len) return;
  sample.input_ids.resize(cutoff_len);
  sample.labels.resize(cutoff_len);
}

// Ids the tokenizer produced must exist in the model.
void check_vocab(const Sample& sample, const TaskContext& ctx, const std::string& where) {
  const int64_t vocab = ctx.options.vocab_size;
  if (vocab <= 0) return;
  auto check = [&](int64_t id) {
    if (id < 0 || id >= vocab) {
      fail_input(
          "{}: token id {} from the tokenizer is outside the model's vocabulary [0, {}) "
          "(does the tokenizer belong to this model?)",
          where, id, vocab);
    }
  };
  for (auto id : sample.input_ids) check(id);
  for (auto id : sample.choice_token_ids) check(id);
}

// Causal LM samples must leave something to learn: a target (label != -100) at a position >= 1
// (position 0 is never predicted).
void require_targets(const Sample& sample, const TaskContext& ctx, const std::string& where) {
  const bool any = std::any_of(sample.labels.begin() + std::min<size_t>(1, sample.labels.size()),
                               sample.labels.end(), [](int64_t l) { return l != kIgnoreIndex; });
  if (!any) {
    fail_input(
        "{}: labels: nothing to learn{}: every target position is -100 or the row has a single "
        "token, got "
        "{} tokens",
        where,
        ctx.options.cutoff_len > 0 ? fmt::format(" within cutoff_len {}", ctx.options.cutoff_len)
                                   : "",
        sample.input_ids.size());
  }
}

[[noreturn]] void fail_prompt_too_long(const std::string& where, size_t prompt_tokens,
                                       int64_t cutoff_len) {
  fail_input("{}: prompt of {} tokens leaves no room for the answer within cutoff_len {}", where,
             prompt_tokens, cutoff_len);
}

// A field that is present and not null.
bool has(const nlohmann::json& row, const char* key) {
  auto it = row.find(key);
  return it != row.end() && !it->is_null();
}

std::string nonempty_string(const nlohmann::json& row, const char* key, const std::string& where) {
  std::string text = rows::string_field(row, key, where);
  if (text.empty()) fail_input("{}: {}: expected non-empty text, got an empty string", where, key);
  return text;
}

// ---------------------------------------------------------------------------------------------
// causal LM

Sample causal_instruction_row(const nlohmann::json& row, const TaskContext& ctx,
                              const std::string& where) {
  const auto instruction = rows::string_field(row, "instruction", where);
  const auto input = rows::optional_string(row, "input", where);
  const auto output = rows::optional_string(row, "output", where);
  const auto& tokenizer = need_tokenizer(ctx, where, "{\"input_ids\": [...], \"labels\"?: [...]}");
  Sample sample;
  sample.input_ids = encode(tokenizer, ctx.prompt->render(instruction, input, output));
  sample.labels = sample.input_ids;
  if (!ctx.train_on_inputs) {
    if (!output || output->empty()) {
      fail_input("{}: output: expected the answer to learn (train_on_inputs is false), got {}",
                 where, output ? "an empty string" : "no output field");
    }
    const auto prompt = tokenizer.encode(ctx.prompt->render_prompt(instruction, input),
                                         tokenizer.add_bos_default(), false);
    // The prompt's tokens as they appear in the full sequence (a piece that merges the end of the
    // prompt with the start of the answer counts as answer).
    size_t masked = 0;
    while (masked < prompt.size() && masked < sample.input_ids.size() &&
           prompt[masked] == sample.input_ids[masked]) {
      ++masked;
    }
    if (ctx.options.cutoff_len > 0 &&
        static_cast<int64_t>(prompt.size()) >= ctx.options.cutoff_len) {
      fail_prompt_too_long(where, prompt.size(), ctx.options.cutoff_len);
    }
    std::fill(sample.labels.begin(), sample.labels.begin() + masked, kIgnoreIndex);
  }
  return sample;
}

Sample causal_row(const nlohmann::json& row, const TaskContext& ctx, const std::string& where) {
  Sample sample;
  if (has(row, "input_ids")) {
    sample = parse_pretokenized_row(row, where, ctx.options.vocab_size);
  } else if (has(row, "instruction")) {
    sample = causal_instruction_row(row, ctx, where);
  } else if (has(row, "text")) {
    const auto text = nonempty_string(row, "text", where);
    sample.input_ids =
        encode(need_tokenizer(ctx, where, "{\"input_ids\": [...], \"labels\"?: [...]}"), text);
    sample.labels = sample.input_ids;
  } else {
    fail_input(
        "{}: expected {{instruction, input?, output?}}, {{text}} or {{input_ids, labels?}} for a "
        "causal LM "
        "task, got {}",
        where, rows::describe_row(row));
  }
  truncate(sample, ctx.options.cutoff_len);
  require_targets(sample, ctx, where);
  return sample;
}

// ---------------------------------------------------------------------------------------------
// classification

int64_t class_label(const nlohmann::json& row, const TaskContext& ctx, const std::string& where) {
  const auto& value = rows::field(row, "label", where);
  if (value.is_number_integer()) {
    const int64_t label = value.get<int64_t>();
    if (label < 0 || label >= ctx.num_labels) {
      fail_input("{}: label: expected a class id in [0, {}){}, got {}", where, ctx.num_labels,
                 label < 0 && ctx.glue ? " (GLUE test splits have no labels: -1)" : "", label);
    }
    return label;
  }
  if (value.is_string()) {
    const auto& name = value.get_ref<const std::string&>();
    auto it = std::find(ctx.label_names.begin(), ctx.label_names.end(), name);
    if (it != ctx.label_names.end()) return it - ctx.label_names.begin();
    if (ctx.label_names.empty()) {
      fail_input("{}: label: expected a class id in [0, {}) (the adapter names no labels), got {}",
                 where, ctx.num_labels, io::describe(value));
    }
    fail_input("{}: label: unknown label name (known: {}), got {}", where,
               fmt::join(ctx.label_names, ", "), io::describe(value));
  }
  fail_input("{}: label: expected a class id in [0, {}) or a label name, got {}", where,
             ctx.num_labels, io::describe(value));
}

Sample classification_row(const nlohmann::json& row, const TaskContext& ctx,
                          const std::string& where) {
  Sample sample;
  if (has(row, "input_ids")) {
    sample.input_ids = parse_pretokenized_row(row, where, ctx.options.vocab_size).input_ids;
  } else {
    const char* text_key = ctx.glue ? ctx.glue->text : "text";
    const char* pair_key = ctx.glue ? ctx.glue->text_pair : "text_pair";
    if (!has(row, text_key)) {
      fail_input(
          "{}: {}: missing field; expected {{{}{}, label}} or {{input_ids, label}} for {}, got {}",
          where, text_key, text_key,
          pair_key ? fmt::format(", {}{}", pair_key, ctx.glue ? "" : "?") : "", ctx.task,
          rows::describe_row(row));
    }
    const auto text = nonempty_string(row, text_key, where);
    std::optional<std::string> pair;
    if (pair_key)
      pair = ctx.glue ? nonempty_string(row, pair_key, where)
                      : rows::optional_string(row, pair_key, where);
    const auto& tokenizer = need_tokenizer(ctx, where, "{\"input_ids\": [...], \"label\": ...}");
    // A pair is encoded as Hugging Face's LLaMA tokenizer encodes (text, text_pair) and as
    // MoE-PEFT encodes its [text, pair] inputs: each part with the special tokens, so
    // BOS text BOS pair for LLaMA.
    sample.input_ids = encode(tokenizer, text);
    if (pair) {
      const auto second = encode(tokenizer, *pair);
      sample.input_ids.insert(sample.input_ids.end(), second.begin(), second.end());
    }
  }
  sample.class_label = class_label(row, ctx, where);
  sample.labels.assign(sample.input_ids.size(), kIgnoreIndex);  // the loss comes from the head
  truncate(sample, ctx.options.cutoff_len);
  return sample;
}

// ---------------------------------------------------------------------------------------------
// multiple choice

int64_t int_field(const nlohmann::json& row, const char* key, const std::string& where) {
  const auto& value = rows::field(row, key, where);
  if (!value.is_number_integer())
    fail_input("{}: {}: expected an integer, got {}", where, key, io::describe(value));
  return value.get<int64_t>();
}

Sample pretokenized_choice_row(const nlohmann::json& row, const TaskContext& ctx,
                               const std::string& where) {
  const bool has_labels = has(row, "labels");
  Sample sample = parse_pretokenized_row(row, where, ctx.options.vocab_size);
  const auto length = static_cast<int64_t>(sample.input_ids.size());
  sample.prompt_length = int_field(row, "prompt_length", where);
  if (sample.prompt_length < 1 || sample.prompt_length > length) {
    fail_input(
        "{}: prompt_length: expected 1 .. {} (the tokens before the answer, BOS included), got {}",
        where, length, sample.prompt_length);
  }
  const auto& choices = rows::field(row, "choice_token_ids", where);
  if (!choices.is_array() || choices.size() < 2) {
    fail_input("{}: choice_token_ids: expected a list of at least 2 token ids, got {}", where,
               io::describe(choices));
  }
  for (size_t i = 0; i < choices.size(); ++i) {
    const auto& v = choices[i];
    const int64_t vocab = ctx.options.vocab_size;
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        (vocab > 0 && v.get<int64_t>() >= vocab)) {
      fail_input("{}: choice_token_ids[{}]: expected a token id{}, got {}", where, i,
                 vocab > 0 ? fmt::format(" in [0, {})", vocab) : "", io::describe(v));
    }
    const int64_t id = v.get<int64_t>();
    if (std::find(sample.choice_token_ids.begin(), sample.choice_token_ids.end(), id) !=
        sample.choice_token_ids.end()) {
      fail_input("{}: choice_token_ids[{}]: expected distinct ids, got {} twice", where, i, id);
    }
    sample.choice_token_ids.push_back(id);
  }
  sample.answer_index = int_field(row, "answer_index", where);
  if (sample.answer_index < 0 || sample.answer_index >= static_cast<int64_t>(choices.size())) {
    fail_input("{}: answer_index: expected 0 .. {}, got {}", where, choices.size() - 1,
               sample.answer_index);
  }
  if (ctx.options.cutoff_len > 0 && sample.prompt_length >= ctx.options.cutoff_len) {
    fail_prompt_too_long(where, sample.prompt_length, ctx.options.cutoff_len);
  }
  if (!has_labels && !ctx.train_on_inputs) {
    std::fill(sample.labels.begin(), sample.labels.begin() + sample.prompt_length, kIgnoreIndex);
  }
  return sample;
}

Sample choice_row(const nlohmann::json& row, const TaskContext& ctx, const std::string& where) {
  Sample sample;
  if (has(row, "input_ids")) {
    sample = pretokenized_choice_row(row, ctx, where);
  } else {
    const auto question = format_multiple_choice(ctx.task, row, where);
    const auto& tokenizer =
        need_tokenizer(ctx, where,
                       "{\"input_ids\": [...], \"prompt_length\": N, \"choice_token_ids\": [...], "
                       "\"answer_index\": i}");
    sample = tokenize_multiple_choice(question, tokenizer, ctx.options.cutoff_len,
                                      ctx.train_on_inputs, where);
  }
  truncate(sample, ctx.options.cutoff_len);
  require_targets(sample, ctx, where);
  return sample;
}

// ---------------------------------------------------------------------------------------------

TaskContext make_context(const std::string& task_id, const config::AdapterConfig& adapter,
                         const Tokenizer* tokenizer, const DatasetOptions& options) {
  TaskContext ctx;
  ctx.task = config::canonical_task(task_id);
  ctx.tokenizer = tokenizer;
  ctx.options = options;
  ctx.train_on_inputs = adapter.train_on_inputs;
  if (ctx.task == "glue:stsb") {
    fail_input("task glue:stsb: STS-B is a regression task; the GLUE classification tasks are {}",
               fmt::join(config::glue_tasks(), ", "));
  }
  const auto kind = config::task_kind(ctx.task);
  if (!kind) {
    fail_input("task \"{}\": unknown task (known: {})", task_id,
               fmt::join(config::known_task_ids(), ", "));
  }
  ctx.kind = *kind;
  if (ctx.kind == TaskKind::causal_lm && tokenizer)
    ctx.prompt = load_prompt_template(adapter.prompt);
  if (ctx.kind == TaskKind::classification) {
    auto glue = glue_fields().find(ctx.task);
    if (glue != glue_fields().end()) {
      ctx.glue = &glue->second;
      ctx.num_labels = *config::glue_num_labels(ctx.task);
      ctx.label_names = adapter.labels.empty() ? glue_label_names(ctx.task) : adapter.labels;
    } else {
      ctx.label_names = adapter.labels;
      ctx.num_labels =
          adapter.labels.empty() ? adapter.num_labels : static_cast<int64_t>(adapter.labels.size());
    }
    if (ctx.num_labels < 2) {
      fail_input(
          "adapter \"{}\": task {} needs \"labels\" (names, in order) or \"num_labels\" >= 2",
          adapter.name, ctx.task);
    }
  }
  return ctx;
}

}  // namespace

std::vector<std::string> glue_label_names(const std::string& task) {
  static const std::map<std::string, std::vector<std::string>> names = {
      {"glue:cola", {"unacceptable", "acceptable"}},
      {"glue:sst2", {"negative", "positive"}},
      {"glue:mrpc", {"not_equivalent", "equivalent"}},
      {"glue:qqp", {"not_duplicate", "duplicate"}},
      {"glue:qnli", {"entailment", "not_entailment"}},
      {"glue:rte", {"entailment", "not_entailment"}},
      {"glue:wnli", {"not_entailment", "entailment"}},
      {"glue:mnli", {"entailment", "neutral", "contradiction"}}};
  auto it = names.find(task);
  return it == names.end() ? std::vector<std::string>{} : it->second;
}

TaskData load_task_file(const std::string& task, const std::string& path,
                        const config::AdapterConfig& adapter, const Tokenizer* tokenizer,
                        const DatasetOptions& options) {
  const TaskContext ctx = make_context(task, adapter, tokenizer, options);
  TaskData data;
  data.task_name = ctx.task;
  data.path = path;
  RowStats stats;
  try {
    stats = for_each_row(path, options.skip_bad_rows,
                         [&](const nlohmann::json& row, const std::string& where) {
                           rows::require_object(row, where);
                           Sample sample;
                           switch (ctx.kind) {
                             case TaskKind::causal_lm: sample = causal_row(row, ctx, where); break;
                             case TaskKind::classification:
                               sample = classification_row(row, ctx, where);
                               break;
                             case TaskKind::multiple_choice:
                               sample = choice_row(row, ctx, where);
                               break;
                           }
                           check_vocab(sample, ctx, where);
                           data.samples.push_back(std::move(sample));
                         });
  } catch (const NeedsTokenizer& e) {
    throw InputError(e.message);
  }
  data.skipped = stats.skipped;
  if (data.samples.empty()) {
    fail_input("{}: no usable rows for task {}{}", path, ctx.task,
               stats.skipped ? fmt::format(" ({} bad rows skipped)", stats.skipped)
                             : " (the file has no rows)");
  }
  return data;
}

namespace {

std::vector<TaskData> load_tasks(const config::AdapterConfig& adapter,
                                 const std::vector<std::string>& files, const char* key,
                                 const Tokenizer* tokenizer, const DatasetOptions& options) {
  const auto tasks = adapter.tasks();
  if (files.size() != tasks.size()) {
    fail_input("adapter \"{}\": {}: needs one file per task of task_name \"{}\" ({}), got {}",
               adapter.name, key, adapter.task_name, tasks.size(), files.size());
  }
  std::vector<TaskData> out;
  out.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i)
    out.push_back(load_task_file(tasks[i], files[i], adapter, tokenizer, options));
  return out;
}

}  // namespace

std::vector<TaskData> load_task_data(const config::AdapterConfig& adapter,
                                     const Tokenizer* tokenizer, const DatasetOptions& options) {
  if (adapter.data.empty()) {
    fail_input("adapter \"{}\": no data file (set \"data\" in the config or use --set)",
               adapter.name);
  }
  return load_tasks(adapter, adapter.data, "data", tokenizer, options);
}

std::vector<TaskData> load_eval_data(const config::AdapterConfig& adapter,
                                     const Tokenizer* tokenizer, const DatasetOptions& options) {
  if (adapter.eval_data.empty()) return {};
  return load_tasks(adapter, adapter.eval_data, "eval_data", tokenizer, options);
}

}  // namespace mixlora::data
