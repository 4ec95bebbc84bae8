// Small typed readers for tokenizer.json components: errors name the JSON path.
#pragma once

#include "mixlora/common/error.h"
#include "mixlora/io/json_file.h"

#include <nlohmann/json.hpp>

#include <string>

namespace mixlora::data::hf {

inline const nlohmann::json& require(const nlohmann::json& object, const char* key,
                                     const std::string& where) {
  if (!object.is_object())
    fail_input("{}: expected an object, got {}", where, io::describe(object));
  auto it = object.find(key);
  if (it == object.end()) fail_input("{}: missing \"{}\"", where, key);
  return *it;
}

inline std::string require_string(const nlohmann::json& object, const char* key,
                                  const std::string& where) {
  const auto& value = require(object, key, where);
  if (!value.is_string())
    fail_input("{}.{}: expected a string, got {}", where, key, io::describe(value));
  return value.get<std::string>();
}

// The component's "type" string.
inline std::string component_type(const nlohmann::json& object, const std::string& where) {
  return require_string(object, "type", where);
}

// A Replace/Split "pattern": {"String": "..."} or {"Regex": "..."}.
struct PatternSpec {
  std::string text;
  bool is_regex = false;
};

inline PatternSpec read_pattern(const nlohmann::json& object, const std::string& where) {
  const auto& pattern = require(object, "pattern", where);
  const std::string path = where + ".pattern";
  if (pattern.is_object() && pattern.size() == 1) {
    if (auto it = pattern.find("String"); it != pattern.end() && it->is_string())
      return {it->get<std::string>(), false};
    if (auto it = pattern.find("Regex"); it != pattern.end() && it->is_string())
      return {it->get<std::string>(), true};
  }
  fail_input("{}: expected {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", path,
             io::describe(pattern));
}

}  // namespace mixlora::data::hf
