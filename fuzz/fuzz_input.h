// Shared by the libFuzzer harnesses: the readers under test take file paths (they mmap or
// stream real files), so each input is written to a per-process scratch file first.
#pragma once

#include "mixlora/common/error.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace mixlora::fuzz {

// The scratch file for this process, with the given suffix (".json", ".jsonl", ...).
inline std::string write_input(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp && *tmp ? tmp : "/tmp");
  }();
  const std::string path = dir + "/mixlora-fuzz-" + std::to_string(::getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// Runs `body`; the only acceptable failure is an InputError (exit code 2 in the apps). Any
// other exception escapes, and libFuzzer reports it as a crash with the input that caused it.
template <typename Body>
void expect_input_errors_only(Body&& body) {
  try {
    body();
  } catch (const InputError&) {
  }
}

}  // namespace mixlora::fuzz
