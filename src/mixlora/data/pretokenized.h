// Reader for pre-tokenized rows {"input_ids": [...], "labels"?: [...]} in JSONL or a JSON array
// (SPEC section 6). Labels default to the input ids; -100 marks ignored positions.
#pragma once

#include "mixlora/data/sample.h"

#include <string>
#include <vector>

namespace mixlora::data {

struct ReadOptions {
  int64_t vocab_size = 0;      // ids must lie in [0, vocab_size) when > 0
  int64_t max_length = 0;      // longer rows are an error (or skipped) when > 0
  bool skip_bad_rows = false;  // skip and count instead of failing
};

struct ReadResult {
  std::vector<Sample> samples;
  int64_t skipped = 0;
};

// Errors are InputErrors naming file:line and the field.
ReadResult read_pretokenized(const std::string& path, const ReadOptions& options);

}  // namespace mixlora::data
