// "Did you mean" suggestions for misspelt names (config keys, module names, enum values).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace mixlora::config {

// Edit distance (insert, delete, substitute, swap of neighbours) after folding case and '-' to
// '_', so "Top-K" and "top_k" are equal.
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `word`, when it is close enough to be a plausible typo: at most one
// edit for names of up to 4 characters, two up to 8, a third of the length beyond that. Ties go
// to the earlier candidate.
std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates);

// "; did you mean 'x'?" or "" (for appending to an error message).
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace mixlora::config
