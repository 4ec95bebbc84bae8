// What every executable shares: the common flags of SPEC section 2 and the error-to-exit-code
// policy (input error -> 2, runtime failure -> 1, one line on stderr, never a stack trace).
#pragma once

#include <CLI/CLI.hpp>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <functional>
#include <string>

namespace mixlora::cli {

struct CommonOptions {
  std::string device = "auto";
  std::string dtype = "fp32";
  uint64_t seed = 42;
  int threads = 0;  // 0 = all cores
  std::string log_level = "info";
};

// Adds --device, --dtype, --seed, --threads, --log-level and --version.
void add_common_options(CLI::App& app, CommonOptions& options);

struct Runtime {
  c10::Device device;
  c10::ScalarType dtype;
};

// Applies thread count and log level (logs go to stderr; stdout is for results) and resolves
// device and dtype.
Runtime apply_common_options(const CommonOptions& options);

// Parses argv and runs `body`, turning every failure into one stderr line and an exit code.
int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

}  // namespace mixlora::cli
