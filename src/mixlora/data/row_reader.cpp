#include "mixlora/data/row_reader.h"

#include "mixlora/common/error.h"
#include "mixlora/data/hf_text.h"
#include "mixlora/io/json_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mixlora::data {

namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8

// The first byte of `s` that starts no well-formed UTF-8 sequence, or npos (data/hf_text.h).
size_t invalid_utf8_offset(const std::string& s) { return hf::invalid_utf8_offset(s); }

// U+FFFF (a noncharacter: valid UTF-8 that real text does not contain) stands in for each
// invalid byte so the row still parses and the field holding the bad byte can be named.
constexpr const char* kInvalidMarker = "\xEF\xBF\xBF";

std::string replace_invalid_bytes(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    const size_t bad = invalid_utf8_offset(s.substr(i));
    if (bad == std::string::npos) {
      out.append(s, i, std::string::npos);
      break;
    }
    out.append(s, i, bad);
    out += kInvalidMarker;
    i += bad + 1;
  }
  return out;
}

// Where the marker sits: the JSON path ("instruction", "choices.text[2]") and the string.
struct MarkerHit {
  std::string path;
  std::string text;
};

std::optional<MarkerHit> find_marker(const nlohmann::json& value, const std::string& path) {
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text.find(kInvalidMarker) != std::string::npos) return MarkerHit{path, text};
  } else if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      const std::string child = path.empty() ? it.key() : path + "." + it.key();
      if (it.key().find(kInvalidMarker) != std::string::npos)
        return MarkerHit{child + " (a key)", it.key()};
      if (auto found = find_marker(it.value(), child)) return found;
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      if (auto found = find_marker(value[i], fmt::format("{}[{}]", path, i))) return found;
    }
  }
  return std::nullopt;
}

[[noreturn]] void fail_invalid_utf8(const std::string& text, size_t bad, const std::string& where) {
  const auto byte = static_cast<unsigned>(static_cast<unsigned char>(text[bad]));
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(replace_invalid_bytes(text));
  } catch (
      const nlohmann::json::exception&) {  // parse_error, or out_of_range for a number like 1e999
    fail_input("{}: invalid UTF-8 (byte 0x{:02x}) in a row that is not valid JSON either", where,
               byte);
  }
  if (auto hit = find_marker(parsed, "")) {
    // Shown with U+FFFD where the invalid bytes were.
    std::string shown = hit->text;
    for (size_t at; (at = shown.find(kInvalidMarker)) != std::string::npos;)
      shown.replace(at, 3, "\xEF\xBF\xBD");
    fail_input("{}: {}: invalid UTF-8 (byte 0x{:02x}), got {}", where, hit->path, byte,
               io::describe(nlohmann::json(shown)));
  }
  fail_input("{}: invalid UTF-8 (byte 0x{:02x})", where, byte);
}

// ---------------------------------------------------------------------------------------------
// Rows

std::string parse_error_detail(const nlohmann::json::exception& e) {
  // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..." ->
  // "syntax error ..."; "[json.exception.out_of_range.406] number overflow parsing '1e999'" ->
  // "number overflow parsing '1e999'"
  std::string what = e.what();
  const auto parse_error = what.find("parse error");
  if (parse_error != std::string::npos) {
    const auto colon = what.find(": ", parse_error);
    if (colon != std::string::npos) return what.substr(colon + 2);
  }
  const auto bracket = what.find("] ");
  return bracket == std::string::npos ? what : what.substr(bracket + 2);
}

// Parses one row's text; InputErrors name `where`.
nlohmann::json parse_row_text(const std::string& text, const std::string& where) {
  io::check_json_depth(text, where);
  const size_t bad = invalid_utf8_offset(text);
  if (bad != std::string::npos) fail_invalid_utf8(text, bad, where);
  try {
    return nlohmann::json::parse(text);
  } catch (
      const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    fail_input(
        "{}: malformed JSON ({}); expected one JSON object per line or a JSON array of objects",
        where, io::escape_unprintable(parse_error_detail(e)));
  }
}

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// The rows of a JSON array file: the text of each element and the line it starts on. Structural
// errors (the array is not well formed) fail the whole file: element boundaries are unknown.
struct ElementText {
  std::string text;
  int64_t line;
};

