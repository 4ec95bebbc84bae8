// A compiled tokenizer.json regex (Split pre-tokenizer, Replace normalizer/decoder) on
// libpcre2 with Unicode properties (\p{L}, \s by Unicode) and JIT when available.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mixlora::data::hf {

class Regex {
 public:
  // InputError naming `where` when PCRE2 rejects the pattern.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match, left to right, as [start, end) byte offsets of `text` (valid
  // UTF-8). After an empty match the search resumes one character later, as Oniguruma's and
  // Rust regex's find_iter do.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Byte offsets of every non-overlapping occurrence of `needle` (non-empty) in `text`.
std::vector<std::pair<size_t, size_t>> find_all_literal(std::string_view text,
                                                        std::string_view needle);

}  // namespace mixlora::data::hf
