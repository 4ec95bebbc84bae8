// Dataset readers and task formatting (SPEC section 6) against the real LLaMA-2 tokenizer:
// templates, masking, truncation, the multiple-choice formats of MoE-PEFT, classification,
// GLUE, pre-tokenized rows, and the bad-row errors with their file:line.
#include "mixlora/common/error.h"
#include "mixlora/config/train_config.h"
#include "mixlora/data/dataset.h"
#include "mixlora/data/multiple_choice.h"
#include "mixlora/data/pretokenized.h"
#include "mixlora/data/prompt_template.h"
#include "mixlora/data/tokenizer.h"
#include "test_helpers.h"

#include <nlohmann/json.hpp>

#include <fstream>

using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;
using mixlora::InputError;
using mixlora::config::AdapterConfig;
using mixlora::data::DatasetOptions;
using mixlora::data::kIgnoreIndex;
using mixlora::data::Sample;
using mixlora::data::Tokenizer;
using mixlora::test::TempDir;
using Ids = std::vector<int64_t>;

namespace {

const std::string kCompat = MIXLORA_TEST_SOURCE_DIR "/data/moe-peft";
const std::string kDummy = kCompat + "/dummy_data.json";
const std::string kFixtures = MIXLORA_TEST_SOURCE_DIR "/tests/fixtures/data";

const Tokenizer& llama2() {
  static const Tokenizer tokenizer =
      Tokenizer::from_file(MIXLORA_TEST_SOURCE_DIR "/data/tokenizers/llama2/tokenizer.model");
  return tokenizer;
}

// BOS + text, as MoE-PEFT encodes with LLaMA's tokenizer (no EOS by default).
Ids enc(const std::string& text) { return llama2().encode(text, true, false); }

AdapterConfig adapter(const std::string& task, std::vector<std::string> data) {
  AdapterConfig a;
  a.name = "test";
  a.task_name = task;
  a.data = std::move(data);
  return a;
}

DatasetOptions cutoff(int64_t n, bool skip = false) {
  DatasetOptions o;
  o.cutoff_len = n;
  o.skip_bad_rows = skip;
  return o;
}

mixlora::data::TaskData load_one(const std::string& task, const std::string& path,
                                 const DatasetOptions& o = cutoff(512),
                                 const Tokenizer* tokenizer = &llama2()) {
  auto a = adapter(task, {path});
  auto out = mixlora::data::load_task_data(a, tokenizer, o);
  REQUIRE(out.size() == 1);
  return out[0];
}

Ids masked_prefix(const Sample& s) {
  Ids out;
  for (auto l : s.labels) {
    if (l != kIgnoreIndex) break;
    out.push_back(l);
  }
  return out;
}

// A fresh directory under the system temp dir, removed when the test ends.
nlohmann::json dummy_rows() {
  std::ifstream in(kDummy);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("the LLaMA-2 tokenizer the data tests rely on", "[data]") {
  CHECK(enc("Hello world") == Ids{1, 15043, 3186});
  CHECK(llama2().add_bos_default());
  CHECK_FALSE(llama2().add_eos_default());
}

TEST_CASE("prompt templates: built-ins equal MoE-PEFT's files, placeholders and braces", "[data]") {
  using mixlora::data::load_prompt_template;
  const auto moe_peft = load_prompt_template("");
  CHECK(moe_peft.name == "moe_peft");
  const auto from_file = load_prompt_template(kCompat + "/mlora.json");
  CHECK(from_file.prompt_input == moe_peft.prompt_input);
  CHECK(from_file.prompt_no_input == moe_peft.prompt_no_input);
  CHECK(from_file.response_split == "### Output:");
  const auto alpaca = load_prompt_template("alpaca");
  const auto alpaca_file = load_prompt_template(kCompat + "/alpaca.json");
  CHECK(alpaca.prompt_input == alpaca_file.prompt_input);
  CHECK(alpaca.prompt_no_input == alpaca_file.prompt_no_input);
  CHECK(alpaca.response_split == alpaca_file.response_split);

  CHECK(moe_peft.render("Say hi", std::nullopt, std::string("hi")) ==
        "### Instruction:\nSay hi\n\n### Output:\nhi\n");
  CHECK(moe_peft.render("Say hi", std::string("to Bob"), std::nullopt) ==
        "### Instruction:\nSay hi\n\n### Input:\nto Bob\n\n### Output:\n");
  // MoE-PEFT's `if input:` / `if label:`: empty strings count as absent.
  CHECK(moe_peft.render("Say hi", std::string(""), std::string("")) ==
        "### Instruction:\nSay hi\n\n### Output:\n");
  // Values are not formatted again.
  CHECK(moe_peft.render_prompt("{input}", std::string("{instruction}")) ==
        "### Instruction:\n{input}\n\n### Input:\n{instruction}\n\n### Output:\n");

  const auto braces = load_prompt_template(kFixtures + "/template_braces.json");
  CHECK(braces.render_prompt("go", std::string("x")) == "{task} go | x =>");
  CHECK(braces.render_prompt("go", std::nullopt) == "{task} go =>");

  TempDir dir;
  const auto unknown = dir.write(
      "t.json",
      R"({"prompt_input": "{instruction} {question}", "prompt_no_input": "{instruction}"})");
  REQUIRE_INPUT_ERROR(
      load_prompt_template(unknown),
      Equals(unknown + ": prompt_input: unknown placeholder {question} (known here: {input}, "
                       "{instruction}; write {{ and }} for literal braces)"));
  const auto no_input = dir.write(
      "n.json", R"({"prompt_input": "{instruction} {input}", "prompt_no_input": "{input}"})");
  REQUIRE_INPUT_ERROR(load_prompt_template(no_input),
                      Contains("prompt_no_input: unknown placeholder {input}"));
  const auto single =
      dir.write("s.json", R"({"prompt_input": "a } b", "prompt_no_input": "{instruction}"})");
  REQUIRE_INPUT_ERROR(load_prompt_template(single), Contains("prompt_input: single '}'"));
  const auto missing = dir.write("m.json", R"({"prompt_input": "{instruction}"})");
  REQUIRE_INPUT_ERROR(load_prompt_template(missing),
                      Contains("m.json: prompt_no_input: missing field"));
  REQUIRE_INPUT_ERROR(
      load_prompt_template("vicuna"),
      Equals(
          "prompt \"vicuna\": neither a template file nor a built-in template (moe_peft, alpaca)"));
}

TEST_CASE("causal LM: dummy_data.json rendered with the moe_peft template", "[data]") {
  const auto rows = dummy_rows();
  const std::string instruction = rows[0]["instruction"];
  const std::string output = rows[0]["output"];
  const std::string rendered =
      "### Instruction:\n" + instruction + "\n\n### Output:\n" + output + "\n";
  const Ids expected = enc(rendered);

  const auto data = load_one("casual", kDummy);
  CHECK(data.task_name == "casual");
  CHECK(data.path == kDummy);
  CHECK(data.skipped == 0);
  REQUIRE(data.samples.size() == rows.size());
  const auto& s = data.samples[0];
  CHECK(s.input_ids == expected);
  CHECK(s.labels == expected);
  CHECK(s.input_ids[0] == 1);
  CHECK(s.input_ids.back() == 13);  // the "\n" MoE-PEFT appends after the output (<0x0A>); no EOS
  CHECK(s.class_label == -1);
  CHECK(s.choice_token_ids.empty());
  // "### Instruction:" starts every sample the same way.
  CHECK(Ids(s.input_ids.begin(), s.input_ids.begin() + 6) ==
        Ids(expected.begin(), expected.begin() + 6));

  SECTION("the template file mlora.json and the name moe_peft give the same samples") {
    for (const std::string& prompt :
         std::vector<std::string>{"moe_peft", kCompat + "/mlora.json"}) {
      auto a = adapter("causal", {kDummy});
      a.prompt = prompt;
      CHECK(mixlora::data::load_task_data(a, &llama2(), cutoff(512))[0].samples[0].input_ids ==
            expected);
    }
  }
  SECTION("alpaca") {
    auto a = adapter("", {kDummy});
    a.prompt = kCompat + "/alpaca.json";
    const auto alpaca = mixlora::data::load_task_data(a, &llama2(), cutoff(512))[0];
    CHECK(alpaca.samples[0].input_ids == enc("Below is an instruction that describes a task. Write "
                                             "a response that appropriately completes the "
                                             "request.\n\n### Instruction:\n" +
                                             instruction + "\n\n### Response:\n" + output + "\n"));
  }
  SECTION("train_on_inputs false masks exactly the prompt") {
    auto a = adapter("casual", {kDummy});
    a.train_on_inputs = false;
    const auto masked = mixlora::data::load_task_data(a, &llama2(), cutoff(512))[0];
    const auto& m = masked.samples[0];
    const Ids prompt = enc("### Instruction:\n" + instruction + "\n\n### Output:\n");
    CHECK(m.input_ids == expected);
    CHECK(masked_prefix(m).size() == prompt.size());
    CHECK(Ids(expected.begin(), expected.begin() + prompt.size()) == prompt);
    CHECK(Ids(m.labels.begin() + prompt.size(), m.labels.end()) ==
          Ids(expected.begin() + prompt.size(), expected.end()));
  }
  SECTION("cutoff_len truncates") {
    const auto cut = load_one("casual", kDummy, cutoff(16));
    CHECK(cut.samples[0].input_ids == Ids(expected.begin(), expected.begin() + 16));
    CHECK(cut.samples[0].labels == cut.samples[0].input_ids);
    for (const auto& sample : cut.samples) CHECK(sample.input_ids.size() <= 16);
  }
  SECTION("a prompt that fills cutoff_len leaves nothing to learn") {
    auto a = adapter("casual", {kDummy});
    a.train_on_inputs = false;
    const size_t prompt = enc("### Instruction:\n" + instruction + "\n\n### Output:\n").size();
    REQUIRE(prompt == 25);
    REQUIRE_INPUT_ERROR(
        mixlora::data::load_task_data(a, &llama2(), cutoff(25)),
        Equals(kDummy +
               ":2: prompt of 25 tokens leaves no room for the answer within cutoff_len 25"));
    // One token of room is enough.
    const auto tight = mixlora::data::load_task_data(a, &llama2(), cutoff(26))[0];
    CHECK(tight.samples[0].input_ids.size() == 26);
    CHECK(tight.samples[0].labels[25] == expected[25]);
    // skip_bad_rows skips them all: nothing usable is still an error.
    REQUIRE_INPUT_ERROR(mixlora::data::load_task_data(a, &llama2(), cutoff(25, true)),
                        Equals(kDummy + ": no usable rows for task casual (64 bad rows skipped)"));
  }
}

TEST_CASE("causal LM: text rows, instruction with input, pre-tokenized rows", "[data]") {
  TempDir dir;
  const auto file =
      dir.write("mix.jsonl",
                "{\"text\": \"Hello world\"}\n"
                "\n"
                "{\"instruction\": \"Translate\", \"input\": \"Hallo\", \"output\": \"Hello\"}\n"
                "{\"input_ids\": [1, 15043, 3186], \"labels\": [-100, -100, 3186]}\n");
  const auto data = load_one("casual", file);
  REQUIRE(data.samples.size() == 3);
  CHECK(data.samples[0].input_ids == Ids{1, 15043, 3186});
  CHECK(data.samples[0].labels == Ids{1, 15043, 3186});
  CHECK(data.samples[1].input_ids ==
        enc("### Instruction:\nTranslate\n\n### Input:\nHallo\n\n### Output:\nHello\n"));
  CHECK(data.samples[2].input_ids == Ids{1, 15043, 3186});
  CHECK(data.samples[2].labels == Ids{-100, -100, 3186});

  SECTION("pre-tokenized rows pass through without a tokenizer") {
    const auto pre = load_one("casual", kFixtures + "/pretokenized.jsonl", cutoff(512), nullptr);
    REQUIRE(pre.samples.size() == 2);
    CHECK(pre.samples[0].input_ids == Ids{1, 15043, 3186, 2});
    CHECK(pre.samples[0].labels == Ids{1, 15043, 3186, 2});
    CHECK(pre.samples[1].labels == Ids{-100, 15043, 3186});
    // and are truncated to cutoff_len like text
    const auto cut = load_one("casual", kFixtures + "/pretokenized.jsonl", cutoff(2), nullptr);
    CHECK(cut.samples[0].input_ids == Ids{1, 15043});
    CHECK(cut.samples[1].labels == Ids{-100, 15043});
  }
  SECTION("text needs a tokenizer, even with skip_bad_rows") {
    REQUIRE_INPUT_ERROR(
        load_one("casual", file, cutoff(512, true), nullptr),
        Equals(file + ":1: this row is text, but the model has no tokenizer.json or "
                      "tokenizer.model to tokenize it: give "
                      "pre-tokenized rows {\"input_ids\": [...], \"labels\"?: [...]}"));
  }
  SECTION("ids must exist in the model") {
    auto o = cutoff(512);
    o.vocab_size = 3000;
    REQUIRE_INPUT_ERROR(
        load_one("casual", kFixtures + "/pretokenized.jsonl", o, nullptr),
        Equals(kFixtures +
               "/pretokenized.jsonl:1: input_ids: token id 15043 is outside the vocabulary "
               "[0, 3000) (position 1)"));
    REQUIRE_INPUT_ERROR(
        load_one("casual", file, o),
        Equals(file + ":1: token id 15043 from the tokenizer is outside the model's vocabulary "
                      "[0, 3000) (does the tokenizer belong to this model?)"));
  }
}

TEST_CASE("multiple choice: MoE-PEFT's prompts and answer words for all 8 tasks", "[data]") {
  struct Case {
    std::string task, file, prompt;
    std::vector<std::string> choices;
    int64_t answer;
    Ids choice_ids;
  };
  const Ids ABCD = {319, 350, 315, 360};  // "▁A" "▁B" "▁C" "▁D"
  const std::vector<Case> cases = {
      {"arc-e",
       "arc.jsonl",
       "Please choose the correct answer to the question: Which tool is best for measuring the "
       "mass of a rock? "
       "(A) a ruler (B) a balance (C) a thermometer (D) a stopwatch\nAnswer:",
       {"A", "B", "C", "D"},
       1,
       ABCD},
      {"arc-c",
       "arc.jsonl",
       "Please choose the correct answer to the question: Which tool is best for measuring the "
       "mass of a rock? "
       "(A) a ruler (B) a balance (C) a thermometer (D) a stopwatch\nAnswer:",
       {"A", "B", "C", "D"},
       1,
       ABCD},
      {"boolq",
       "boolq.jsonl",
       "Please answer the following question with true or false: is the sun a star?\nAnswer:",
       {"true", "false"},
       0,
       {1565, 2089}},
      {"obqa",
       "obqa.jsonl",
       "Please choose the correct answer to the question: A magnet will stick to (A) a wooden "
       "spoon (B) an iron nail "
       "(C) a glass cup (D) a rubber ball\nAnswer:",
       {"A", "B", "C", "D"},
       1,
       ABCD},
      {"piqa",
       "piqa.jsonl",
       "Below is a common task along with two possible solutions labeled (A) and (B). Please "
       "select the appropriate "
       "solution to achieve the task:\nTo keep bread fresh longer,\n\n(A) store it in a sealed "
       "bag.\n(B) leave it in "
       "the sun.\n\nCorrect solution:",
       {"A", "B"},
       0,
       {319, 350}},
      {"siqa",
       "siqa.jsonl",
       "Please choose the correct answer to the question.\nQuestion: Tracy forgot her umbrella and "
       "got caught in the "
       "rain. How would Tracy feel afterwards?\n(A) dry and warm\n(B) wet and annoyed\n(C) proud "
       "of herself\nAnswer:",
       {"A", "B", "C"},
       1,
       {319, 350, 315}},
      {"hellaswag",
       "hellaswag.jsonl",
       "Please choose the correct ending to complete the given sentence.\nSentence: Making a "
       "sandwich. A man places "
       "two slices of bread on a plate. he\n(A) spreads butter on one slice.\n(B) throws the plate "
       "out of the "
       "window.\n(C) starts to swim laps.\n(D) paints the bread blue.\nAnswer:",
       {"A", "B", "C", "D"},
       0,
       ABCD},
      {"winogrande",
       "winogrande.jsonl",
       "Please choose the correct answer to fill in the blank to complete the given "
       "sentence.\nSentence: The trophy "
       "does not fit in the suitcase because the _ is too big.\n(A) trophy\n(B) suitcase\nAnswer:",
       {"A", "B"},
       0,
       {319, 350}},
  };
  for (const auto& c : cases) {
    INFO(c.task);
    const std::string path = kFixtures + "/" + c.file;
    std::ifstream in(path);
    std::string first;
    std::getline(in, first);
    const auto q =
        mixlora::data::format_multiple_choice(c.task, nlohmann::json::parse(first), path + ":1");
    CHECK(q.prompt == c.prompt);
    CHECK(q.choices == c.choices);
    CHECK(q.answer_index == c.answer);

    const auto data = load_one(c.task, path);
    CHECK(data.task_name == c.task);
    const auto& s = data.samples.at(0);
    const Ids prompt = enc(c.prompt);
    CHECK(s.prompt_length == static_cast<int64_t>(prompt.size()));
    CHECK(s.choice_token_ids == c.choice_ids);
    CHECK(s.answer_index == c.answer);
    CHECK(s.input_ids == enc(c.prompt + " " + c.choices[c.answer]));
    CHECK(Ids(s.input_ids.begin(), s.input_ids.begin() + s.prompt_length) == prompt);
    CHECK(s.input_ids[s.prompt_length] == c.choice_ids[c.answer]);
    CHECK(s.labels == s.input_ids);

    auto a = adapter(c.task, {path});
    a.train_on_inputs = false;
    const auto masked = mixlora::data::load_task_data(a, &llama2(), cutoff(512));
    const auto& m = masked.at(0).samples.at(0);
    CHECK(masked_prefix(m).size() == prompt.size());
    CHECK(Ids(m.labels.begin() + s.prompt_length, m.labels.end()) ==
          Ids(s.input_ids.begin() + s.prompt_length, s.input_ids.end()));
  }

  SECTION("second rows: ARC digit labels, BoolQ false, PIQA label 1") {
    // LLaMA encodes " 1" as "▁" "1": the shared "▁" joins the prompt and the digits are the
    // choices.
    const auto arc = load_one("arc-e", kFixtures + "/arc.jsonl").samples.at(1);
    const std::string prompt =
        "Please choose the correct answer to the question: What do plants need to make their own "
        "food? (1) "
        "sunlight (2) sand (3) salt\nAnswer:";
    CHECK(arc.prompt_length == static_cast<int64_t>(enc(prompt).size()) + 1);
    CHECK(arc.input_ids[arc.prompt_length - 1] == 29871);     // "▁"
    CHECK(arc.choice_token_ids == Ids{29896, 29906, 29941});  // "1" "2" "3"
    CHECK(arc.answer_index == 0);
    CHECK(arc.input_ids == enc(prompt + " 1"));
    CHECK(load_one("boolq", kFixtures + "/boolq.jsonl").samples.at(1).answer_index == 1);
    CHECK(load_one("piqa", kFixtures + "/piqa.jsonl").samples.at(1).answer_index == 1);
  }
  SECTION("a prompt longer than cutoff_len") {
    const auto prompt_tokens = enc(cases[6].prompt).size();
    REQUIRE_INPUT_ERROR(
        load_one("hellaswag", kFixtures + "/hellaswag.jsonl",
                 cutoff(static_cast<int64_t>(prompt_tokens))),
        Equals(kFixtures + "/hellaswag.jsonl:1: prompt of " + std::to_string(prompt_tokens) +
               " tokens leaves no room for the answer within cutoff_len " +
               std::to_string(prompt_tokens)));
    const auto fits = load_one("hellaswag", kFixtures + "/hellaswag.jsonl",
                               cutoff(static_cast<int64_t>(prompt_tokens) + 1));
    CHECK(fits.samples[0].input_ids.size() == prompt_tokens + 1);
  }
  SECTION("pre-tokenized multiple-choice rows") {
    TempDir dir;
    const auto file = dir.write(
        "mc.jsonl",
        "{\"input_ids\": [1, 5, 6, 7], \"prompt_length\": 3, \"choice_token_ids\": [7, 8], "
        "\"answer_index\": 0}\n"
        "{\"input_ids\": [1, 5, 6, 8], \"prompt_length\": 3, \"choice_token_ids\": [7, 7], "
        "\"answer_index\": 1}\n");
    auto a = adapter("piqa", {file});
    a.train_on_inputs = false;
    auto o = cutoff(512, true);
    const auto data = mixlora::data::load_task_data(a, nullptr, o)[0];
    REQUIRE(data.samples.size() == 1);
    CHECK(data.skipped == 1);
    CHECK(data.samples[0].labels == Ids{-100, -100, -100, 7});
    CHECK(data.samples[0].choice_token_ids == Ids{7, 8});
    CHECK(data.samples[0].prompt_length == 3);
    REQUIRE_INPUT_ERROR(
        mixlora::data::load_task_data(a, nullptr, cutoff(512)),
        Equals(file + ":2: choice_token_ids[1]: expected distinct ids, got 7 twice"));
  }
}

TEST_CASE("multiple choice: field errors", "[data]") {
  TempDir dir;
  const auto file = dir.write(
      "arc.jsonl",
      "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, "
      "\"answerKey\": \"C\"}\n"
      "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"A\"]}, "
      "\"answerKey\": \"A\"}\n"
      "{\"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"A\"}\n"
      "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, "
      "\"answerKey\": \"A\"}\n");
  REQUIRE_INPUT_ERROR(
      load_one("arc-c", file),
      Equals(file + ":1: answerKey: expected one of the choice labels (A, B), got \"C\""));
  const auto skipped = load_one("arc-c", file, cutoff(512, true));
  CHECK(skipped.samples.size() == 1);
  CHECK(skipped.skipped == 3);

  const auto row = [](const std::string& text) { return nlohmann::json::parse(text); };
  using mixlora::data::format_multiple_choice;
  REQUIRE_INPUT_ERROR(
      format_multiple_choice(
          "arc-e",
          row(R"({"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "A"]}, "answerKey": "A"})"),
          "f:2"),
      Equals("f:2: choices.label[1]: duplicate label, got \"A\""));
  REQUIRE_INPUT_ERROR(
      format_multiple_choice(
          "arc-e",
          row(R"({"choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"})"),
          "f:3"),
      Equals("f:3: question: missing field, got an object with keys [answerKey, choices]"));
  REQUIRE_INPUT_ERROR(
      format_multiple_choice("boolq", row(R"({"question": "q", "answer": "yes"})"), "f:1"),
      Equals("f:1: answer: expected true or false, got string \"yes\""));
  REQUIRE_INPUT_ERROR(
      format_multiple_choice(
          "siqa",
          row(R"({"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c", "label": "4"})"),
          "f:1"),
      Equals("f:1: label: expected 1 .. 3 (an integer or a string of one), got string \"4\""));
  REQUIRE_INPUT_ERROR(
      format_multiple_choice(
          "winogrande", row(R"({"sentence": "s _", "option1": "a", "option2": "b", "answer": ""})"),
          "f:1"),
      Equals("f:1: answer: expected 1 .. 2 (an integer or a string of one) -- test splits carry no "
             "answers, got string \"\""));
  REQUIRE_INPUT_ERROR(
      format_multiple_choice("piqa", row(R"({"goal": "g", "sol1": 1, "sol2": "b", "label": 0})"),
                             "f:1"),
      Equals("f:1: sol1: expected a string, got number 1"));
  REQUIRE_INPUT_ERROR(
      format_multiple_choice("hellaswag", row(R"({"ctx": "c", "endings": "abc", "label": 0})"),
                             "f:1"),
      Equals("f:1: endings: expected a list of 2 to 26 strings, got string \"abc\""));
}

