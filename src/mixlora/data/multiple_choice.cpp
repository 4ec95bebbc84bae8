#include "mixlora/data/multiple_choice.h"

#include "mixlora/common/error.h"
#include "mixlora/data/pretokenized.h"
#include "mixlora/data/row_reader.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/io/json_file.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <set>

namespace mixlora::data {

namespace {

// The letters MoE-PEFT labels options with: "A", "B", ...
std::vector<std::string> letters(size_t count) {
  std::vector<std::string> out;
  for (size_t i = 0; i < count; ++i) out.emplace_back(1, static_cast<char>('A' + i));
  return out;
}

// An index written as an integer or a string of digits (HF stores SIQA's "1".."3" and
// WinoGrande's "1"/"2" as strings), in first .. first + count - 1; returns it minus `first`.
int64_t index_field(const nlohmann::json& row, const std::string& key, const std::string& where,
                    int64_t first, int64_t count) {
  const auto& value = rows::field(row, key, where);
  std::optional<int64_t> index;
  if (value.is_number_integer()) {
    index = value.get<int64_t>();
  } else if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    if (!s.empty() && s.size() < 10 &&
        std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) {
      index = std::stoll(s);
    }
  }
  if (!index || *index < first || *index >= first + count) {
    const bool empty = value.is_string() && value.get_ref<const std::string&>().empty();
    fail_input("{}: {}: expected {} .. {} (an integer or a string of one){}, got {}", where, key,
               first, first + count - 1,
               empty || (value.is_number_integer() && value.get<int64_t>() < 0)
                   ? " -- test splits carry no answers"
                   : "",
               io::describe(value));
  }
  return *index - first;
}

// ARC / OpenBookQA: choices {text: [...], label: [...]} and answerKey among the labels.
ChoiceQuestion lettered_question(const nlohmann::json& row, const std::string& question_key,
                                 const std::string& where) {
  ChoiceQuestion q;
  q.prompt = "Please choose the correct answer to the question: " +
             rows::string_field(row, question_key, where);
  const auto& choices = rows::field(row, "choices", where);
  if (!choices.is_object()) {
    fail_input("{}: choices: expected an object {{\"text\": [...], \"label\": [...]}}, got {}",
               where, io::describe(choices));
  }
  const auto& texts = rows::field(choices, "text", where + ": choices");
  const auto& labels = rows::field(choices, "label", where + ": choices");
  for (const auto* list : {&texts, &labels}) {
    if (!list->is_array() || list->size() < 2) {
      fail_input("{}: choices.{}: expected a list of at least 2 strings, got {}", where,
                 list == &texts ? "text" : "label", io::describe(*list));
    }
  }
  if (texts.size() != labels.size()) {
    fail_input("{}: choices.label: expected as many labels as choices.text ({}), got {}", where,
               texts.size(), labels.size());
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!texts[i].is_string())
      fail_input("{}: choices.text[{}]: expected a string, got {}", where, i,
                 io::describe(texts[i]));
    if (!labels[i].is_string() || labels[i].get_ref<const std::string&>().empty()) {
      fail_input("{}: choices.label[{}]: expected a non-empty string, got {}", where, i,
                 io::describe(labels[i]));
    }
    const auto& label = labels[i].get_ref<const std::string&>();
    if (!seen.insert(label).second)
      fail_input("{}: choices.label[{}]: duplicate label, got \"{}\"", where, i, label);
    q.prompt += " (" + label + ") " + texts[i].get<std::string>();
    q.choices.push_back(label);
  }
  q.prompt += "\nAnswer:";
  const std::string key = rows::string_field(row, "answerKey", where);
  auto it = std::find(q.choices.begin(), q.choices.end(), key);
  if (it == q.choices.end()) {
    fail_input("{}: answerKey: expected one of the choice labels ({}), got \"{}\"", where,
               fmt::format("{}", fmt::join(q.choices, ", ")), key);
  }
  q.answer_index = it - q.choices.begin();
  return q;
}

ChoiceQuestion boolq(const nlohmann::json& row, const std::string& where) {
  // MoE-PEFT asks the question alone (the passage is not part of its prompt).
  ChoiceQuestion q;
  q.prompt = "Please answer the following question with true or false: " +
             rows::string_field(row, "question", where) + "?\nAnswer:";
  q.choices = {"true", "false"};
  const auto& answer = rows::field(row, "answer", where);
  if (!answer.is_boolean())
    fail_input("{}: answer: expected true or false, got {}", where, io::describe(answer));
  q.answer_index = answer.get<bool>() ? 0 : 1;
  return q;
}

ChoiceQuestion piqa(const nlohmann::json& row, const std::string& where) {
  ChoiceQuestion q;
  q.prompt =
      "Below is a common task along with two possible solutions labeled (A) and (B). Please select "
      "the "
      "appropriate solution to achieve the task:\n" +
      rows::string_field(row, "goal", where) + "\n\n(A) " + rows::string_field(row, "sol1", where) +
      "\n(B) " + rows::string_field(row, "sol2", where) + "\n\nCorrect solution:";
  q.choices = letters(2);
  q.answer_index = index_field(row, "label", where, 0, 2);
  return q;
}

