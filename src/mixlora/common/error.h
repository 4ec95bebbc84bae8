// Error types and check helpers shared by the whole library.
//
// Two kinds of failure map to the exit codes of SPEC section 2:
//   InputError   - the user gave us something wrong (flag, file, config, data): exit 2.
//   RuntimeError - something failed while doing valid work: exit 1.
// Messages are one line: what, where (file / JSON path / line), expected vs found, and a
// hint when one helps. Apps print them and exit; nothing prints a stack trace.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace mixlora {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail_input(fmt::format_string<Args...> format, Args&&... args) {
  throw InputError(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_runtime(fmt::format_string<Args...> format, Args&&... args) {
  throw RuntimeError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace mixlora
