#include "mixlora/cli/app.h"

#include "mixlora/common/allocator.h"
#include "mixlora/common/build_info.h"
#include "mixlora/common/device.h"
#include "mixlora/common/error.h"
#include "mixlora/common/signals.h"
#include "mixlora/common/threads.h"

#include <c10/util/Exception.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <iostream>

namespace mixlora::cli {

void add_common_options(CLI::App& app, CommonOptions& options) {
  app.add_option("--device", options.device, "cpu | cuda | cuda:N (default: cuda if present)");
  app.add_option("--dtype", options.dtype, "frozen base weights: fp32 | bf16 | fp16")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "random seed")->capture_default_str();
  app.add_option("--threads", options.threads, "CPU threads for LibTorch and BLAS (0 = all cores)")
      ->capture_default_str();
  app.add_option("--log-level", options.log_level, "trace | debug | info | warn | error")
      ->capture_default_str();
  app.set_version_flag("--version", std::string("mixlora-cpp ") + MIXLORA_VERSION + " (LibTorch " +
                                        TORCH_VERSION + ")");
}

namespace {

// Logs go to stderr (stdout carries results), from the first line on: also the warnings of
// config reading, which come before apply_common_options.
void log_to_stderr() {
  if (spdlog::get("mixlora")) return;
  spdlog::set_default_logger(spdlog::stderr_color_mt("mixlora"));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
}

}  // namespace

Runtime apply_common_options(const CommonOptions& options) {
  log_to_stderr();
  const auto level = spdlog::level::from_str(options.log_level);
  if (level == spdlog::level::off && options.log_level != "off") {
    fail_input("--log-level: expected trace, debug, info, warn, error or off, got '{}'",
               options.log_level);
  }
  spdlog::set_level(level);
  if (options.threads < 0) fail_input("--threads: must be >= 0, got {}", options.threads);
  const auto threads = common::configure_threads(options.threads);
  spdlog::debug("CPU: {}", common::describe(threads));
  return Runtime{parse_device(options.device), parse_dtype(options.dtype)};
}

int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  const std::string name = app.get_name();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here as "errors" with exit code 0.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << name << ": error: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    log_to_stderr();
    common::tune_malloc();
    return body();
  } catch (const common::Interrupted& e) {
    std::cerr << name << ": " << e.what() << "\n";
    return e.exit_code();
  } catch (const InputError& e) {
    std::cerr << name << ": error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    // LibTorch messages can span lines; the first one says what went wrong.
    const std::string what = e.what_without_backtrace();
    std::cerr << name << ": error: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace mixlora::cli