ChoiceQuestion siqa(const nlohmann::json& row, const std::string& where) {
  ChoiceQuestion q;
  q.prompt = "Please choose the correct answer to the question.\nQuestion: " +
             rows::string_field(row, "context", where) + " " +
             rows::string_field(row, "question", where) + "\n(A) " +
             rows::string_field(row, "answerA", where) + "\n(B) " +
             rows::string_field(row, "answerB", where) + "\n(C) " +
             rows::string_field(row, "answerC", where) + "\nAnswer:";
  q.choices = letters(3);
  q.answer_index = index_field(row, "label", where, 1, 3);
  return q;
}

ChoiceQuestion hellaswag(const nlohmann::json& row, const std::string& where) {
  ChoiceQuestion q;
  q.prompt = "Please choose the correct ending to complete the given sentence.\nSentence: ";
  // MoE-PEFT writes "{activity_label}. {ctx}"; rows without activity_label give the context alone.
  if (auto activity = rows::optional_string(row, "activity_label", where))
    q.prompt += *activity + ". ";
  q.prompt += rows::string_field(row, "ctx", where);
  const auto& endings = rows::field(row, "endings", where);
  if (!endings.is_array() || endings.size() < 2 || endings.size() > 26) {
    fail_input("{}: endings: expected a list of 2 to 26 strings, got {}", where,
               io::describe(endings));
  }
  q.choices = letters(endings.size());
  for (size_t i = 0; i < endings.size(); ++i) {
    if (!endings[i].is_string())
      fail_input("{}: endings[{}]: expected a string, got {}", where, i, io::describe(endings[i]));
    q.prompt += "\n(" + q.choices[i] + ") " + endings[i].get<std::string>();
  }
  q.prompt += "\nAnswer:";
  q.answer_index = index_field(row, "label", where, 0, static_cast<int64_t>(endings.size()));
  return q;
}

ChoiceQuestion winogrande(const nlohmann::json& row, const std::string& where) {
  ChoiceQuestion q;
  q.prompt =
      "Please choose the correct answer to fill in the blank to complete the given "
      "sentence.\nSentence: " +
      rows::string_field(row, "sentence", where) + "\n(A) " +
      rows::string_field(row, "option1", where) + "\n(B) " +
      rows::string_field(row, "option2", where) + "\nAnswer:";
  q.choices = letters(2);
  q.answer_index = index_field(row, "answer", where, 1, 2);
  return q;
}

}  // namespace

ChoiceQuestion format_multiple_choice(const std::string& task, const nlohmann::json& row,
                                      const std::string& where) {
  rows::require_object(row, where);
  if (task == "arc-e" || task == "arc-c") return lettered_question(row, "question", where);
  if (task == "obqa") return lettered_question(row, "question_stem", where);
  if (task == "boolq") return boolq(row, where);
  if (task == "piqa") return piqa(row, where);
  if (task == "siqa") return siqa(row, where);
  if (task == "hellaswag") return hellaswag(row, where);
  if (task == "winogrande") return winogrande(row, where);
  fail_input("{}: \"{}\" is not a multiple-choice task", where, task);
}

Sample tokenize_multiple_choice(const ChoiceQuestion& question, const Tokenizer& tokenizer,
                                int64_t cutoff_len, bool train_on_inputs,
                                const std::string& where) {
  const bool bos = tokenizer.add_bos_default();
  const bool eos = tokenizer.add_eos_default();
  std::vector<std::vector<int64_t>> encoded;
  encoded.reserve(question.choices.size());
  for (const auto& choice : question.choices)
    encoded.push_back(tokenizer.encode(question.prompt + " " + choice, bos, eos));

  // The tokens every choice shares: BOS, the prompt and perhaps a common first piece.
  size_t shared = encoded[0].size();
  for (const auto& ids : encoded) {
    size_t n = 0;
    while (n < shared && n < ids.size() && ids[n] == encoded[0][n]) ++n;
    shared = n;
  }
  Sample sample;
  sample.prompt_length = static_cast<int64_t>(shared);
  sample.answer_index = question.answer_index;
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i].size() <= shared) {
      fail_input(
          "{}: choices: answer \"{}\" adds no token after the prompt, so it cannot be scored",
          where, question.choices[i]);
    }
    const int64_t id = encoded[i][shared];
    for (size_t j = 0; j < i; ++j) {
      if (sample.choice_token_ids[j] == id) {
        fail_input(
            "{}: choices: answers \"{}\" and \"{}\" both start with token {} after the prompt, so "
            "they "
            "cannot be told apart",
            where, question.choices[j], question.choices[i], id);
      }
    }
    sample.choice_token_ids.push_back(id);
  }
  if (cutoff_len > 0 && sample.prompt_length >= cutoff_len) {
    fail_input("{}: prompt of {} tokens leaves no room for the answer within cutoff_len {}", where,
               sample.prompt_length, cutoff_len);
  }
  sample.input_ids = encoded[question.answer_index];
  if (cutoff_len > 0 && static_cast<int64_t>(sample.input_ids.size()) > cutoff_len)
    sample.input_ids.resize(cutoff_len);
  sample.labels = sample.input_ids;
  if (!train_on_inputs)
    std::fill(sample.labels.begin(), sample.labels.begin() + sample.prompt_length, kIgnoreIndex);
  return sample;
}

}  // namespace mixlora::data
