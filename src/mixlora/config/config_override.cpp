// `--set PATH=VALUE` overrides of a training config, applied to the JSON before validation.
#include "mixlora/common/error.h"
#include "mixlora/config/train_config.h"
#include "mixlora/io/json_file.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace mixlora::config {

namespace {

struct PathSegment {
  std::string key;  // object key, or empty for an index
  size_t index = 0;
  bool is_index() const { return key.empty(); }
};

// "lora[0].expert_lora.r" -> lora, [0], expert_lora, r.
std::vector<PathSegment> parse_path(const std::string& path, const std::string& assignment) {
  auto bad = [&](const char* why) {
    fail_input("--set {}: bad path \"{}\": {} (expected e.g. lora[0].lr=1e-4)", assignment, path,
               why);
  };
  std::vector<PathSegment> segments;
  size_t i = 0;
  while (i < path.size()) {
    const size_t key_end = path.find_first_of(".[", i);
    const std::string key =
        path.substr(i, key_end == std::string::npos ? std::string::npos : key_end - i);
    if (key.empty()) bad("empty key");
    segments.push_back({key, 0});
    i = key_end == std::string::npos ? path.size() : key_end;
    while (i < path.size() && path[i] == '[') {
      const size_t close = path.find(']', i);
      if (close == std::string::npos) bad("'[' without ']'");
      const std::string digits = path.substr(i + 1, close - i - 1);
      if (digits.empty() || digits.size() > 9 ||
          !std::all_of(digits.begin(), digits.end(),
                       [](unsigned char c) { return std::isdigit(c); })) {
        bad("an index must be a non-negative integer");
      }
      segments.push_back({"", static_cast<size_t>(std::stoul(digits))});
      i = close + 1;
    }
    if (i < path.size()) {
      if (path[i] != '.') bad("expected '.' or '[' after ']'");
      ++i;
      if (i == path.size()) bad("ends with '.'");
    }
  }
  if (segments.empty()) bad("empty");
  return segments;
}

std::string render(const std::vector<PathSegment>& segments, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (segments[i].is_index()) {
      out += fmt::format("[{}]", segments[i].index);
    } else {
      out += (out.empty() ? "" : ".") + segments[i].key;
    }
  }
  return out;
}

// Numbers, booleans, lists, objects and quoted strings as JSON; anything else as a plain string,
// so `--set base_model=/models/x` needs no quotes.
nlohmann::json parse_value(const std::string& text) {
  io::check_json_depth(text, "--set");
  auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return text;
  return parsed;
}

}  // namespace

void apply_override(nlohmann::json& json, const std::string& assignment) {
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    fail_input("--set {}: expected PATH=VALUE, e.g. lora[0].lr=1e-4", assignment);
  }
  auto segments = parse_path(assignment.substr(0, equals), assignment);
  const auto value = parse_value(assignment.substr(equals + 1));
  if (!json.is_object()) {
    fail_input("--set {}: the config is not a JSON object, got {}", assignment, io::describe(json));
  }
  // "lora" and "adapters" name the same list: follow whichever the file uses.
  if (segments[0].key == "lora" && !json.contains("lora") && json.contains("adapters")) {
    segments[0].key = "adapters";
  } else if (segments[0].key == "adapters" && !json.contains("adapters") && json.contains("lora")) {
    segments[0].key = "lora";
  }

  nlohmann::json* current = &json;
  for (size_t i = 0; i < segments.size(); ++i) {
    const auto& segment = segments[i];
    const bool last = i + 1 == segments.size();
    const std::string here = render(segments, i + 1);
    if (segment.is_index()) {
      if (!current->is_array()) {
        fail_input("--set {}: {}: not a list, got {}", assignment, render(segments, i),
                   io::describe(*current));
      }
      if (segment.index >= current->size()) {
        fail_input("--set {}: {}: index {} is out of range ({} has {} element{})", assignment, here,
                   segment.index, render(segments, i), current->size(),
                   current->size() == 1 ? "" : "s");
      }
      current = &(*current)[segment.index];
    } else {
      if (!current->is_object()) {
        fail_input("--set {}: {}: not an object, got {}", assignment,
                   i == 0 ? std::string("(top level)") : render(segments, i),
                   io::describe(*current));
      }
      const bool missing = !current->contains(segment.key) || (*current)[segment.key].is_null();
      if (missing && !last) {
        if (segments[i + 1].is_index()) {
          fail_input("--set {}: {}: no such list in the config", assignment, here);
        }
        (*current)[segment.key] = nlohmann::json::object();
      }
      current = &(*current)[segment.key];
    }
    if (last) *current = value;
  }
}

}  // namespace mixlora::config
