// SentencePiece tokenizer through the dlmopen'ed shim, in the same process as LibTorch (the
// point of the shim: linked together, the two protobufs crash). Checked against the real
// LLaMA-2 tokenizer and the spm_encode CLI on multilingual text.
#include "mixlora/common/build_info.h"
#include "mixlora/common/error.h"
#include "mixlora/data/tokenizer.h"

#include "catch.h"
#include "test_helpers.h"
#include <ATen/ATen.h>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace fs = std::filesystem;
using mixlora::InputError;
using mixlora::data::Tokenizer;
using mixlora::test::TempDir;

namespace {

const std::string kLlama2Model = MIXLORA_TEST_SOURCE_DIR "/data/tokenizers/llama2/tokenizer.model";
const std::string kMultilingual =
    MIXLORA_TEST_SOURCE_DIR "/tests/fixtures/tokenizer/multilingual.txt";

// A model directory holding the LLaMA-2 tokenizer.model and the given config files.
void make_model_dir(const TempDir& dir, const std::string& tokenizer_config,
                    const std::string& special_tokens_map = "") {
  fs::create_symlink(kLlama2Model, dir / "tokenizer.model");
  if (!tokenizer_config.empty()) dir.write("tokenizer_config.json", tokenizer_config);
  if (!special_tokens_map.empty()) dir.write("special_tokens_map.json", special_tokens_map);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::optional<std::string> find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (fs::path(dir) / name).string();
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::string run_command(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  const int status = ::pclose(pipe);
  INFO(command);
  REQUIRE(status == 0);
  return out;
}

at::Tensor as_tensor(const std::vector<int64_t>& ids) {
  return at::tensor(at::ArrayRef<int64_t>(ids), at::kLong);
}

}  // namespace

TEST_CASE("llama2 tokenizer encodes Hello world next to a live LibTorch", "[tokenizer]") {
  // LibTorch (and its protobuf) is up before the shim loads.
  const at::Tensor embedding = at::arange(32000 * 4, at::kFloat).reshape({32000, 4});

  const auto tok = Tokenizer::from_file(kLlama2Model);
  const auto ids = tok.encode("Hello world", true, false);
  CHECK(ids == std::vector<int64_t>{1, 15043, 3186});
  CHECK(tok.encode("Hello world") == ids);  // LlamaTokenizer defaults: BOS, no EOS
  CHECK(tok.encode("Hello world", true, true) == std::vector<int64_t>{1, 15043, 3186, 2});
  CHECK(tok.decode(ids) == "Hello world");

  // The ids drive a real tensor op: rows 1, 15043, 3186 of the table start at 4 * id.
  const at::Tensor rows = embedding.index_select(0, as_tensor(ids));
  CHECK(rows.select(1, 0).equal(at::tensor({4.0f, 60172.0f, 12744.0f})));

  CHECK(tok.vocab_size() == 32000);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.unk_id() == 0);
  CHECK(tok.pad_id() == -1);
  CHECK(tok.add_bos_default());
  CHECK_FALSE(tok.add_eos_default());
  CHECK(tok.model_path() == kLlama2Model);
}

TEST_CASE("llama2 tokenizer pieces, byte fallback and decode", "[tokenizer]") {
  const auto tok = Tokenizer::from_file(kLlama2Model);
  CHECK(tok.piece(15043) == "\xE2\x96\x81Hello");  // "▁Hello"
  CHECK(tok.piece(0) == "<unk>");
  CHECK(tok.piece(3) == "<0x00>");
  CHECK(tok.piece_to_id("\xE2\x96\x81Hello") == 15043);
  CHECK(tok.piece_to_id("<unk>") == 0);
  CHECK(tok.piece_to_id("</s>") == 2);
  CHECK_FALSE(tok.piece_to_id("no such piece").has_value());
  CHECK(tok.is_byte(3));
  CHECK(tok.is_byte(258));  // <0xFF>
  CHECK_FALSE(tok.is_byte(259));
  CHECK_FALSE(tok.is_byte(15043));
  CHECK_FALSE(tok.is_byte(-1));
  CHECK_THROWS_AS(tok.piece(32000), InputError);
  CHECK_THROWS_AS(tok.piece(-1), InputError);

  // U+1F3B5 has no piece: byte fallback to <0xF0> <0x9F> <0x8E> <0xB5> (spm_encode agrees).
  const std::string rock = "Rock \xF0\x9F\x8E\xB5";
  CHECK(tok.encode(rock, false, false) == std::vector<int64_t>{8027, 29871, 243, 162, 145, 184});
  CHECK(tok.decode({8027, 29871, 243, 162, 145, 184}) == rock);

  // BOS/EOS are dropped; a negative or too large id is a mismatch, not something to skip.
  CHECK(tok.decode({1, 15043, 3186, 2}) == "Hello world");
  CHECK(tok.decode({}).empty());
  CHECK(tok.encode("", false, false).empty());
  CHECK_THROWS_AS(tok.decode({15043, 32000}), InputError);
  CHECK_THROWS_AS(tok.decode({-1}), InputError);
  // Special-token text is plain text, as in spm_encode.
  CHECK(tok.encode("<s>", false, false) != std::vector<int64_t>{1});
}

