// tokenizer.json (src/mixlora/data/hf_tokenizer.h) against the Rust `tokenizers` library:
// fixtures made with PyPI tokenizers 0.22.2 for the tiny tokenizers in data/tokenizers/tiny-*
// (tests/reference/make_tokenizer_fixtures.py) and, when ../shared is there, the LLaMA-3.1,
// Qwen3, Gemma-3 and LLaMA-2 fixtures of ../shared/tokenizers (tokenizers 0.22.2, Rust).
#include "mixlora/common/error.h"
#include "mixlora/data/hf_pretokenizers.h"
#include "mixlora/data/hf_regex.h"
#include "mixlora/data/hf_tokenizer.h"
#include "mixlora/data/tokenizer.h"
#include "mixlora/io/json_file.h"
#include "test_helpers.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <functional>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using mixlora::data::Tokenizer;
using mixlora::data::hf::HfTokenizer;
using mixlora::test::TempDir;

namespace {

const std::string kTinyDir = MIXLORA_TEST_SOURCE_DIR "/data/tokenizers";
const std::string kTinyFixtures = MIXLORA_TEST_SOURCE_DIR "/tests/fixtures/tokenizer";
const std::string kShared = MIXLORA_TEST_SHARED_DIR "/tokenizers";

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

// Every fixture row: ids without and with special tokens, and decoding (skip_special=false).
void check_fixture_rows(const HfTokenizer& tok, const std::string& fixture_path) {
  const auto rows = read_jsonl(fixture_path);
  REQUIRE(rows.size() > 50);
  size_t mismatches = 0;
  for (const auto& row : rows) {
    const std::string text = row.at("text");
    const auto want = row.at("ids").get<std::vector<int64_t>>();
    const auto want_special = row.at("ids_special").get<std::vector<int64_t>>();
    const auto ids = tok.encode(text, false);
    const auto ids_special = tok.encode(text, true);
    const std::string decoded = tok.decode(want, false);
    const bool ok = ids == want && ids_special == want_special &&
                    decoded == row.at("decoded").get<std::string>();
    if (!ok && ++mismatches <= 3) {
      INFO("text: " << nlohmann::json(text).dump() << "\nours:   " << nlohmann::json(ids).dump()
                    << "\nwanted: " << nlohmann::json(want).dump() << "\ndecoded: "
                    << nlohmann::json(decoded).dump() << "\nwanted: " << row.at("decoded").dump());
      CHECK(ok);
    }
  }
  INFO(fixture_path);
  CHECK(mismatches == 0);
}

nlohmann::json tiny_bpe(const nlohmann::json& model_changes = nlohmann::json::object()) {
  nlohmann::json model = {
      {"type", "BPE"},
      {"dropout", nullptr},
      {"unk_token", "<unk>"},
      {"fuse_unk", true},
      {"byte_fallback", false},
      {"ignore_merges", false},
      {"merges", {"a b"}},
      {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"ab", 3}, {"abab", 4}, {" ", 5}, {"c", 6}}}};
  model.update(model_changes);
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", model}};
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const mixlora::InputError& e) {
    return e.what();
  }
  return "no InputError";
}

}  // namespace

TEST_CASE("tokenizer.json: tiny byte-level and Metaspace tokenizers match PyPI tokenizers",
          "[hf_tokenizer]") {
  for (const std::string name : {"tiny-bytelevel", "tiny-metaspace"}) {
    const auto tok = HfTokenizer::from_file(kTinyDir + "/" + name + "/tokenizer.json");
    check_fixture_rows(*tok, kTinyFixtures + "/" + name + ".jsonl");
  }
}

