#!/usr/bin/env bash
# Fails when a C++ file is not formatted as .clang-format says (clang-format 14), naming it.
# Fix with: clang-format-14 -i FILE...
set -euo pipefail
cd "$(dirname "$0")/.."
find apps src tests fuzz \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0 |
  xargs -0 clang-format-14 --dry-run --Werror
echo "check_format: every C++ file is formatted"
