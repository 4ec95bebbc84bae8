#!/usr/bin/env bash
# The modules of src/mixlora form a stack (no include cycle) and lora is a leaf on LibTorch.
set -euo pipefail
SRC=$2
out=$(python3 "$SRC/scripts/check_module_graph.py" "$SRC")
echo "$out"
grep -qx 'lora: (leaf)' <<< "$out" || { echo "FAIL: lora must be a leaf module"; exit 1; }
# The checker itself must see a cycle: a scratch tree where two modules include each other.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/mixlora/a" "$tmp/src/mixlora/b"
echo '#include "mixlora/b/x.h"' > "$tmp/src/mixlora/a/y.h"
echo '#include "mixlora/a/y.h"' > "$tmp/src/mixlora/b/x.h"
if python3 "$SRC/scripts/check_module_graph.py" "$tmp" 2> "$tmp/err"; then
  echo "FAIL: the checker missed a cycle"; exit 1
fi
grep -q 'module cycle: a -> b' "$tmp/err" || { cat "$tmp/err"; exit 1; }
echo "module graph: no cycle"
