// Typed reads of one JSON object of a config file, with errors in the form
// `<source>: <json path>: <what>, got <found>` (SPEC section 2: name the file and JSON path).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mixlora::config {

class JsonObjectReader {
 public:
  // `path` is the object's JSON path ("" for the document, "lora[0]"). Throws InputError when
  // `object` is not a JSON object.
  JsonObjectReader(const nlohmann::json& object, std::string source, std::string path);

  const std::string& source() const { return source_; }
  const std::string& path() const { return path_; }
  // "lora[0].top_k" (or "top_k" at the top level).
  std::string path_of(std::string_view key) const;
  // Present and not null: null counts as absent, as PEFT writes null for unset options.
  bool has(const std::string& key) const;
  const nlohmann::json* find(const std::string& key) const;
  const nlohmann::json& object() const { return object_; }

  // Absent -> nullopt; a present value of another type is an InputError.
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_number(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;

  // `<source>: <path.key>: <what>, got <value as written>`; when the key is absent (a default
  // broke a rule together with another key) `fallback` stands for the value.
  [[noreturn]] void fail(std::string_view key, std::string_view what,
                         std::string_view fallback = "nothing") const;
  // `<source>: <path.key>: <message>` verbatim.
  [[noreturn]] void fail_plain(std::string_view key, std::string_view message) const;

  // Rejects keys outside `known` with a did-you-mean. `hints` maps common wrong names (from other
  // trainers) to ours: {"learning_rate", "lr"}.
  void reject_unknown_keys(
      const std::vector<std::string>& known,
      const std::vector<std::pair<std::string, std::string>>& hints = {}) const;

 private:
  const nlohmann::json& object_;
  std::string source_;
  std::string path_;
};

// A value as the user wrote it, for "got ..." (numbers and strings as JSON, long values cut).
std::string written(const nlohmann::json& value);

}  // namespace mixlora::config
