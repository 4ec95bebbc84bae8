// Bad-input battery, data files: every reader's bad rows, empty files, invalid UTF-8, ids and
// labels out of range, sequences longer than the model allows.
#include "battery.h"

#include "catch.h"

#include <functional>

using namespace mixlora::test;
using namespace mixlora::test::battery;

namespace {

struct Case {
  std::string what;
  std::string task;  // task_name of the adapter ("" = casual)
  std::string data;  // the whole data file
  std::vector<std::string> messages;
};

// Pre-tokenized multiple-choice row (stories260K ids).
std::string mc_row(int64_t answer_index, int64_t prompt_length = 3) {
  return nlohmann::json{{"input_ids", {1, 300, 301, 302, 303}},
                        {"prompt_length", prompt_length},
                        {"choice_token_ids", {302, 310}},
                        {"answer_index", answer_index}}
      .dump();
}

}  // namespace

TEST_CASE("battery: bad data is exit 2, one line naming file:line, no output", "[battery]") {
  const auto good = good_rows(3);
  const std::string long_row = [] {
    nlohmann::json ids = nlohmann::json::array();
    for (int i = 0; i < 600; ++i) ids.push_back(1 + i % 500);
    return nlohmann::json{{"input_ids", ids}}.dump();
  }();
  const std::vector<Case> cases = {
      {"empty file", "", "", {"data.jsonl: no usable rows"}},
      {"only blank lines", "", "\n\n  \n", {"data.jsonl: no usable rows"}},
      {"malformed JSON line",
       "",
       lines({good[0], "{\"input_ids\": [1, 2", good[1]}),
       {"data.jsonl:2: malformed JSON"}},
      {"a number too large for a double",
       "",
       lines({good[0], "{\"input_ids\": [1, 1e999]}"}),
       {"data.jsonl:2: malformed JSON (number overflow parsing '1e999')"}},
      {"a number too large, with invalid UTF-8 (found by fuzz_dataset)",
       "",
       lines({good[0], "{\"input_ids\": [1, 1e999], \"note\": \"caf\xff\"}"}),
       {"data.jsonl:2", "invalid UTF-8"}},
      {"a row that is not an object", "", lines({good[0], "[1, 2, 3]"}), {"data.jsonl:2"}},
      {"invalid UTF-8 in a field",
       "",
       lines({good[0], "{\"input_ids\": [1, 2], \"note\": \"caf\xff\"}"}),
       {"data.jsonl:2", "invalid UTF-8"}},
      {"invalid UTF-8 outside strings",
       "",
       lines({good[0], "{\"input_ids\": [1, 2]}\xfe"}),
       {"data.jsonl:2"}},
      {"missing input_ids",
       "",
       lines({good[0], "{\"labels\": [1, 2]}"}),
       {"data.jsonl:2", "got an object with keys [labels]"}},
      {"input_ids not a list", "", lines({"{\"input_ids\": 5}"}), {"data.jsonl:1: input_ids"}},
      {"empty input_ids", "", lines({"{\"input_ids\": []}"}), {"data.jsonl:1: input_ids"}},
      {"token id past the vocabulary",
       "",
       lines({"{\"input_ids\": [1, 512]}"}),
       {"data.jsonl:1: input_ids: token id 512 is outside the vocabulary [0, 512)"}},
      {"negative token id", "", lines({"{\"input_ids\": [1, -3]}"}), {"data.jsonl:1: input_ids"}},
      {"token id that is a float",
       "",
       lines({"{\"input_ids\": [1, 2.5]}"}),
       {"data.jsonl:1: input_ids"}},
      {"token id of 2^70",
       "",
       lines({"{\"input_ids\": [1, 1180591620717411303424]}"}),
       {"data.jsonl:1: input_ids"}},
      {"label id out of range",
       "",
       lines({"{\"input_ids\": [1, 2], \"labels\": [1, 9999]}"}),
       {"data.jsonl:1: labels"}},
      {"labels of another length",
       "",
       lines({"{\"input_ids\": [1, 2], \"labels\": [1]}"}),
       {"data.jsonl:1: labels"}},
      {"text row without a tokenizer",
       "",
       lines({"{\"text\": \"hello\"}"}),
       {"data.jsonl:1", "tokenizer"}},
      {"a JSON array left open", "", "[" + good[0] + ",\n" + good[1], {"data.jsonl"}},
      {"a JSON array nested 100000 deep", "", nesting_bomb(100000), {"data.jsonl"}},
      {"a row nested 100000 deep",
       "",
       "{\"input_ids\": " + nesting_bomb(100000) + "}\n",
       {"data.jsonl:1"}},
      // Rows longer than cutoff_len are truncated (MoE-PEFT); a cutoff_len past the model's
      // context is refused instead of clamped.
      {"a 600-token row with cutoff_len 1024 on a 512-position model",
       "long",
       lines({long_row}),
       {"config.json: cutoff_len: 1024 is more than the base model's max_position_embeddings "
        "(512)"}},
      {"classification label out of range",
       "classification",
       lines({"{\"input_ids\": [1, 2, 3], \"label\": 2}"}),
       {"data.jsonl:1: label"}},
      {"classification label name unknown",
       "classification",
       lines({"{\"input_ids\": [1, 2, 3], \"label\": \"maybe\"}"}),
       {"data.jsonl:1: label", "maybe"}},
      {"classification row without a label",
       "classification",
       lines({"{\"input_ids\": [1, 2, 3]}"}),
       {"data.jsonl:1"}},
      {"multiple-choice answer_index out of range",
       "arc-e",
       lines({mc_row(2)}),
       {"data.jsonl:1", "answer_index"}},
      {"multiple-choice prompt_length past the row",
       "arc-e",
       lines({mc_row(0, 9)}),
       {"data.jsonl:1", "prompt_length"}},
      {"multiple-choice row without its fields",
       "arc-e",
       lines({"{\"question\": \"q\"}"}),
       {"data.jsonl:1"}},
      {"glue row without its fields",
       "glue:sst2",
       lines({"{\"idx\": 0, \"label\": 1}"}),
       {"data.jsonl:1"}},
      {"glue test split (label -1)",
       "glue:sst2",
       lines({"{\"input_ids\": [1, 2], \"label\": -1}"}),
       {"data.jsonl:1"}},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.what) {
      TrainJob job;
      job.ws.write("data.jsonl", c.data);
      if (c.task == "long") {
        job.config["cutoff_len"] = 1024;
      } else if (c.task == "classification") {
        job.adapter()["task_name"] = "classification";
        job.adapter()["labels"] = {"no", "yes"};
      } else if (!c.task.empty()) {
        job.adapter()["task_name"] = c.task;
      }
      require_clean_input_error(job.run(), c.messages, job.out_dir, c.what);
    }
  }
}

TEST_CASE("battery: data that is not a regular file is exit 2", "[battery]") {
  for (const std::string path : {"/dev/zero", "/tmp"}) {
    DYNAMIC_SECTION(path) {
      TrainJob job;
      job.adapter()["data"] = path;
      require_clean_input_error(job.run(), {path}, job.out_dir, "data = " + path);
    }
  }
}
