#include "mixlora/config/did_you_mean.h"

#include <algorithm>
#include <cctype>

namespace mixlora::config {

namespace {

std::string fold(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) out.push_back(c == '-' ? '_' : static_cast<char>(std::tolower(c)));
  return out;
}

size_t allowed_edits(size_t length) {
  if (length <= 4) return 1;
  if (length <= 8) return 2;
  return length / 3;
}

}  // namespace

size_t edit_distance(const std::string& a_raw, const std::string& b_raw) {
  const std::string a = fold(a_raw), b = fold(b_raw);
  // Optimal string alignment: Levenshtein plus transposition of adjacent characters.
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_distance = 0;
  for (const auto& candidate : candidates) {
    const size_t distance = edit_distance(word, candidate);
    const size_t limit = allowed_edits(std::max(word.size(), candidate.size()));
    if (distance > limit || distance >= std::max(word.size(), candidate.size())) continue;
    if (!best || distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const auto match = closest_match(word, candidates);
  return match ? "; did you mean '" + *match + "'?" : std::string();
}

}  // namespace mixlora::config
