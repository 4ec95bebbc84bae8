#include "mixlora/config/json_object_reader.h"

#include "mixlora/common/error.h"
#include "mixlora/config/did_you_mean.h"
#include "mixlora/io/json_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace mixlora::config {

std::string written(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

JsonObjectReader::JsonObjectReader(const nlohmann::json& object, std::string source,
                                   std::string path)
    : object_(object), source_(std::move(source)), path_(std::move(path)) {
  if (!object_.is_object()) {
    fail_input("{}: {}: expected a JSON object, got {}", source_,
               path_.empty() ? "(top level)" : path_, io::describe(object_));
  }
}

std::string JsonObjectReader::path_of(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

const nlohmann::json* JsonObjectReader::find(const std::string& key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonObjectReader::has(const std::string& key) const { return find(key) != nullptr; }

std::optional<int64_t> JsonObjectReader::get_int(const std::string& key) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  if (value->is_number_integer()) return value->get<int64_t>();
  // 4.0 from a tool that writes every number as a float is still the integer 4.
  if (value->is_number_float()) {
    const double d = value->get<double>();
    if (std::isfinite(d) && std::abs(d) < 9.0e15 && d == std::floor(d))
      return static_cast<int64_t>(d);
  }
  fail_input("{}: {}: expected an integer, got {}", source_, path_of(key), io::describe(*value));
}

std::optional<double> JsonObjectReader::get_number(const std::string& key) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  if (value->is_number()) return value->get<double>();
  fail_input("{}: {}: expected a number, got {}", source_, path_of(key), io::describe(*value));
}

std::optional<bool> JsonObjectReader::get_bool(const std::string& key) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  if (value->is_boolean()) return value->get<bool>();
  fail_input("{}: {}: expected true or false, got {}", source_, path_of(key), io::describe(*value));
}

std::optional<std::string> JsonObjectReader::get_string(const std::string& key) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  if (value->is_string()) return value->get<std::string>();
  fail_input("{}: {}: expected a string, got {}", source_, path_of(key), io::describe(*value));
}

void JsonObjectReader::fail(std::string_view key, std::string_view what,
                            std::string_view fallback) const {
  const auto* value = find(std::string(key));
  fail_input("{}: {}: {}, got {}", source_, path_of(key), what,
             value ? written(*value) : std::string(fallback));
}

void JsonObjectReader::fail_plain(std::string_view key, std::string_view message) const {
  fail_input("{}: {}: {}", source_, path_of(key), message);
}

void JsonObjectReader::reject_unknown_keys(
    const std::vector<std::string>& known,
    const std::vector<std::pair<std::string, std::string>>& hints) const {
  for (const auto& item : object_.items()) {
    const std::string& key = item.key();
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string suggestion = did_you_mean(key, known);
    for (const auto& [wrong, ours] : hints) {
      if (edit_distance(key, wrong) == 0) suggestion = "; did you mean '" + ours + "'?";
    }
    if (suggestion.empty()) suggestion = " (docs/config-keys.md lists the accepted keys)";
    fail_input("{}: {}: unknown key{}", source_, path_of(key), suggestion);
  }
}

}  // namespace mixlora::config
