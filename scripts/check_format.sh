#!/usr/bin/env bash
# Fails when a C++ file is not formatted as .clang-format says (clang-format 14), naming it.
# Fix with: clang-format-14 -i FILE...
set -euo pipefail
cd "$(dirname "$0")/.."
find apps src tests fuzz \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0 |
  xargs -0 clang-format-14 --dry-run --Werror
# Tests take Catch2 through tests/catch.h, which keeps LibTorch's CHECK macro from replacing
# Catch's (a failing CHECK would abort the test binary).
if grep -rn '#include <catch2/catch.hpp>' tests fuzz | grep -v '^tests/catch.h:'; then
  echo "check_format: include \"catch.h\" in tests, not <catch2/catch.hpp>" >&2
  exit 1
fi
echo "check_format: every C++ file is formatted; tests include catch.h"
