// A Hugging Face tokenizer.json, run the way the Rust `tokenizers` library (0.22) runs it:
//   added tokens are cut out of the raw text (leftmost, longest first), the rest is
//   normalized, added tokens with "normalized": true are cut out of that, the pieces are
//   pre-tokenized into words, each word goes through the BPE model, and the post-processor
//   adds its special tokens (BOS/EOS) when asked.
// Decoding maps ids to tokens (added tokens first) and runs the decoder chain.
// Supported components: hf_normalizers.h, hf_pretokenizers.h, bpe_model.h, hf_decoders.h and
// the post-processors TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing,
// Sequence. Anything else is an InputError naming the component; nothing falls back.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mixlora::data::hf {

class HfTokenizer {
 public:
  // Reads a tokenizer.json file.
  static std::shared_ptr<const HfTokenizer> from_file(const std::string& path);
  // Parses tokenizer.json content; `where` names it in messages.
  static std::shared_ptr<const HfTokenizer> from_json(const nlohmann::json& json,
                                                      const std::string& where);

  ~HfTokenizer();

  // tokenizers' encode(text, add_special_tokens).ids. Text that is not valid UTF-8 is an
  // InputError.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const;
  // tokenizers' decode(ids, skip_special_tokens). An id that is neither in the model nor an
  // added token is an InputError (tokenizers would drop it silently).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const;

  // Added tokens first, then the model's vocabulary.
  std::optional<int64_t> token_to_id(const std::string& token) const;
  std::optional<std::string> id_to_token(int64_t id) const;
  // An added token with "special": true.
  bool is_special(int64_t id) const;
  // Highest id of the vocabulary or the added tokens, plus one.
  int64_t vocab_size() const;
  std::optional<int64_t> unk_id() const;
  // "<0xNN>" ids exist and the model falls back to them.
  bool is_byte(int64_t id) const;

  // What the post-processor puts around a single sequence (add_special_tokens=true).
  const std::vector<int64_t>& special_prefix() const;
  const std::vector<int64_t>& special_suffix() const;

  const std::string& path() const;

  struct Impl;

 private:
  explicit HfTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixlora::data::hf
