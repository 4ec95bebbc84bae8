// libFuzzer harness: tokenizer.json files and texts (src/mixlora/data/hf_tokenizer.h).
// Byte 0 picks the mode:
//   even: the rest is a model directory's tokenizer.json, loaded through the Tokenizer API
//         (tokenizer.cpp) and, when it loads, used to encode and decode a few fixed texts;
//   odd:  the rest is text for the committed tiny tokenizers (data/tokenizers/tiny-*):
//         encoded with and without special tokens, decoded back, and read as 16-bit ids.
// Loading and encoding must succeed or throw InputError; ids that encode produced must decode.
#include "fuzz_input.h"
#include "mixlora/data/hf_tokenizer.h"
#include "mixlora/data/tokenizer.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace {

using mixlora::data::Tokenizer;
using mixlora::data::hf::HfTokenizer;

const std::vector<std::string>& fixed_texts() {
  static const std::vector<std::string> texts = {"",
                                                 " ",
                                                 "Hello world",
                                                 "  two  spaces\r\n",
                                                 "caf\xC3\xA9 cafe\xCC\x81",
                                                 "<s><|bos|>text</s>",
                                                 "\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80",
                                                 "\xE2\x96\x81x <0x41> <unk>"};
  return texts;
}

void exercise(const HfTokenizer& tok, const std::string& text) {
  mixlora::fuzz::expect_input_errors_only([&] {
    const auto ids = tok.encode(text, false);
    (void)tok.decode(ids, false);  // must not throw: every id came from the vocabulary
    (void)tok.decode(ids, true);
    mixlora::fuzz::expect_input_errors_only([&] { (void)tok.encode(text, true); });
  });
}

void load_directory(const uint8_t* data, size_t size) {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    auto path = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
                ("mixlora-fuzz-hf-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    return path;
  }();
  {
    std::ofstream out(dir / "tokenizer.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  mixlora::fuzz::expect_input_errors_only([&] {
    const auto tokenizer = Tokenizer::from_model_dir(dir.string());
    for (const auto& text : fixed_texts()) {
      exercise(*tokenizer.tokenizer_json(), text);
      mixlora::fuzz::expect_input_errors_only(
          [&] { (void)tokenizer.decode(tokenizer.encode(text)); });
    }
  });
}

void encode_text(const uint8_t* data, size_t size) {
  static const std::vector<std::shared_ptr<const HfTokenizer>> tokenizers = [] {
    std::vector<std::shared_ptr<const HfTokenizer>> loaded;
    for (const char* name : {"tiny-bytelevel", "tiny-metaspace"}) {
      loaded.push_back(HfTokenizer::from_file(std::string(MIXLORA_FUZZ_SOURCE_DIR) +
                                              "/data/tokenizers/" + name + "/tokenizer.json"));
    }
    return loaded;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<int64_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) ids.push_back(data[i] | (data[i + 1] << 8));
  for (const auto& tok : tokenizers) {
    exercise(*tok, text);
    mixlora::fuzz::expect_input_errors_only([&] { (void)tok->decode(ids, false); });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    load_directory(data + 1, size - 1);
  } else {
    encode_text(data + 1, size - 1);
  }
  return 0;
}