TEST_CASE("tokenizer matches spm_encode on multilingual text", "[tokenizer]") {
  const auto spm_encode = find_on_path("spm_encode");
  if (!spm_encode) {
    FAIL(
        "spm_encode not found on PATH: install the Debian package 'sentencepiece' (the "
        "setup script does); it is the reference this test compares against");
  }
  const auto lines = read_lines(kMultilingual);
  REQUIRE(lines.size() == 60);
  // spm_encode reads stdin line by line and prints one line of ids per input line.
  std::vector<std::vector<int64_t>> expected;
  std::stringstream out(run_command(*spm_encode + " --model '" + kLlama2Model +
                                    "' --output_format=id < '" + kMultilingual + "'"));
  for (std::string line; std::getline(out, line);) {
    std::stringstream fields(line);
    expected.emplace_back();
    for (int64_t id; fields >> id;) expected.back().push_back(id);
  }
  REQUIRE(expected.size() == lines.size());

  const auto tok = Tokenizer::from_file(kLlama2Model);
  int64_t byte_pieces = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    INFO("line " << i + 1 << ": " << lines[i]);
    const auto ids = tok.encode(lines[i], false, false);
    CHECK(ids == expected[i]);
    CHECK(as_tensor(ids).equal(as_tensor(expected[i])));
    CHECK(tok.decode(ids) == lines[i]);
    for (const int64_t id : ids) byte_pieces += tok.is_byte(id) ? 1 : 0;
  }
  // The fixture reaches byte fallback (emoji, rare CJK, Georgian, Tamil, ...): 200 byte pieces.
  CHECK(byte_pieces == 200);
}

TEST_CASE("tokenizer copies share one model", "[tokenizer]") {
  std::optional<Tokenizer> copy;
  {
    const auto tok = Tokenizer::from_file(kLlama2Model);
    copy = tok;
  }
  Tokenizer moved = std::move(*copy);
  CHECK(moved.encode("Hello world", true, false) == std::vector<int64_t>{1, 15043, 3186});
}

TEST_CASE("tokenizer_config.json and special_tokens_map.json set special tokens", "[tokenizer]") {
  SECTION("add_eos_token, AddedToken objects, pad <unk>") {
    TempDir dir;
    // The shape of a real LlamaTokenizer config, including its huge model_max_length.
    make_model_dir(dir, R"({
      "add_bos_token": true,
      "add_eos_token": true,
      "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false,
                    "normalized": true, "rstrip": false, "single_word": false},
      "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": false,
                    "normalized": true, "rstrip": false, "single_word": false},
      "unk_token": "<unk>",
      "pad_token": "<unk>",
      "model_max_length": 1000000000000000019884624838656,
      "tokenizer_class": "LlamaTokenizer"
    })");
    const auto tok = Tokenizer::from_model_dir(dir.str());
    CHECK(tok.add_bos_default());
    CHECK(tok.add_eos_default());
    CHECK(tok.pad_id() == 0);
    CHECK(tok.unk_id() == 0);
    CHECK(tok.encode("Hello world") == std::vector<int64_t>{1, 15043, 3186, 2});
    CHECK(tok.decode({1, 15043, 3186, 2, 0, 0}) == "Hello world");
    CHECK(tok.vocab_size() == 32000);
  }
  SECTION("added pad token, special_tokens_map.json overrides tokenizer_config.json") {
    TempDir dir;
    make_model_dir(dir, R"({
      "add_bos_token": false,
      "added_tokens_decoder": {
        "0": {"content": "<unk>", "special": true},
        "1": {"content": "<s>", "special": true},
        "2": {"content": "</s>", "special": true},
        "32000": {"content": "<pad>", "special": true}
      },
      "pad_token": "<unk>",
      "eos_token": "</s>"
    })",
                   R"({"pad_token": {"content": "<pad>"}, "eos_token": "<s>"})");
    const auto tok = Tokenizer::from_model_dir(dir.str());
    CHECK_FALSE(tok.add_bos_default());
    CHECK_FALSE(tok.add_eos_default());
    CHECK(tok.pad_id() == 32000);
    CHECK(tok.eos_id() == 1);
    CHECK(tok.vocab_size() == 32001);
    CHECK(tok.piece(32000) == "<pad>");
    CHECK(tok.piece_to_id("<pad>") == 32000);
    CHECK(tok.encode("Hello world") == std::vector<int64_t>{15043, 3186});
    CHECK(tok.decode({15043, 3186, 32000, 32000}) == "Hello world");
    CHECK(tok.decode({0}) == " \xE2\x81\x87 ");  // <unk> is no longer PAD: " ⁇ "
  }
  SECTION("added_tokens.json and no config: HF defaults") {
    TempDir dir;
    make_model_dir(dir, "");
    dir.write("added_tokens.json", R"({"[PAD]": 32000})");
    const auto tok = Tokenizer::from_model_dir(dir.str());
    CHECK(tok.add_bos_default());
    CHECK_FALSE(tok.add_eos_default());
    CHECK(tok.pad_id() == -1);
    CHECK(tok.vocab_size() == 32001);
    CHECK(tok.decode({15043, 32000}) == "Hello[PAD]");
  }
}

