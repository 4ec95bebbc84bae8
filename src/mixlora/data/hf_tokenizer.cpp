#include "mixlora/data/hf_tokenizer.h"

#include "mixlora/data/bpe_model.h"
#include "mixlora/data/hf_decoders.h"
#include "mixlora/data/hf_json.h"
#include "mixlora/data/hf_normalizers.h"
#include "mixlora/data/hf_pretokenizers.h"
#include "mixlora/data/hf_text.h"

#include <bitset>
#include <unordered_map>
#include <unordered_set>

namespace mixlora::data::hf {

namespace {

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool special = false, lstrip = false, rstrip = false, normalized = false;
};

// Leftmost-longest matching of added tokens (tokenizers uses Aho-Corasick with
// MatchKind::LeftmostLongest): at the first position where any token starts, the longest
// token that starts there.
class TokenTrie {
 public:
  void add(const std::string& text, int token) {
    if (text.empty()) return;
    int node = 0;
    for (const char c : text) {
      const uint64_t key = edge(node, c);
      auto it = children_.find(key);
      if (it == children_.end()) {
        terminal_.push_back(-1);
        it = children_.emplace(key, static_cast<int>(terminal_.size()) - 1).first;
      }
      node = it->second;
    }
    terminal_[static_cast<size_t>(node)] = token;
    first_.set(static_cast<unsigned char>(text[0]));
  }
  bool empty() const { return terminal_.size() == 1; }

  // The next match at or after `from`: (begin, end, token), or token -1 when none.
  std::tuple<size_t, size_t, int> find(std::string_view text, size_t from) const {
    for (size_t begin = from; begin < text.size(); ++begin) {
      if (!first_.test(static_cast<unsigned char>(text[begin]))) continue;
      int node = 0, best = -1;
      size_t best_end = begin;
      for (size_t pos = begin; pos < text.size(); ++pos) {
        auto it = children_.find(edge(node, text[pos]));
        if (it == children_.end()) break;
        node = it->second;
        if (terminal_[static_cast<size_t>(node)] >= 0) {
          best = terminal_[static_cast<size_t>(node)];
          best_end = pos + 1;
        }
      }
      if (best >= 0) return {begin, best_end, best};
    }
    return {text.size(), text.size(), -1};
  }

 private:
  static uint64_t edge(int node, char c) {
    return (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(c);
  }
  std::unordered_map<uint64_t, int> children_;
  std::vector<int> terminal_{-1};  // node -> token index, -1 when no token ends there
  std::bitset<256> first_;
};

struct Segment {
  std::string text;
  int64_t id = -1;  // an added token's id, or -1 for text still to tokenize
  bool at_start = false;
};

size_t whitespace_before(std::string_view text) {  // start of the trailing whitespace run
  size_t begin = text.size();
  while (begin > 0) {
    size_t cp_begin = begin - 1;
    while (cp_begin > 0 && (static_cast<unsigned char>(text[cp_begin]) & 0xC0) == 0x80) --cp_begin;
    size_t length = 0;
    if (!is_whitespace(decode_utf8(text, cp_begin, &length))) break;
    begin = cp_begin;
  }
  return begin;
}

size_t whitespace_after(std::string_view text) {  // length of the leading whitespace run
  size_t pos = 0;
  while (pos < text.size()) {
    size_t length = 0;
    if (!is_whitespace(decode_utf8(text, pos, &length))) break;
    pos += length;
  }
  return pos;
}

}  // namespace

struct HfTokenizer::Impl {
  std::string path;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int64_t> added_by_content;
  std::unordered_map<int64_t, size_t> added_by_id;  // -> index into `added`
  TokenTrie raw_trie, normalized_trie;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Decoder> decoder;
  std::vector<int64_t> prefix, suffix;

