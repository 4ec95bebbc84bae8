#include "mixlora/data/hf_pretokenizers.h"

#include "mixlora/data/hf_json.h"
#include "mixlora/data/hf_regex.h"
#include "mixlora/data/hf_text.h"

namespace mixlora::data::hf {

namespace {

// GPT-2's pattern, used by ByteLevel with use_regex.
constexpr const char* kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Range {
  size_t begin, end;
  bool flag;  // is a match (before the behavior), then "remove" (after it)
};

// Applies `cut` to every piece and keeps the non-empty results.
template <typename Cut>
void split_each(std::vector<Piece>& pieces, const Cut& cut) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (auto& piece : pieces) {
    for (const auto& [begin, end] : cut(piece.text)) {
      if (end <= begin) continue;
      out.push_back(Piece{piece.text.substr(begin, end - begin), piece.at_start && begin == 0});
    }
  }
  pieces = std::move(out);
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const PatternSpec& pattern, SplitBehavior behavior, bool invert,
                    const std::string& where)
      : literal_(pattern.is_regex ? "" : pattern.text), behavior_(behavior), invert_(invert) {
    if (pattern.is_regex) regex_ = std::make_unique<Regex>(pattern.text, where + ".pattern");
  }
  void split(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](const std::string& text) {
      const auto matches = regex_ ? regex_->find_all(text) : find_all_literal(text, literal_);
      return split_ranges(text.size(), matches, behavior_, invert_);
    });
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kByteLevelPattern, "ByteLevel");
  }
  void split(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (auto& piece : pieces) {
        if (piece.text.empty() || piece.text[0] != ' ') piece.text.insert(0, " ");
      }
    }
    if (regex_) {
      split_each(pieces, [&](const std::string& text) {
        return split_ranges(text.size(), regex_->find_all(text), SplitBehavior::Isolated, false);
      });
    }
    const auto& table = byte_to_utf8();
    for (auto& piece : pieces) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (const char c : piece.text) mapped += table[static_cast<unsigned char>(c)];
      piece.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void split(std::vector<Piece>& pieces) const override {
    for (auto& piece : pieces) {
      std::string replaced;
      replaced.reserve(piece.text.size() + replacement_.size());
      for (const char c : piece.text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced += c;
        }
      }
      const bool starts = replaced.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always ||
                      (scheme_ == PrependScheme::First && piece.at_start))) {
        replaced.insert(0, replacement_);
      }
      piece.text = std::move(replaced);
    }
    if (split_) {
      split_each(pieces, [&](const std::string& text) {
        return split_ranges(text.size(), find_all_literal(text, replacement_),
                            SplitBehavior::MergedWithNext, false);
      });
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void split(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

bool optional_bool(const nlohmann::json& json, const char* key, bool fallback,
                   const std::string& where) {
  return io::get_bool(json, key, where).value_or(fallback);
}

SplitBehavior read_behavior(const nlohmann::json& json, const std::string& where) {
  const std::string name = require_string(json, "behavior", where);
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail_input(
      "{}.behavior: \"{}\" is not a split behavior (Removed, Isolated, MergedWithPrevious, "
      "MergedWithNext, Contiguous)",
      where, name);
}

}  // namespace

std::vector<std::pair<size_t, size_t>> split_ranges(
    size_t text_size, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
    bool invert) {
  // The text as alternating (range, is_match), as tokenizers' Pattern::find_matches.
  std::vector<Range> parts;
  if (text_size == 0) {
    parts.push_back({0, 0, false});
  } else {
    size_t prev = 0;
    for (const auto& [begin, end] : matches) {
      if (prev != begin) parts.push_back({prev, begin, false});
      parts.push_back({begin, end, true});
      prev = end;
    }
    if (prev != text_size) parts.push_back({prev, text_size, false});
  }
  if (invert) {
    for (auto& part : parts) part.flag = !part.flag;
  }
  std::vector<Range> kept;
  switch (behavior) {
    case SplitBehavior::Removed:
      kept = parts;  // flag: remove the matches
      break;
    case SplitBehavior::Isolated:
      for (const auto& part : parts) kept.push_back({part.begin, part.end, false});
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const auto& part : parts) {
        if (part.flag && !previous_match && !kept.empty()) {
          kept.back().end = part.end;
        } else {
          kept.push_back({part.begin, part.end, false});
        }
        previous_match = part.flag;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool previous_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->flag && !previous_match && !kept.empty()) {
          kept.back().begin = it->begin;
        } else {
          kept.push_back({it->begin, it->end, false});
        }
        previous_match = it->flag;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool previous_match = false;
      for (const auto& part : parts) {
        if (part.flag == previous_match && !kept.empty()) {
          kept.back().end = part.end;
        } else {
          kept.push_back({part.begin, part.end, false});
        }
        previous_match = part.flag;
      }
      break;
    }
  }
  std::vector<std::pair<size_t, size_t>> ranges;
  ranges.reserve(kept.size());
  for (const auto& range : kept) {
    if (!range.flag) ranges.emplace_back(range.begin, range.end);
  }
  return ranges;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& json,
                                                 const std::string& where) {
  if (json.is_null()) return nullptr;
  const std::string type = component_type(json, where);
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(read_pattern(json, where),
                                               read_behavior(json, where),
                                               optional_bool(json, "invert", false, where), where);
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(
        optional_bool(json, "add_prefix_space", true, where),
        optional_bool(json, "use_regex", true, where));
  }
  if (type == "Metaspace") {
    const std::string replacement = require_string(json, "replacement", where);
    if (replacement.empty() ||
        utf8_length(static_cast<unsigned char>(replacement[0])) != replacement.size()) {
      fail_input("{}.replacement: expected one character, got \"{}\"", where, replacement);
    }
    PrependScheme scheme = PrependScheme::Always;
    if (auto name = io::get_string(json, "prepend_scheme", where)) {
      if (*name == "always") {
        scheme = PrependScheme::Always;
      } else if (*name == "first") {
        scheme = PrependScheme::First;
      } else if (*name == "never") {
        scheme = PrependScheme::Never;
      } else {
        fail_input("{}.prepend_scheme: \"{}\" is not one of always, first, never", where, *name);
      }
    } else if (auto add = io::get_bool(json, "add_prefix_space", where)) {
      scheme = *add ? PrependScheme::Always : PrependScheme::Never;  // tokenizers < 0.19
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme,
                                                   optional_bool(json, "split", true, where));
  }
  if (type == "Sequence") {
    const auto& list = require(json, "pretokenizers", where);
    if (!list.is_array())
      fail_input("{}.pretokenizers: expected an array, got {}", where, io::describe(list));
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", where, i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  fail_input(
      "{}: pre-tokenizer \"{}\" is not supported (supported: Split, ByteLevel, Metaspace, "
      "Sequence)",
      where, type);
}

}  // namespace mixlora::data::hf
