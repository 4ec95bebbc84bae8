#include "mixlora/data/pretokenized.h"

#include "mixlora/common/error.h"
#include "mixlora/io/json_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace mixlora::data {

namespace {

std::vector<int64_t> id_list(const nlohmann::json& row, const char* key, const std::string& where,
                             int64_t vocab_size, bool allow_ignore) {
  auto it = row.find(key);
  if (it == row.end()) fail_input("{}: missing field '{}'", where, key);
  if (!it->is_array() || it->empty()) {
    fail_input("{}: {}: expected a non-empty list of token ids, got {}", where, key, io::describe(*it));
  }
  std::vector<int64_t> ids;
  ids.reserve(it->size());
  for (const auto& v : *it) {
    if (!v.is_number_integer()) fail_input("{}: {}: expected integer ids, got {}", where, key, io::describe(v));
    const int64_t id = v.get<int64_t>();
    const bool ignored = allow_ignore && id == kIgnoreIndex;
    if (!ignored && (id < 0 || (vocab_size > 0 && id >= vocab_size))) {
      fail_input("{}: {}: token id {} is outside the vocabulary [0, {})", where, key, id, vocab_size);
    }
    ids.push_back(id);
  }
  return ids;
}

Sample parse_row(const nlohmann::json& row, const std::string& where, const ReadOptions& options) {
  if (!row.is_object()) fail_input("{}: expected an object with input_ids, got {}", where, io::describe(row));
  Sample sample;
  sample.input_ids = id_list(row, "input_ids", where, options.vocab_size, false);
  if (row.contains("labels")) {
    sample.labels = id_list(row, "labels", where, options.vocab_size, true);
    if (sample.labels.size() != sample.input_ids.size()) {
      fail_input("{}: labels has {} entries but input_ids has {}", where, sample.labels.size(),
                 sample.input_ids.size());
    }
  } else {
    sample.labels = sample.input_ids;
  }
  if (options.max_length > 0 && static_cast<int64_t>(sample.input_ids.size()) > options.max_length) {
    fail_input("{}: {} tokens exceed the limit of {} (cutoff_len or the model's context)", where,
               sample.input_ids.size(), options.max_length);
  }
  return sample;
}

}  // namespace

ReadResult read_pretokenized(const std::string& path, const ReadOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail_input("{}: data file not found", path);
  ReadResult result;
  auto add = [&](const nlohmann::json& row, const std::string& where) {
    try {
      result.samples.push_back(parse_row(row, where, options));
    } catch (const InputError&) {
      if (!options.skip_bad_rows) throw;
      ++result.skipped;
    }
  };
  std::ifstream in(path);
  const int first = in.peek();
  if (first == '[') {
    const auto rows = io::read_json_file(path);
    for (size_t i = 0; i < rows.size(); ++i) add(rows[i], fmt::format("{}: row {}", path, i));
  } else {
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = fmt::format("{}:{}", path, number);
      nlohmann::json row;
      try {
        row = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error&) {
        if (!options.skip_bad_rows) fail_input("{}: malformed JSON line", where);
        ++result.skipped;
        continue;
      }
      add(row, where);
    }
  }
  if (result.samples.empty()) {
    fail_input("{}: no usable rows{}", path,
               result.skipped ? fmt::format(" ({} bad rows skipped)", result.skipped) : "");
  }
  return result;
}

}  // namespace mixlora::data
