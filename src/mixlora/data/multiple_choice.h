// The multiple-choice QA tasks of MoE-PEFT (arc-e, arc-c, boolq, obqa, piqa, siqa, hellaswag,
// winogrande) read from local JSON/JSONL rows in the fields of the original Hugging Face
// datasets, formatted with MoE-PEFT's prompts (moe_peft/tasks/qa_tasks.py) and answer words.
#pragma once

#include "mixlora/data/sample.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlora::data {

class Tokenizer;

struct ChoiceQuestion {
  std::string prompt;                // ends with "Answer:" ("Correct solution:" for piqa)
  std::vector<std::string> choices;  // answer words: "A", "B", ... / "true", "false" / ARC's labels
  int64_t answer_index = -1;         // the right one
};

// One row of `task` (an id of config::multiple_choice_tasks()). Field errors are InputErrors
// "where: field: what, got found".
ChoiceQuestion format_multiple_choice(const std::string& task, const nlohmann::json& row,
                                      const std::string& where);

// A training sample on prompt + " " + answer word (BOS and EOS as the tokenizer adds them by
// default; truncated to cutoff_len when > 0) that also carries the evaluation fields:
// every choice is encoded as prompt + " " + choice; prompt_length is the number of tokens all
// those encodings share (BOS, the prompt, and a token they all start with, such as the "▁" that
// LLaMA puts before a digit), choice_token_ids are the tokens right after it (must be
// distinct), answer_index the right choice. labels are the input ids, with kIgnoreIndex on the
// first prompt_length positions when !train_on_inputs. A prompt that leaves no room for the
// answer within cutoff_len is an InputError "where: prompt of N tokens leaves no room for the
// answer within cutoff_len M".
Sample tokenize_multiple_choice(const ChoiceQuestion& question, const Tokenizer& tokenizer,
                                int64_t cutoff_len, bool train_on_inputs, const std::string& where);

}  // namespace mixlora::data