TEST_CASE("classification: label names and ids, text pairs, GLUE", "[data]") {
  auto a = adapter("classification", {kFixtures + "/classification.jsonl"});
  a.labels = {"negative", "positive"};
  a.num_labels = 2;
  const auto data = mixlora::data::load_task_data(a, &llama2(), cutoff(512))[0];
  REQUIRE(data.samples.size() == 3);
  CHECK(data.samples[0].input_ids == Ids{1, 7027, 14064});
  CHECK(data.samples[0].class_label == 1);
  CHECK(data.samples[0].labels == Ids{-100, -100, -100});
  CHECK(data.samples[1].class_label == 0);
  // (text, text_pair) as Hugging Face's LLaMA tokenizer encodes a pair: BOS a BOS b.
  CHECK(data.samples[2].input_ids == Ids{1, 306, 23289, 372, 1, 7027, 14064});
  CHECK(data.samples[2].class_label == 1);
  CHECK(mixlora::data::load_task_data(a, &llama2(), cutoff(5))[0].samples[2].input_ids ==
        Ids{1, 306, 23289, 372, 1});

  TempDir dir;
  SECTION("label errors") {
    const auto bad = dir.write("bad.jsonl",
                               "{\"text\": \"a\", \"label\": \"neutral\"}\n"
                               "{\"text\": \"a\", \"label\": 2}\n"
                               "{\"text\": \"a\", \"label\": 1.5}\n"
                               "{\"text\": \"\", \"label\": 1}\n"
                               "{\"label\": 1}\n"
                               "{\"text\": \"fine\", \"label\": 1}\n");
    a.data = {bad};
    REQUIRE_INPUT_ERROR(
        mixlora::data::load_task_data(a, &llama2(), cutoff(512)),
        Equals(
            bad +
            ":1: label: unknown label name (known: negative, positive), got string \"neutral\""));
    const auto skipped = mixlora::data::load_task_data(a, &llama2(), cutoff(512, true))[0];
    CHECK(skipped.samples.size() == 1);
    CHECK(skipped.skipped == 5);
    std::vector<std::string> messages;
    for (int line = 2; line <= 5; ++line) {
      std::ifstream in(bad);
      std::string text;
      for (int i = 0; i < line; ++i) std::getline(in, text);
      const auto one = dir.write("one.jsonl", text + "\n");
      a.data = {one};
      try {
        mixlora::data::load_task_data(a, &llama2(), cutoff(512));
        messages.push_back("no error");
      } catch (const InputError& e) {
        messages.push_back(e.what());
      }
    }
    const auto one = dir / "one.jsonl";
    CHECK(messages ==
          std::vector<std::string>{
              one + ":1: label: expected a class id in [0, 2), got 2",
              one + ":1: label: expected a class id in [0, 2) or a label name, got number 1.5",
              one + ":1: text: expected non-empty text, got an empty string",
              one + ":1: text: missing field; expected {text, text_pair?, label} or {input_ids, "
                    "label} for "
                    "classification, got an object with keys [label]",
          });
  }
  SECTION("num_labels without names takes ids only") {
    auto n = adapter("classification", {kFixtures + "/classification.jsonl"});
    n.num_labels = 3;
    REQUIRE_INPUT_ERROR(
        mixlora::data::load_task_data(n, &llama2(), cutoff(512)),
        Equals(kFixtures +
               "/classification.jsonl:1: label: expected a class id in [0, 3) (the adapter "
               "names no labels), got string \"positive\""));
  }
  SECTION("pre-tokenized classification rows") {
    const auto file = dir.write("pre.jsonl", "{\"input_ids\": [1, 5, 6], \"label\": 1}\n");
    a.data = {file};
    const auto pre = mixlora::data::load_task_data(a, nullptr, cutoff(512))[0];
    CHECK(pre.samples[0].input_ids == Ids{1, 5, 6});
    CHECK(pre.samples[0].labels == Ids{-100, -100, -100});
    CHECK(pre.samples[0].class_label == 1);
  }
  SECTION("GLUE") {
    const auto sst2 = load_one("glue:sst2", kFixtures + "/sst2.jsonl");
    REQUIRE(sst2.samples.size() == 2);
    CHECK(sst2.task_name == "glue:sst2");
    CHECK(sst2.samples[0].input_ids == enc("a gorgeous , witty , seductive movie ."));
    CHECK(sst2.samples[0].class_label == 1);
    CHECK(sst2.samples[1].class_label == 0);  // "negative": GLUE's own label names
    const auto mnli = load_one("glue:mnli", kFixtures + "/mnli.jsonl");
    Ids pair = enc("The cat sat on the mat.");
    const Ids second = enc("The mat is empty.");
    pair.insert(pair.end(), second.begin(), second.end());
    CHECK(mnli.samples[1].input_ids == pair);
    CHECK(mnli.samples[1].class_label == 2);
    const auto qqp = load_one("glue:qqp", kFixtures + "/qqp.jsonl");
    CHECK(qqp.samples[0].class_label == 1);
    CHECK(std::count(qqp.samples[0].input_ids.begin(), qqp.samples[0].input_ids.end(), 1) == 2);
    REQUIRE_INPUT_ERROR(
        load_one("glue:mrpc", kFixtures + "/sst2.jsonl"),
        Equals(kFixtures +
               "/sst2.jsonl:1: sentence1: missing field; expected {sentence1, sentence2, "
               "label} or {input_ids, label} for glue:mrpc, got an object with keys [idx, "
               "label, sentence]"));
    const auto test_split = dir.write("test.jsonl", "{\"sentence\": \"a\", \"label\": -1}\n");
    REQUIRE_INPUT_ERROR(
        load_one("glue:sst2", test_split),
        Equals(test_split + ":1: label: expected a class id in [0, 2) (GLUE test splits have no "
                            "labels: -1), got -1"));
    REQUIRE_INPUT_ERROR(
        load_one("glue:stsb", test_split),
        Contains(
            "task glue:stsb: STS-B is a regression task; the GLUE classification tasks are cola"));
    CHECK(mixlora::data::glue_label_names("glue:mnli") ==
          std::vector<std::string>{"entailment", "neutral", "contradiction"});
  }
}