TEST_CASE("tokenizer.json: the Tokenizer API of a model directory with tokenizer.json",
          "[hf_tokenizer]") {
  // tiny-bytelevel: the post-processor adds <|bos|>; tokenizer_config.json names EOS and PAD.
  const auto byte_level = Tokenizer::from_model_dir(kTinyDir + "/tiny-bytelevel");
  CHECK(byte_level.is_tokenizer_json());
  CHECK(byte_level.bos_id() == 0);
  CHECK(byte_level.eos_id() == 1);
  CHECK(byte_level.pad_id() == 2);
  CHECK(byte_level.unk_id() == -1);
  CHECK(byte_level.add_bos_default());
  CHECK_FALSE(byte_level.add_eos_default());
  CHECK(byte_level.vocab_size() == 423);
  CHECK(byte_level.piece(422) == "<mask>");
  CHECK(byte_level.piece_to_id("<think>") == 420);
  for (const auto& row : read_jsonl(kTinyFixtures + "/tiny-bytelevel.jsonl")) {
    const std::string text = row.at("text");
    INFO(text);
    const auto ids = row.at("ids").get<std::vector<int64_t>>();
    CHECK(byte_level.encode(text) == row.at("ids_special").get<std::vector<int64_t>>());
    CHECK(byte_level.encode(text, false, false) == ids);
    CHECK(byte_level.decode(ids) == row.at("decoded_skip").get<std::string>());
  }

  // tiny-metaspace: the post-processor adds <s> ... </s>, tokenizer_config.json turns EOS off.
  const auto metaspace = Tokenizer::from_model_dir(kTinyDir + "/tiny-metaspace");
  CHECK(metaspace.bos_id() == 1);
  CHECK(metaspace.eos_id() == 2);
  CHECK(metaspace.unk_id() == 0);
  CHECK(metaspace.pad_id() == -1);
  CHECK(metaspace.add_bos_default());
  CHECK_FALSE(metaspace.add_eos_default());
  const auto tab = metaspace.piece_to_id("<0x09>");
  REQUIRE(tab);
  CHECK(metaspace.is_byte(*tab));
  CHECK_FALSE(metaspace.is_byte(1));
  for (const auto& row : read_jsonl(kTinyFixtures + "/tiny-metaspace.jsonl")) {
    const std::string text = row.at("text");
    INFO(text);
    const auto ids = row.at("ids").get<std::vector<int64_t>>();
    CHECK(metaspace.encode(text, true, true) == row.at("ids_special").get<std::vector<int64_t>>());
    auto bos_only = ids;
    bos_only.insert(bos_only.begin(), 1);
    CHECK(metaspace.encode(text) == bos_only);
  }
  // clean_up_tokenization_spaces (true here), as transformers' decode applies it.
  CHECK(metaspace.decode(metaspace.encode("Yes , it is n't here .")) == "Yes, it isn't here.");
  REQUIRE_INPUT_ERROR(metaspace.decode({100000}),
                      Contains("100000") && Contains("outside the vocabulary"));
}

TEST_CASE("tokenizer.json: BOS/EOS/PAD from config.json when the tokenizer files name none",
          "[hf_tokenizer]") {
  TempDir dir;
  fs::copy_file(kTinyDir + "/tiny-bytelevel/tokenizer.json", dir.path / "tokenizer.json");
  mixlora::test::write_file((dir.path / "config.json").string(),
                            R"({"bos_token_id": 0, "eos_token_id": [1, 2], "pad_token_id": null})");
  const auto tok = Tokenizer::from_model_dir(dir.str());
  CHECK(tok.bos_id() == 0);
  CHECK(tok.eos_id() == 1);  // the first of a list
  CHECK(tok.pad_id() == -1);
  CHECK(tok.add_bos_default());
  mixlora::test::write_file((dir.path / "tokenizer_config.json").string(),
                            R"({"eos_token": "<|pad|>", "add_bos_token": false})");
  const auto configured = Tokenizer::from_model_dir(dir.str());
  CHECK(configured.eos_id() == 2);
  CHECK_FALSE(configured.add_bos_default());
  CHECK(configured.encode("ab") ==
        Tokenizer::from_model_dir(kTinyDir + "/tiny-bytelevel").encode("ab", false, false));
  mixlora::test::write_file((dir.path / "tokenizer_config.json").string(),
                            R"({"eos_token": "<none>"})");
  REQUIRE_INPUT_ERROR(Tokenizer::from_model_dir(dir.str()),
                      Contains("eos_token") && Contains("<none>"));
}

