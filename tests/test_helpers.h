// Small helpers shared by the Catch2 tests.
#pragma once

#include "catch.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

// The expression throws mixlora::InputError (exit code 2 in the apps) with a message that
// satisfies the string matcher.
#define REQUIRE_INPUT_ERROR(expr, matcher)          \
  do {                                              \
    REQUIRE_THROWS_AS(expr, ::mixlora::InputError); \
    REQUIRE_THROWS_WITH(expr, matcher);             \
  } while (false)

namespace mixlora::test {

// The real stories260K checkpoint shipped in data/stories260K (MIT). Its loaded model is in
// stories_model.h, for the tests that need LibTorch models.
inline const std::string& stories_dir() {
  static const std::string dir = MIXLORA_TEST_SOURCE_DIR "/data/stories260K";
  return dir;
}

// Skipping: a test whose optional input is missing prints one line starting "skipped: needs"
// and returns; CTest's SKIP_REGULAR_EXPRESSION (tests/CMakeLists.txt) counts it as skipped,
// never as passed. Use: `if (!have_or_skip(path, "../shared/...")) return;`
inline bool have_or_skip(const std::string& path, const std::string& what) {
  if (std::filesystem::exists(path)) return true;
  std::cout << "skipped: needs " << what << std::endl;
  return false;
}

// The Python of the reference venv (scripts/setup-python-refs.sh prints it; scripts/test.sh
// exports it as MIXLORA_PYTHON), or "" after printing the skip line when it is not set.
inline std::string reference_python_or_skip() {
  const char* python = std::getenv("MIXLORA_PYTHON");
  if (python != nullptr && *python != '\0') return python;
  std::cout << "skipped: needs MIXLORA_PYTHON (the venv of scripts/setup-python-refs.sh)"
            << std::endl;
  return "";
}

// The whole file as bytes ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `bytes` to `path` unchanged, replacing what was there.
inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A fresh scratch directory under the system temp dir, unique per process and object, removed
// with its contents when the object goes.
struct TempDir {
  std::filesystem::path path;

  TempDir() {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("mixlora-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);  // left by an earlier process with the same pid
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string str() const { return path.string(); }
  // The path of `name` inside the directory.
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  // Writes the file `name` with `bytes` and returns its path.
  std::string write(const std::string& name, const std::string& bytes) const {
    const auto file = *this / name;
    write_file(file, bytes);
    return file;
  }
  // The names of the entries directly inside, sorted.
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// The first `n` lines of the stories copy-task training data (data/stories/train.jsonl).
inline std::vector<std::string> stories_rows(size_t n) {
  std::ifstream in(MIXLORA_TEST_SOURCE_DIR "/data/stories/train.jsonl");
  std::vector<std::string> rows;
  std::string line;
  while (rows.size() < n && std::getline(in, line)) rows.push_back(line);
  REQUIRE(rows.size() == n);
  return rows;
}

inline void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
}

}  // namespace mixlora::test
