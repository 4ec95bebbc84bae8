// tokenizer.json "pre_tokenizer": Split (literal or regex pattern, all five behaviors,
// invert), ByteLevel, Metaspace, Sequence. A pre-tokenizer cuts each piece of text into
// smaller pieces ("words") that the BPE model encodes one by one.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace mixlora::data::hf {

struct Piece {
  std::string text;
  // Starts at offset 0 of the original input (Metaspace's prepend_scheme "first").
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` with their splits; empty pieces are dropped.
  virtual void split(std::vector<Piece>& pieces) const = 0;
};

// nullptr for a JSON null.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& json,
                                                 const std::string& where);

// Split behaviors of tokenizers' SplitDelimiterBehavior.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Cuts `text` at `matches` (sorted, non-overlapping [begin, end) ranges) by `behavior`;
// returns the kept [begin, end) ranges, empty ones included (callers drop them).
std::vector<std::pair<size_t, size_t>> split_ranges(
    size_t text_size, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
    bool invert);

}  // namespace mixlora::data::hf
