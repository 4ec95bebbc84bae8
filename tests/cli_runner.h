// Runs one of our executables the way a user would and captures exit code, stdout and stderr.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace mixlora::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `command` is a shell command line whose first word is an executable in the build's bin dir.
inline CommandResult run_tool(const std::string& command) {
  static int counter = 0;
  const auto base = std::filesystem::temp_directory_path() /
                    fmt::format("mixlora-cli-{}-{}", ::getpid(), counter++);
  const std::string out = base.string() + ".out", err = base.string() + ".err";
  const std::string line = fmt::format("{}/{} >{} 2>{}", MIXLORA_TEST_BIN_DIR, command, out, err);
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