TEST_CASE("tokenizer.json: BPE unk, fuse_unk, ignore_merges and added tokens with lstrip/rstrip",
          "[hf_tokenizer]") {
  // Expected ids from PyPI tokenizers 0.22.2 on the same JSON.
  using Ids = std::vector<int64_t>;
  auto make = [](const nlohmann::json& json) { return HfTokenizer::from_json(json, "test"); };
  CHECK(make(tiny_bpe())->encode("abxyab", false) == Ids{3, 0, 3});
  CHECK(make(tiny_bpe({{"fuse_unk", false}}))->encode("abxyab", false) == Ids{3, 0, 0, 3});
  CHECK(make(tiny_bpe({{"unk_token", nullptr}}))->encode("abxyab", false) == Ids{3, 3});
  CHECK(make(tiny_bpe())->encode("abab", false) == Ids{3, 3});
  CHECK(make(tiny_bpe({{"ignore_merges", true}}))->encode("abab", false) == Ids{4});
  CHECK(make(tiny_bpe())->decode({3, 0, 3}, false) ==
        "ab <unk> ab");  // no decoder: joined with spaces
  auto json = tiny_bpe();
  json["added_tokens"] = {{{"id", 6},
                           {"content", "c"},
                           {"single_word", false},
                           {"lstrip", true},
                           {"rstrip", true},
                           {"normalized", false},
                           {"special", true}}};
  const auto stripping = make(json);
  CHECK(stripping->encode("ab  c  ab", false) == Ids{3, 6, 3});
  CHECK(stripping->encode("ab c", false) == Ids{3, 6});
  REQUIRE_INPUT_ERROR(stripping->encode(std::string("a\xff"), false), Contains("not valid UTF-8"));
}

TEST_CASE("tokenizer.json: Split behaviors match tokenizers' SplitDelimiterBehavior",
          "[hf_tokenizer]") {
  using mixlora::data::hf::SplitBehavior;
  // PyPI tokenizers: Split(pattern="b", behavior, invert).pre_tokenize_str("abbcab ba").
  const std::string text = "abbcab ba";
  const auto matches = mixlora::data::hf::find_all_literal(text, "b");
  auto words = [&](SplitBehavior behavior, bool invert) {
    std::vector<std::string> out;
    for (const auto& [begin, end] :
         mixlora::data::hf::split_ranges(text.size(), matches, behavior, invert)) {
      if (end > begin) out.push_back(text.substr(begin, end - begin));
    }
    return out;
  };
  using W = std::vector<std::string>;
  CHECK(words(SplitBehavior::Removed, false) == W{"a", "ca", " ", "a"});
  CHECK(words(SplitBehavior::Removed, true) == W{"b", "b", "b", "b"});
  CHECK(words(SplitBehavior::Isolated, false) == W{"a", "b", "b", "ca", "b", " ", "b", "a"});
  CHECK(words(SplitBehavior::MergedWithPrevious, false) == W{"ab", "b", "cab", " b", "a"});
  CHECK(words(SplitBehavior::MergedWithPrevious, true) == W{"a", "b", "bca", "b ", "ba"});
  CHECK(words(SplitBehavior::MergedWithNext, false) == W{"a", "b", "bca", "b ", "ba"});
  CHECK(words(SplitBehavior::MergedWithNext, true) == W{"ab", "b", "cab", " b", "a"});
  CHECK(words(SplitBehavior::Contiguous, false) == W{"a", "bb", "ca", "b", " ", "b", "a"});
}