  // Cuts added tokens out of `segments` with `trie`; text between them stays.
  void cut_added(std::vector<Segment>& segments, const TokenTrie& trie) const {
    if (trie.empty()) return;
    std::vector<Segment> out;
    for (auto& segment : segments) {
      if (segment.id >= 0) {
        out.push_back(std::move(segment));
        continue;
      }
      const std::string_view text = segment.text;
      size_t emitted = 0;  // tokenizers' start_offset
      size_t from = 0;
      for (;;) {
        auto [begin, end, index] = trie.find(text, from);
        if (index < 0) break;
        from = end;
        const AddedToken& token = added[static_cast<size_t>(index)];
        if (token.lstrip) begin = std::max(whitespace_before(text.substr(0, begin)), emitted);
        if (token.rstrip) end += whitespace_after(text.substr(end));
        if (emitted < begin) {
          out.push_back(Segment{std::string(text.substr(emitted, begin - emitted)), -1,
                                segment.at_start && emitted == 0});
        }
        out.push_back(Segment{std::string(text.substr(begin, end - begin)), token.id, false});
        emitted = end;
        from = std::max(from, end);
      }
      if (emitted == 0) {
        out.push_back(std::move(segment));
      } else if (emitted < text.size()) {
        out.push_back(Segment{std::string(text.substr(emitted)), -1, false});
      }
    }
    segments = std::move(out);
  }
};

HfTokenizer::HfTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfTokenizer::~HfTokenizer() = default;

namespace {

std::vector<AddedToken> read_added_tokens(const nlohmann::json& json, const std::string& where) {
  std::vector<AddedToken> tokens;
  auto it = json.find("added_tokens");
  if (it == json.end() || it->is_null()) return tokens;
  if (!it->is_array())
    fail_input("{}.added_tokens: expected an array, got {}", where, io::describe(*it));
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& entry = (*it)[i];
    const std::string path = fmt::format("{}.added_tokens[{}]", where, i);
    AddedToken token;
    token.content = require_string(entry, "content", path);
    const auto id = io::get_int(entry, "id", path);
    if (!id || *id < 0 || *id > INT32_MAX) fail_input("{}.id: expected a token id >= 0", path);
    token.id = *id;
    token.special = io::get_bool(entry, "special", path).value_or(false);
    token.lstrip = io::get_bool(entry, "lstrip", path).value_or(false);
    token.rstrip = io::get_bool(entry, "rstrip", path).value_or(false);
    token.normalized = io::get_bool(entry, "normalized", path).value_or(!token.special);
    if (io::get_bool(entry, "single_word", path).value_or(false)) {
      fail_input("{}: added token \"{}\" with single_word true is not supported", path,
                 token.content);
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// The post-processor's effect on one sequence: special ids before and after it.
void read_post_processor(const nlohmann::json& json, const std::string& where,
                         std::vector<int64_t>& prefix, std::vector<int64_t>& suffix) {
  if (json.is_null()) return;
  const std::string type = component_type(json, where);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const auto& list = require(json, "processors", where);
    if (!list.is_array())
      fail_input("{}.processors: expected an array, got {}", where, io::describe(list));
    for (size_t i = 0; i < list.size(); ++i) {
      std::vector<int64_t> inner_prefix, inner_suffix;
      read_post_processor(list[i], fmt::format("{}.processors[{}]", where, i), inner_prefix,
                          inner_suffix);
      prefix.insert(prefix.begin(), inner_prefix.begin(), inner_prefix.end());
      suffix.insert(suffix.end(), inner_suffix.begin(), inner_suffix.end());
    }
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto pair_id = [&](const char* key) {
      const auto& value = require(json, key, where);
      if (!value.is_array() || value.size() != 2 || !value[1].is_number_unsigned()) {
        fail_input("{}.{}: expected [\"TOKEN\", ID], got {}", where, key, io::describe(value));
      }
      return value[1].get<int64_t>();
    };
    prefix.push_back(pair_id("cls"));
    suffix.push_back(pair_id("sep"));
    return;
  }
  if (type != "TemplateProcessing") {
    fail_input(
        "{}: post-processor \"{}\" is not supported (supported: TemplateProcessing, ByteLevel, "
        "BertProcessing, RobertaProcessing, Sequence)",
        where, type);
  }
  const auto& single = require(json, "single", where);
  const auto& specials = require(json, "special_tokens", where);
  if (!single.is_array())
    fail_input("{}.single: expected an array, got {}", where, io::describe(single));
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const auto& item = single[i];
    const std::string path = fmt::format("{}.single[{}]", where, i);
    if (item.is_object() && item.contains("Sequence")) {
      if (seen_sequence)
        fail_input("{}: a single-sequence template with two sequences is not supported", path);
      seen_sequence = true;
      continue;
    }
    if (!(item.is_object() && item.contains("SpecialToken"))) {
      fail_input("{}: expected {{\"SpecialToken\": ...}} or {{\"Sequence\": ...}}, got {}", path,
                 io::describe(item));
    }
    const std::string name = require_string(item["SpecialToken"], "id", path + ".SpecialToken");
    const auto& special = require(specials, name.c_str(), where + ".special_tokens");
    const auto& ids =
        require(special, "ids", fmt::format("{}.special_tokens[\"{}\"]", where, name));
    if (!ids.is_array())
      fail_input("{}.special_tokens[\"{}\"].ids: expected an array", where, name);
    for (const auto& id : ids) {
      if (!id.is_number_unsigned())
        fail_input("{}.special_tokens[\"{}\"].ids: expected token ids", where, name);
      (seen_sequence ? suffix : prefix).push_back(id.get<int64_t>());
    }
  }
  if (!seen_sequence) fail_input("{}.single: the template has no $A sequence", where);
}

}  // namespace

std::shared_ptr<const HfTokenizer> HfTokenizer::from_file(const std::string& path) {
  return from_json(io::read_json_file(path), path);
}

std::shared_ptr<const HfTokenizer> HfTokenizer::from_json(const nlohmann::json& json,
                                                          const std::string& where) {
  if (!json.is_object())
    fail_input("{}: expected a tokenizer.json object, got {}", where, io::describe(json));
  auto impl = std::make_unique<Impl>();
  impl->path = where;
  for (const char* key : {"truncation", "padding"}) {
    if (auto it = json.find(key); it != json.end() && !it->is_null()) {
      fail_input(
          "{}: \"{}\" is not supported (expected null; mixlora cuts and pads sequences itself)",
          where, key);
    }
  }
  impl->model = std::make_unique<BpeModel>(require(json, "model", where), where + ".model");
  impl->normalizer =
      make_normalizer(json.value("normalizer", nlohmann::json()), where + ".normalizer");
  impl->pre_tokenizer =
      make_pre_tokenizer(json.value("pre_tokenizer", nlohmann::json()), where + ".pre_tokenizer");
  impl->decoder = make_decoder(json.value("decoder", nlohmann::json()), where + ".decoder");
  read_post_processor(json.value("post_processor", nlohmann::json()), where + ".post_processor",
                      impl->prefix, impl->suffix);

  impl->added = read_added_tokens(json, where);
  for (size_t i = 0; i < impl->added.size(); ++i) {
    const AddedToken& token = impl->added[i];
    impl->added_by_content[token.content] = token.id;
    impl->added_by_id[token.id] = i;
    if (!token.normalized) {
      impl->raw_trie.add(token.content, static_cast<int>(i));
    } else {
      std::string pattern = token.content;
      if (impl->normalizer) impl->normalizer->normalize(pattern);
      impl->normalized_trie.add(pattern, static_cast<int>(i));
    }
  }
  return std::shared_ptr<const HfTokenizer>(new HfTokenizer(std::move(impl)));
}

std::vector<int64_t> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& s = *impl_;
  if (!is_valid_utf8(text)) fail_input("{}: text is not valid UTF-8", s.path);
  std::vector<Segment> segments{Segment{std::string(text), -1, true}};
  s.cut_added(segments, s.raw_trie);
  if (s.normalizer) {
    for (auto& segment : segments) {
      if (segment.id < 0) s.normalizer->normalize(segment.text);
    }
  }
  s.cut_added(segments, s.normalized_trie);

  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Piece> pieces;
  for (auto& segment : segments) {
    if (segment.id >= 0) {
      ids.push_back(static_cast<int32_t>(segment.id));
      continue;
    }
    if (segment.text.empty()) continue;
    pieces.clear();
    pieces.push_back(Piece{std::move(segment.text), segment.at_start});
    if (s.pre_tokenizer) s.pre_tokenizer->split(pieces);
    for (const auto& piece : pieces) s.model->tokenize(piece.text, ids);
  }
  std::vector<int64_t> out;
  out.reserve(ids.size() + s.prefix.size() + s.suffix.size());
  if (add_special_tokens) out.insert(out.end(), s.prefix.begin(), s.prefix.end());
  out.insert(out.end(), ids.begin(), ids.end());
  if (add_special_tokens) out.insert(out.end(), s.suffix.begin(), s.suffix.end());
  return out;
}