TEST_CASE("row reader: file:line errors and skip_bad_rows", "[data]") {
  TempDir dir;
  SECTION("the error battery") {
    struct Bad {
      std::string row, message;
    };
    const std::vector<Bad> cases = {
        {R"({"output": "x"})",
         "expected {instruction, input?, output?}, {text} or {input_ids, labels?} for a causal LM "
         "task, got an "
         "object with keys [output]"},
        {R"({"instruction": 5})", "instruction: expected a string, got number 5"},
        {R"({"instruction": "a", "input": ["x"]})", "input: expected a string, got array [\"x\"]"},
        {R"({"text": null})",
         "expected {instruction, input?, output?}, {text} or {input_ids, labels?} for a causal LM "
         "task, got an "
         "object with keys [text]"},
        {"{\"instruction\": \"caf\xff\"}",
         "instruction: invalid UTF-8 (byte 0xff), got string \"caf\xEF\xBF\xBD\""},
        {R"({"instruction": "a", "output": "b",})",
         "malformed JSON (syntax error while parsing object key - unexpected '}'; expected string "
         "literal); expected "
         "one JSON object per line or a JSON array of objects"},
        {R"([1, 2])", "expected a JSON object per row, got array [1,2]"},
        {R"({"input_ids": []})", "input_ids: expected a non-empty list of token ids, got array []"},
        {R"({"input_ids": [1, "2"]})",
         "input_ids[1]: expected an integer token id, got string \"2\""},
        {R"({"input_ids": [1, 2], "labels": [1]})",
         "labels: expected as many entries as input_ids (2), got 1"},
        {R"({"input_ids": [1, 2], "labels": [-5, 2]})",
         "labels: token id -5 is negative (position 0; -100 marks ignored positions)"},
        {R"({"input_ids": [1, 2], "labels": [-100, -100]})",
         "labels: nothing to learn within cutoff_len 512: every target position is -100 or the row "
         "has a single "
         "token, got 2 tokens"},
        {R"({"text": ""})", "text: expected non-empty text, got an empty string"},
    };
    for (const auto& c : cases) {
      const auto file = dir.write("bad.jsonl", "{\"text\": \"fine\"}\n\n" + c.row + "\n");
      INFO(c.row);
      REQUIRE_INPUT_ERROR(load_one("casual", file), Equals(file + ":3: " + c.message));
      const auto skipped = load_one("casual", file, cutoff(512, true));
      CHECK(skipped.samples.size() == 1);
      CHECK(skipped.skipped == 1);
    }
  }
  SECTION("JSON arrays report the line where a row starts") {
    const auto file = dir.write("rows.json",
                                "\xEF\xBB\xBF[\n"
                                "  {\"text\": \"one\"},\n"
                                "  {\n"
                                "    \"text\": \"two\"\n"
                                "  },\n"
                                "  {\"text\": \"[not] {a} \\\"bracket\\\"\"},\n"
                                "  {\n"
                                "    \"txt\": \"bad\"\n"
                                "  }\n"
                                "]\n");
    REQUIRE_INPUT_ERROR(load_one("casual", file), StartsWith(file + ":7: expected {instruction"));
    const auto skipped = load_one("casual", file, cutoff(512, true));
    REQUIRE(skipped.samples.size() == 3);
    CHECK(skipped.skipped == 1);
    CHECK(skipped.samples[2].input_ids == enc("[not] {a} \"bracket\""));
    const auto broken = dir.write("broken.json", "[\n {\"text\": \"a\"},\n {\"text\": \"b\"]\n");
    REQUIRE_INPUT_ERROR(load_one("casual", broken, cutoff(512, true)),
                        Equals(broken + ":3: malformed JSON array: ']' does not close '{'"));
    const auto open = dir.write("open.json", "[\n {\"text\": \"a\"},\n");
    REQUIRE_INPUT_ERROR(
        load_one("casual", open),
        Equals(open + ": malformed JSON array: the array opened on line 1 is not closed"));
    const auto trailing = dir.write("trailing.json", "[{\"text\": \"a\"}]\n]\n");
    REQUIRE_INPUT_ERROR(load_one("casual", trailing),
                        Equals(trailing + ":2: unexpected text after the JSON array"));
  }
  SECTION("empty and missing files") {
    const auto empty = dir.write("empty.jsonl", "\n  \n");
    REQUIRE_INPUT_ERROR(load_one("casual", empty),
                        Equals(empty + ": no usable rows for task casual (the file has no rows)"));
    const auto empty_array = dir.write("empty.json", "[ ]");
    REQUIRE_INPUT_ERROR(
        load_one("arc-e", empty_array),
        Equals(empty_array + ": no usable rows for task arc-e (the file has no rows)"));
    REQUIRE_INPUT_ERROR(load_one("casual", dir / "nope.jsonl"),
                        Equals(dir / "nope.jsonl" + ": data file not found"));
  }
}

