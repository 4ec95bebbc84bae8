// The tokenizer of a Hugging Face model directory: tokenizer.json when the directory has one
// (hf_tokenizer.h: the Rust `tokenizers` pipeline), else the SentencePiece tokenizer.model,
// with tokenizer_config.json / special_tokens_map.json / added_tokens.json / config.json for
// BOS, EOS, PAD and whether BOS/EOS are added (docs/tokenizers.md).
//
// libsentencepiece is never linked into this library: its embedded protobuf crashes next to
// LibTorch's. The work is done by libmixlora_spm_shim.so, loaded once per process with
// dlmopen() into a link namespace of its own (see spm_shim.cpp, DESIGN-NOTES.md).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixlora::data {

namespace hf {
class HfTokenizer;
}

class Tokenizer {
 public:
  // DIR/tokenizer.json, else DIR/tokenizer.model, with DIR's special-token files. A directory
  // with neither is an InputError that points to --prompt-ids.
  static Tokenizer from_model_dir(const std::string& dir);
  // True when DIR has tokenizer.json or tokenizer.model (text can be tokenized).
  static bool model_dir_has_tokenizer(const std::string& dir);
  // A bare SentencePiece model: special tokens and add_bos/add_eos are the model's own and
  // the Hugging Face LlamaTokenizer defaults.
  static Tokenizer from_file(const std::string& model_path);

  // Text to ids plus BOS/EOS. SentencePiece: like `spm_encode --output_format=id`; special-token
  // strings inside the text ("<s>") are plain text. tokenizer.json: like tokenizers'
  // encode(text, add_special_tokens=False); added and special tokens inside the text are
  // matched (as transformers does). Asking for a BOS/EOS the tokenizer does not have is an
  // InputError.
  std::vector<int64_t> encode(const std::string& text, bool add_bos, bool add_eos) const;
  // With add_bos_default() / add_eos_default().
  std::vector<int64_t> encode(const std::string& text) const;
  // Ids to text, skipping BOS, EOS and PAD (tokenizer.json: every special added token, and
  // clean_up_tokenization_spaces when tokenizer_config.json asks; HF skip_special_tokens). An
  // id outside the vocabulary is an InputError (a model/tokenizer mismatch).
  std::string decode(const std::vector<int64_t>& ids) const;

  // The piece of one id ("▁Hello", "<0x0A>"); InputError outside [0, vocab_size()).
  std::string piece(int64_t id) const;
  // The id of a piece or added token, if the vocabulary has it.
  std::optional<int64_t> piece_to_id(const std::string& piece) const;
  // True for byte-fallback pieces ("<0xE2>").
  bool is_byte(int64_t id) const;

  // SentencePiece pieces plus added tokens (added_tokens.json, added_tokens_decoder) that
  // lie beyond them, like len() of a HF tokenizer.
  int64_t vocab_size() const;
  // Special ids from the config files when they name a token, else the model's own.
  // -1 when there is none: LLaMA models define no PAD; batching masks padded positions,
  // so callers may pad with any id (eos_id() or 0) when pad_id() is -1.
  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t unk_id() const;
  int64_t pad_id() const;
  // tokenizer_config.json add_bos_token / add_eos_token; when absent, SentencePiece: the HF
  // LlamaTokenizer defaults (true / false), tokenizer.json: what its post-processor adds.
  // add_bos_default() is false when there is no BOS token.
  bool add_bos_default() const;
  bool add_eos_default() const;

  // tokenizer.model or tokenizer.json.
  const std::string& model_path() const;
  bool is_tokenizer_json() const;
  // The tokenizer.json pipeline itself (tokenizers' encode/decode with every option), or
  // nullptr for SentencePiece.
  const hf::HfTokenizer* tokenizer_json() const;

  // Defined in tokenizer.cpp; public only so that its helpers can name it.
  struct State;

 private:
  explicit Tokenizer(std::shared_ptr<const State> state);
  // Shared by copies: the loaded model is read-only after construction.
  std::shared_ptr<const State> state_;
};

namespace detail {
// Paths tried for libmixlora_spm_shim.so, in order: $MIXLORA_SPM_SHIM alone when set (a file,
// or a directory holding the library); else <exe dir>/../lib, <exe dir>, the build's lib dir.
// Exposed for tests.
std::vector<std::string> spm_shim_candidates();
}  // namespace detail

}  // namespace mixlora::data
