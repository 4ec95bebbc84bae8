// Pre-tokenized rows {"input_ids": [...], "labels"?: [...]} (SPEC section 6), read row by row
// through data/row_reader.h.
#pragma once

#include "mixlora/data/sample.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace mixlora::data {

// One pre-tokenized row: input_ids (non-empty integer list, ids in [0, vocab_size) when
// vocab_size > 0) and optional labels (same length; ids or kIgnoreIndex; default: input_ids).
// InputError "where: field: what, got found".
Sample parse_pretokenized_row(const nlohmann::json& row, const std::string& where,
                              int64_t vocab_size);

}  // namespace mixlora::data