std::vector<ElementText> split_json_array(const std::string& s, size_t pos,
                                          const std::string& path) {
  int64_t line = 1;
  for (size_t i = 0; i < pos; ++i) line += s[i] == '\n';
  auto skip_blank = [&] {
    while (pos < s.size() && is_blank(s[pos])) {
      line += s[pos] == '\n';
      ++pos;
    }
  };
  const int64_t open_line = line;
  ++pos;  // '['
  std::vector<ElementText> elements;
  skip_blank();
  if (pos < s.size() && s[pos] == ']') {
    ++pos;
  } else {
    while (true) {
      skip_blank();
      const size_t start = pos;
      const int64_t start_line = line;
      std::vector<char> stack;
      bool in_string = false;
      bool done = false;
      for (; pos < s.size(); ++pos) {
        const char c = s[pos];
        if (c == '\n') ++line;
        if (in_string) {
          if (c == '\\') {
            ++pos;  // the escaped character (a newline there is invalid JSON: the parser says so)
            if (pos < s.size() && s[pos] == '\n') ++line;
          } else if (c == '"') {
            in_string = false;
          }
          continue;
        }
        if (c == '"') {
          in_string = true;
        } else if (c == '{' || c == '[') {
          stack.push_back(c);
        } else if (c == '}' || c == ']') {
          if (stack.empty()) {
            if (c == ']') {
              done = true;
              break;
            }
            fail_input("{}:{}: malformed JSON array: unexpected '}}'", path, line);
          }
          const char open = stack.back();
          if ((open == '{') != (c == '}')) {
            fail_input("{}:{}: malformed JSON array: '{}' does not close '{}'", path, line, c,
                       open);
          }
          stack.pop_back();
        } else if (c == ',' && stack.empty()) {
          break;
        }
      }
      if (pos >= s.size()) {
        fail_input("{}: malformed JSON array: the array opened on line {} is not closed{}", path,
                   open_line, in_string ? " (unterminated string)" : "");
      }
      size_t end = pos;
      while (end > start && is_blank(s[end - 1])) --end;
      if (end == start) fail_input("{}:{}: malformed JSON array: empty element", path, line);
      elements.push_back({s.substr(start, end - start), start_line});
      ++pos;  // ',' or ']'
      if (done) break;
    }
  }
  skip_blank();
  if (pos < s.size()) fail_input("{}:{}: unexpected text after the JSON array", path, line);
  return elements;
}

}  // namespace

// -----------------------------------------------------------------------------------------------

namespace rows {

std::string describe_row(const nlohmann::json& row) {
  if (!row.is_object()) return io::describe(row);
  std::string keys;
  for (auto it = row.begin(); it != row.end(); ++it) {
    if (!keys.empty()) keys += ", ";
    keys += it.key();
  }
  return fmt::format("an object with keys [{}]", keys);
}

void require_object(const nlohmann::json& row, const std::string& where) {
  if (!row.is_object())
    fail_input("{}: expected a JSON object per row, got {}", where, io::describe(row));
}

const nlohmann::json& field(const nlohmann::json& row, const std::string& key,
                            const std::string& where) {
  auto it = row.find(key);
  if (it == row.end() || it->is_null()) {
    fail_input("{}: {}: missing field, got {}", where, key, describe_row(row));
  }
  return *it;
}

std::string string_field(const nlohmann::json& row, const std::string& key,
                         const std::string& where) {
  const auto& value = field(row, key, where);
  if (!value.is_string())
    fail_input("{}: {}: expected a string, got {}", where, key, io::describe(value));
  return value.get<std::string>();
}

std::optional<std::string> optional_string(const nlohmann::json& row, const std::string& key,
                                           const std::string& where) {
  auto it = row.find(key);
  if (it == row.end() || it->is_null()) return std::nullopt;
  if (!it->is_string())
    fail_input("{}: {}: expected a string, got {}", where, key, io::describe(*it));
  return it->get<std::string>();
}

}  // namespace rows

RowStats for_each_row(const std::string& path, bool skip_bad_rows, const RowVisitor& visit) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail_input("{}: data file not found", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("{}: cannot open for reading", path);
  RowStats stats;
  auto handle = [&](const std::string& text, const std::string& where) {
    ++stats.rows;
    try {
      visit(parse_row_text(text, where), where);
    } catch (const InputError&) {
      if (!skip_bad_rows) throw;
      ++stats.skipped;
    }
  };

  // The first non-blank character (after a UTF-8 byte order mark) tells a JSON array from JSON
  // Lines.
  char bom[3] = {0, 0, 0};
  in.read(bom, 3);
  const bool has_bom = in.gcount() == 3 && std::string(bom, 3) == "\xEF\xBB\xBF";
  in.clear();
  in.seekg(has_bom ? 3 : 0);
  char c = 0;
  while (in.get(c) && is_blank(c)) {
  }
  if (in && c == '[') {
    in.clear();
    in.seekg(has_bom ? 3 : 0);
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    for (const auto& element : split_json_array(text, text.find('['), path)) {
      handle(element.text, fmt::format("{}:{}", path, element.line));
    }
    return stats;
  }
  in.clear();
  in.seekg(0);
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    handle(line, fmt::format("{}:{}", path, number));
  }
  return stats;
}

}  // namespace mixlora::data