std::string HfTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const Impl& s = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    if (auto it = s.added_by_id.find(id); it != s.added_by_id.end()) {
      const AddedToken& token = s.added[it->second];
      if (!(skip_special_tokens && token.special)) tokens.push_back(token.content);
      continue;
    }
    const std::string* token = s.model->id_to_token(id);
    if (token == nullptr) {
      fail_input(
          "token id {} is outside the vocabulary of {} ({} ids); wrong tokenizer for this model?",
          id, s.path, vocab_size());
    }
    tokens.push_back(*token);
  }
  if (!s.decoder) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i > 0 ? " " : "") + tokens[i];
    return joined;
  }
  s.decoder->decode_chain(tokens);
  std::string joined;
  for (const auto& token : tokens) joined += token;
  return joined;
}

std::optional<int64_t> HfTokenizer::token_to_id(const std::string& token) const {
  if (auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end())
    return it->second;
  if (auto id = impl_->model->token_to_id(token)) return *id;
  return std::nullopt;
}

std::optional<std::string> HfTokenizer::id_to_token(int64_t id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end())
    return impl_->added[it->second].content;
  if (const std::string* token = impl_->model->id_to_token(id)) return *token;
  return std::nullopt;
}

bool HfTokenizer::is_special(int64_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

int64_t HfTokenizer::vocab_size() const {
  int64_t size = impl_->model->id_limit();
  for (const auto& token : impl_->added) size = std::max(size, token.id + 1);
  return size;
}

std::optional<int64_t> HfTokenizer::unk_id() const {
  if (auto id = impl_->model->unk_id()) return *id;
  return std::nullopt;
}

bool HfTokenizer::is_byte(int64_t id) const {
  if (!impl_->model->byte_fallback() || impl_->added_by_id.count(id) != 0) return false;
  const std::string* token = impl_->model->id_to_token(id);
  if (token == nullptr || token->size() != 6 || token->compare(0, 3, "<0x") != 0 ||
      (*token)[5] != '>')
    return false;
  return std::isxdigit(static_cast<unsigned char>((*token)[3])) &&
         std::isxdigit(static_cast<unsigned char>((*token)[4]));
}

const std::vector<int64_t>& HfTokenizer::special_prefix() const { return impl_->prefix; }
const std::vector<int64_t>& HfTokenizer::special_suffix() const { return impl_->suffix; }
const std::string& HfTokenizer::path() const { return impl_->path; }

}  // namespace mixlora::data::hf
