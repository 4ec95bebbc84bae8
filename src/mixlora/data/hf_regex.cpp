#include "mixlora/data/hf_regex.h"

#include "mixlora/common/error.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace mixlora::data::hf {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  std::string pattern;
};

namespace {

// A JIT stack per thread, larger than PCRE2's 32 KiB default: long runs of one class
// ("\s+(?!\S)" over a page of spaces) need more. Made once, freed when the thread ends.
struct JitContext {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  JitContext() {
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    context = pcre2_match_context_create(nullptr);
    if (stack != nullptr && context != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~JitContext() {
    if (context != nullptr) pcre2_match_context_free(context);
    if (stack != nullptr) pcre2_jit_stack_free(stack);
  }
  JitContext(const JitContext&) = delete;
  JitContext& operator=(const JitContext&) = delete;
};

pcre2_match_context* jit_context() {
  thread_local JitContext jit;
  return jit.context;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where)
    : impl_(std::make_unique<Impl>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    fail_input("{}: regex \"{}\" is not supported: {} at offset {}", where, pattern,
               reinterpret_cast<const char*>(message), offset);
  }
  // JIT is an optimization: without it (an unsupported CPU) the interpreter gives the same matches.
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
  impl_->pattern = pattern;
}

Regex::~Regex() {
  if (impl_ && impl_->code != nullptr) pcre2_code_free(impl_->code);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (data == nullptr) throw std::bad_alloc();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    // The text was checked for valid UTF-8 once, on entry to the tokenizer.
    int rc = PCRE2_ERROR_JIT_STACKLIMIT;
    if (impl_->jit) {
      rc = pcre2_jit_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data,
                           jit_context());
    }
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // no JIT, or its stack ran out: the interpreter
      rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(data);
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      // Match and depth limits are reached by patterns that backtrack catastrophically.
      fail_input("regex \"{}\" failed on a text of {} bytes: {}", impl_->pattern, text.size(),
                 reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t begin = ovector[0], end = ovector[1];
    matches.emplace_back(begin, end);
    if (end > begin) {
      start = end;
    } else {
      if (end >= text.size()) break;
      start = end + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
        ++start;
    }
  }
  pcre2_match_data_free(data);
  return matches;
}

std::vector<std::pair<size_t, size_t>> find_all_literal(std::string_view text,
                                                        std::string_view needle) {
  std::vector<std::pair<size_t, size_t>> matches;
  if (needle.empty()) return matches;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size())) {
    matches.emplace_back(pos, pos + needle.size());
  }
  return matches;
}

}  // namespace mixlora::data::hf
