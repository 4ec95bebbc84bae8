// Runs one of our executables the way a user would and captures exit code, stdout and stderr.
#pragma once

#include "test_helpers.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace mixlora::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Single-quoted for /bin/sh: `lora[0].lr=...` must not be globbed.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// `command` is a shell command line whose first word is an executable in the build's bin dir;
// it runs in `cwd` when one is given.
inline CommandResult run_tool(const std::string& command, const std::string& cwd = "") {
  static int counter = 0;
  const auto base = std::filesystem::temp_directory_path() /
                    fmt::format("mixlora-cli-{}-{}", ::getpid(), counter++);
  const std::string out = base.string() + ".out", err = base.string() + ".err";
  const std::string cd = cwd.empty() ? "" : fmt::format("cd {} && ", shell_quote(cwd));
  const std::string line = fmt::format("{}{}/{} >{} 2>{}", cd, MIXLORA_TEST_BIN_DIR, command,
                                       shell_quote(out), shell_quote(err));
  const int status = std::system(line.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = slurp(out);
  result.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return result;
}

inline size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

}  // namespace mixlora::test
