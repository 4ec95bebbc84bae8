// Reading JSON files and typed fields with errors that name the file and the JSON path.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace mixlora::io {

// Largest JSON file we parse; configs and tokenizer metadata are far smaller. Checked
// before reading so a huge or endless file cannot exhaust memory.
constexpr std::uintmax_t kMaxJsonFileBytes = 64ull << 20;

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