TEST_CASE("tokenizer errors name the file and the problem", "[tokenizer]") {
  auto message_of = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const InputError& e) {
      return e.what();
    }
    return "no InputError";
  };
  TempDir dir;
  using Catch::Matchers::Contains;

  // A model directory without tokenizer.model (like stories260K).
  const std::string missing = message_of([&] { Tokenizer::from_model_dir(dir.str()); });
  CHECK_THAT(missing,
             Contains(dir.str()) && Contains("no tokenizer.model") && Contains("--prompt-ids"));
  CHECK_THAT(message_of([&] { Tokenizer::from_model_dir(dir / "nope"); }),
             Contains("nope") && Contains("not found"));
  CHECK_THAT(message_of([&] { Tokenizer::from_file(dir / "nope.model"); }),
             Contains("nope.model") && Contains("not found"));

  std::string garbage(1000, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919) % 251);
  dir.write("garbage.model", garbage);
  CHECK_THAT(message_of([&] { Tokenizer::from_file(dir / "garbage.model"); }),
             Contains(dir / "garbage.model") && Contains("not a valid SentencePiece model"));
  dir.write("empty.model", "");
  CHECK_THAT(message_of([&] { Tokenizer::from_file(dir / "empty.model"); }),
             Contains(dir / "empty.model") && Contains("not a valid SentencePiece model"));

  SECTION("unknown special token") {
    TempDir model;
    make_model_dir(model, R"({"pad_token": "<pad>"})");
    CHECK_THAT(message_of([&] { Tokenizer::from_model_dir(model.str()); }),
               Contains("tokenizer_config.json: pad_token") && Contains("\"<pad>\""));
  }
  SECTION("wrong types") {
    TempDir model;
    make_model_dir(model, R"({"add_bos_token": "yes"})");
    CHECK_THAT(message_of([&] { Tokenizer::from_model_dir(model.str()); }),
               Contains("tokenizer_config.json: add_bos_token: expected true or false"));
    TempDir model2;
    make_model_dir(model2, "{}", R"({"eos_token": 2})");
    CHECK_THAT(message_of([&] { Tokenizer::from_model_dir(model2.str()); }),
               Contains("special_tokens_map.json: eos_token: expected a token string"));
  }
  SECTION("malformed JSON") {
    TempDir model;
    make_model_dir(model, R"({"add_bos_token": tru)");
    CHECK_THAT(message_of([&] { Tokenizer::from_model_dir(model.str()); }),
               Contains("tokenizer_config.json: invalid JSON"));
  }
}

TEST_CASE("tokenizer shim search order", "[tokenizer]") {
  using mixlora::data::detail::spm_shim_candidates;
  const char* saved = std::getenv("MIXLORA_SPM_SHIM");
  const std::string saved_value = saved ? saved : "";
  ::unsetenv("MIXLORA_SPM_SHIM");

  // Next to the running binary first: build/bin/mixlora-tests -> build/lib.
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  const auto defaults = spm_shim_candidates();
  REQUIRE(defaults.size() >= 2);
  CHECK(defaults[0] == (exe_dir.parent_path() / "lib" / "libmixlora_spm_shim.so").string());
  CHECK(defaults[1] == (exe_dir / "libmixlora_spm_shim.so").string());
  // Last resort, the build's lib dir (the same as defaults[0] for build/bin/mixlora-tests).
  const std::string built =
      (fs::path(MIXLORA_SHIM_BUILD_DIR) / "libmixlora_spm_shim.so").lexically_normal().string();
  CHECK(std::count(defaults.begin(), defaults.end(), built) == 1);
  CHECK(fs::exists(built));

  // The variable alone decides; a directory means the library inside it.
  TempDir dir;
  ::setenv("MIXLORA_SPM_SHIM", dir.path.c_str(), 1);
  CHECK(spm_shim_candidates() == std::vector<std::string>{dir / "libmixlora_spm_shim.so"});
  ::setenv("MIXLORA_SPM_SHIM", "/opt/x/libshim.so", 1);
  CHECK(spm_shim_candidates() == std::vector<std::string>{"/opt/x/libshim.so"});

  if (saved) {
    ::setenv("MIXLORA_SPM_SHIM", saved_value.c_str(), 1);
  } else {
    ::unsetenv("MIXLORA_SPM_SHIM");
  }
}