TEST_CASE("multi-task adapters read one file per task", "[data]") {
  auto a = adapter("arc-e;boolq;casual", {kFixtures + "/arc.jsonl", kFixtures + "/boolq.jsonl",
                                          kFixtures + "/text.jsonl"});
  const auto tasks = mixlora::data::load_task_data(a, &llama2(), cutoff(512));
  REQUIRE(tasks.size() == 3);
  CHECK(tasks[0].task_name == "arc-e");
  CHECK(tasks[0].samples.size() == 2);
  CHECK(tasks[1].task_name == "boolq");
  CHECK(tasks[1].samples[0].choice_token_ids == Ids{1565, 2089});
  CHECK(tasks[2].task_name == "casual");
  CHECK(tasks[2].samples[0].input_ids == Ids{1, 15043, 3186});

  a.data.pop_back();
  REQUIRE_INPUT_ERROR(mixlora::data::load_task_data(a, &llama2(), cutoff(512)),
                      Equals("adapter \"test\": data: needs one file per task of task_name "
                             "\"arc-e;boolq;casual\" (3), "
                             "got 2"));
  a.data.clear();
  REQUIRE_INPUT_ERROR(mixlora::data::load_task_data(a, &llama2(), cutoff(512)),
                      Contains("no data file"));
  // mixlora-eval's form: one file as one task with the adapter's settings.
  const auto one = mixlora::data::load_task_file("winogrande", kFixtures + "/winogrande.jsonl", a,
                                                 &llama2(), cutoff(512));
  CHECK(one.samples.at(0).choice_token_ids == Ids{319, 350});
}
