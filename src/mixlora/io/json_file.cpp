#include "mixlora/io/json_file.h"

#include "mixlora/common/error.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mixlora::io {

namespace fs = std::filesystem;

std::string escape_unprintable(const std::string& text) {
  std::string out;
  for (const unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

void check_json_depth(std::string_view text, const std::string& where) {
  size_t depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        fail_input("{}: JSON nested deeper than {} levels", where, kMaxJsonDepth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

nlohmann::json read_json_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fail_input("{}: no such file", path);
  }
  const auto size = fs::file_size(path, ec);
  if (ec) fail_input("{}: cannot read: {}", path, ec.message());
  if (size > kMaxJsonFileBytes) {
    fail_input("{}: {} bytes is larger than the {} MiB limit for JSON files", path, size,
               kMaxJsonFileBytes >> 20);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("{}: cannot open for reading", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  check_json_depth(text, path);
  try {
    return nlohmann::json::parse(text);
  } catch (
      const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string what = e.what();
    const auto pos = what.find("] ");
    fail_input("{}: invalid JSON: {}", path,
               escape_unprintable(pos == std::string::npos ? what : what.substr(pos + 2)));
  }
}

std::string describe(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return fmt::format("{} {}", value.type_name(), text);
}

namespace {

const nlohmann::json* find_field(const nlohmann::json& object, const std::string& key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

std::optional<int64_t> get_int(const nlohmann::json& object, const std::string& key,
                               const std::string& where) {
  const auto* value = find_field(object, key);
  if (!value) return std::nullopt;
  if (value->is_number_integer()) return value->get<int64_t>();
  // 4.0 is an integer written by a tool that only knows floats; 4.5 is not, nor is a float
  // beyond int64 (converting it would be undefined; the fuzzer found 5e82).
  if (value->is_number_float()) {
    const double d = value->get<double>();
    const double limit = 9223372036854775808.0;  // 2^63
    if (d >= -limit && d < limit && d == std::trunc(d)) return static_cast<int64_t>(d);
  }
  fail_input("{}: {}: expected an integer, got {}", where, key, describe(*value));
}

std::optional<double> get_number(const nlohmann::json& object, const std::string& key,
                                 const std::string& where) {
  const auto* value = find_field(object, key);
  if (!value) return std::nullopt;
  if (value->is_number()) return value->get<double>();
  fail_input("{}: {}: expected a number, got {}", where, key, describe(*value));
}

std::optional<bool> get_bool(const nlohmann::json& object, const std::string& key,
                             const std::string& where) {
  const auto* value = find_field(object, key);
  if (!value) return std::nullopt;
  if (value->is_boolean()) return value->get<bool>();
  fail_input("{}: {}: expected true or false, got {}", where, key, describe(*value));
}

std::optional<std::string> get_string(const nlohmann::json& object, const std::string& key,
                                      const std::string& where) {
  const auto* value = find_field(object, key);
  if (!value) return std::nullopt;
  if (value->is_string()) return value->get<std::string>();
  fail_input("{}: {}: expected a string, got {}", where, key, describe(*value));
}

}  // namespace mixlora::io
