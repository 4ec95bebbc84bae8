// Row-by-row reading of data files (SPEC section 6): a data file is JSON Lines (one object per
// line) or one JSON array of objects; both report a bad row as "file:line" (for an array, the
// line where the row starts). Every dataset reader (text, classification, multiple choice,
// pre-tokenized) goes through here.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace mixlora::data {

// Called with each row and its "file:line". Throwing InputError rejects the row.
using RowVisitor = std::function<void(const nlohmann::json& row, const std::string& where)>;

struct RowStats {
  int64_t rows = 0;     // rows seen (blank JSONL lines are not rows)
  int64_t skipped = 0;  // rows rejected (malformed JSON, invalid UTF-8, or visit threw InputError)
};

// Reads `path` (JSONL, or a JSON array when the first non-blank character is '['; a UTF-8 BOM
// is ignored) and calls `visit` on each row in file order. A malformed row, a row with invalid
// UTF-8 ("file:7: instruction: invalid UTF-8 (byte 0xff), got ...") and an InputError thrown
// by `visit` fail the read, or are counted in `skipped` when `skip_bad_rows`. A file that is
// missing, or an array that is not well formed (unbalanced brackets, unterminated string),
// always fails.
RowStats for_each_row(const std::string& path, bool skip_bad_rows, const RowVisitor& visit);

// Field access for row readers; every failure is an InputError "where: key: what, got found".
namespace rows {
// The row itself must be an object.
void require_object(const nlohmann::json& row, const std::string& where);
// A present, non-null field ("where: key: missing field, got an object with keys [a, b]").
const nlohmann::json& field(const nlohmann::json& row, const std::string& key,
                            const std::string& where);
// A string field (required / optional: absent or null gives nullopt).
std::string string_field(const nlohmann::json& row, const std::string& key,
                         const std::string& where);
std::optional<std::string> optional_string(const nlohmann::json& row, const std::string& key,
                                           const std::string& where);
// "object with keys [a, b]" or the short description of a non-object, for messages.
std::string describe_row(const nlohmann::json& row);
}  // namespace rows

}  // namespace mixlora::data