TEST_CASE("tokenizer.json: unsupported components are input errors that name them",
          "[hf_tokenizer]") {
  auto load_error = [](nlohmann::json json) {
    return error_of([&] { HfTokenizer::from_json(json, "tok.json"); });
  };
  auto with = [](const char* key, nlohmann::json value) {
    auto json = tiny_bpe();
    json[key] = std::move(value);
    return json;
  };
  CHECK_THAT(load_error(with("normalizer", {{"type", "Lowercase"}})),
             Contains("tok.json.normalizer") && Contains("\"Lowercase\" is not supported"));
  CHECK_THAT(
      load_error(with("normalizer", {{"type", "Sequence"},
                                     {"normalizers", {{{"type", "NFC"}}, {{"type", "Strip"}}}}})),
      Contains("normalizers[1]") && Contains("\"Strip\""));
  CHECK_THAT(load_error(with("pre_tokenizer", {{"type", "Whitespace"}})),
             Contains("pre-tokenizer \"Whitespace\" is not supported"));
  CHECK_THAT(load_error(with("decoder", {{"type", "WordPiece"}})),
             Contains("decoder \"WordPiece\" is not supported"));
  CHECK_THAT(load_error(with("post_processor", {{"type", "Unknown"}})),
             Contains("post-processor \"Unknown\""));
  CHECK_THAT(load_error(with("truncation", {{"max_length", 8}})),
             Contains("\"truncation\" is not supported"));
  CHECK_THAT(load_error(with(
                 "pre_tokenizer",
                 {{"type", "Split"}, {"pattern", {{"Regex", "(?<!"}}}, {"behavior", "Isolated"}})),
             Contains("pre_tokenizer.pattern") && Contains("regex"));
  auto word_piece = tiny_bpe();
  word_piece["model"]["type"] = "WordPiece";
  CHECK_THAT(load_error(word_piece), Contains("model \"WordPiece\" is not supported"));
  CHECK_THAT(load_error(tiny_bpe({{"dropout", 0.1}})), Contains("dropout"));
  CHECK_THAT(load_error(tiny_bpe({{"merges", {"a x"}}})),
             Contains("merges[0]") && Contains("\"x\" is not in the vocabulary"));
  auto single_word = tiny_bpe();
  single_word["added_tokens"] = {
      {{"id", 6}, {"content", "c"}, {"single_word", true}, {"special", true}}};
  CHECK_THAT(load_error(single_word), Contains("single_word"));
  CHECK_THAT(error_of([] { HfTokenizer::from_file("/nonexistent/tokenizer.json"); }),
             Contains("/nonexistent/tokenizer.json"));
}

// The large real tokenizers of ../shared (CI only).
TEST_CASE("tokenizer.json: LLaMA-3.1, Qwen3, Gemma-3 and LLaMA-2 match Rust tokenizers",
          "[hf_tokenizer][shared]") {
  for (const std::string name : {"llama3_1", "qwen3", "gemma3", "llama2"}) {
    const std::string dir = kShared + "/hf-" + name;
    if (!mixlora::test::have_or_skip(dir + "/tokenizer.json", "../shared/tokenizers/hf-" + name))
      return;
    const auto tok = Tokenizer::from_model_dir(dir);
    REQUIRE(tok.is_tokenizer_json());
    const HfTokenizer& hf = *tok.tokenizer_json();
    check_fixture_rows(hf, kShared + "/fixtures/hf-" + name + ".jsonl");
    // The Tokenizer API's default encode is tokenizers' add_special_tokens=True for all four.
    for (const auto& row : read_jsonl(kShared + "/fixtures/hf-" + name + ".jsonl")) {
      INFO(name << ": " << row.at("text").dump());
      CHECK(tok.encode(row.at("text").get<std::string>()) ==
            row.at("ids_special").get<std::vector<int64_t>>());
    }
  }
}

// Regenerates the tiny fixtures with PyPI tokenizers and compares them with the committed ones.
TEST_CASE("tokenizer.json: committed fixtures equal a fresh PyPI tokenizers run",
          "[hf_tokenizer][reference]") {
  const char* python = std::getenv("MIXLORA_TOKENIZERS_PYTHON");
  if (python == nullptr || *python == '\0') {
    std::cout
        << "skipped: needs MIXLORA_TOKENIZERS_PYTHON (the venv of scripts/setup-tokenizers-venv.sh)"
        << std::endl;
    return;
  }
  TempDir out;
  const std::string command = std::string("\"") + python +
                              "\" " MIXLORA_TEST_SOURCE_DIR
                              "/tests/reference/make_tokenizer_fixtures.py --out " +
                              out.str();
  REQUIRE(std::system(command.c_str()) == 0);
  for (const std::string name : {"tiny-bytelevel", "tiny-metaspace"}) {
    INFO(name);
    CHECK(mixlora::test::slurp(out.str() + "/" + name + ".jsonl") ==
          mixlora::test::slurp(kTinyFixtures + "/" + name + ".jsonl"));
  }
}
