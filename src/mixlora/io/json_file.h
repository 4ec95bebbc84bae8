// Reading JSON files and typed fields with errors that name the file and the JSON path.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mixlora::io {

// Largest JSON file we parse; configs and tokenizer metadata are far smaller. Checked
// before reading so a huge or endless file cannot exhaust memory.
constexpr std::uintmax_t kMaxJsonFileBytes = 64ull << 20;

// Deepest nesting of arrays and objects we accept. Configs and data rows nest a few levels; a
// cap checked before parsing keeps every recursive walk of a parsed value (dump() in error
// messages, validation) far from the end of the stack, whatever the input.
constexpr size_t kMaxJsonDepth = 128;

// InputError "WHERE: JSON nested deeper than 128 levels" when `text` nests arrays / objects
// deeper than kMaxJsonDepth (brackets inside strings do not count). Linear, allocates nothing.
void check_json_depth(std::string_view text, const std::string& where);

// `text` with control bytes and bytes >= 0x7f written as \xNN. For parser messages that quote
// what they read ("last read: '...'"): raw bytes there would break a one-line, printable error.
std::string escape_unprintable(const std::string& text);

// Parses a whole JSON file. Missing, oversized or malformed files throw InputError naming
// the file (and the byte offset for syntax errors).
nlohmann::json read_json_file(const std::string& path);

// Typed access to `object[key]` where `where` describes the object for messages
// ("stories260K/config.json", "lora[0]"). A present value of the wrong type is an
// InputError: `config.json: hidden_size: expected an integer, got string "64"`.
std::optional<int64_t> get_int(const nlohmann::json& object, const std::string& key,
                               const std::string& where);
std::optional<double> get_number(const nlohmann::json& object, const std::string& key,
                                 const std::string& where);
std::optional<bool> get_bool(const nlohmann::json& object, const std::string& key,
                             const std::string& where);
std::optional<std::string> get_string(const nlohmann::json& object, const std::string& key,
                                      const std::string& where);

// A short printable rendering of a JSON value for error messages (truncated).
std::string describe(const nlohmann::json& value);

}  // namespace mixlora::io
