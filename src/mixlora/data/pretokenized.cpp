#include "mixlora/data/pretokenized.h"

#include "mixlora/common/error.h"
#include "mixlora/data/row_reader.h"
#include "mixlora/io/json_file.h"

#include <nlohmann/json.hpp>

namespace mixlora::data {

namespace {

std::vector<int64_t> id_list(const nlohmann::json& row, const char* key, const std::string& where,
                             int64_t vocab_size, bool allow_ignore) {
  const auto& list = rows::field(row, key, where);
  if (!list.is_array() || list.empty()) {
    fail_input("{}: {}: expected a non-empty list of token ids, got {}", where, key,
               io::describe(list));
  }
  std::vector<int64_t> ids;
  ids.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& v = list[i];
    if (!v.is_number_integer()) {
      fail_input("{}: {}[{}]: expected an integer token id, got {}", where, key, i,
                 io::describe(v));
    }
    const int64_t id = v.get<int64_t>();
    const bool ignored = allow_ignore && id == kIgnoreIndex;
    if (!ignored && (id < 0 || (vocab_size > 0 && id >= vocab_size))) {
      const std::string note = allow_ignore ? "; -100 marks ignored positions" : "";
      if (vocab_size > 0) {
        fail_input("{}: {}: token id {} is outside the vocabulary [0, {}) (position {}{})", where,
                   key, id, vocab_size, i, note);
      }
      fail_input("{}: {}: token id {} is negative (position {}{})", where, key, id, i, note);
    }
    ids.push_back(id);
  }
  return ids;
}

}  // namespace

Sample parse_pretokenized_row(const nlohmann::json& row, const std::string& where,
                              int64_t vocab_size) {
  rows::require_object(row, where);
  Sample sample;
  sample.input_ids = id_list(row, "input_ids", where, vocab_size, false);
  auto labels = row.find("labels");
  if (labels != row.end() && !labels->is_null()) {
    sample.labels = id_list(row, "labels", where, vocab_size, true);
    if (sample.labels.size() != sample.input_ids.size()) {
      fail_input("{}: labels: expected as many entries as input_ids ({}), got {}", where,
                 sample.input_ids.size(), sample.labels.size());
    }
  } else {
    sample.labels = sample.input_ids;
  }
  return sample;
}

}  // namespace mixlora::data
