#!/usr/bin/env bash
# Tokenizer speed, ours (mixlora-tokenize --bench) against PyPI tokenizers (requirements/
# tokenizers.txt), one thread each, on the demo data (data/demo/**) and 10 MB of text.
# Rounds interleave the two so that load from other processes hits both alike; each round
# is a fresh process per side (load time excluded) and the report gives medians of the
# process CPU seconds of encoding (on a loaded machine wall time mostly measures the others).
#   scripts/bench_tokenizer.sh [MODEL_DIR...]     (default: ../shared/tokenizers/hf-llama3_1 and
#                                                  hf-qwen3 when present, else data/tokenizers/tiny-bytelevel)
#   ROUNDS=5 BUILD_DIR=build
# Not a test: timings depend on the machine. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/bin/mixlora-tokenize
ROUNDS=${ROUNDS:-5}
PY=$(bash scripts/setup-tokenizers-venv.sh | tail -n 1)
WORK=${BENCH_DIR:-${BUILD_DIR:-build}/bench-tokenizer}
mkdir -p "$WORK"
[ -s "$WORK/text10mb.txt" ] || "$PY" scripts/bench_tokenizer.py make-inputs "$WORK"
dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  for name in hf-llama3_1 hf-qwen3; do
    [ -f "../shared/tokenizers/$name/tokenizer.json" ] && dirs+=("../shared/tokenizers/$name")
  done
  [ ${#dirs[@]} -gt 0 ] || dirs=(data/tokenizers/tiny-bytelevel)
fi
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), ${ROUNDS} interleaved rounds, medians"
echo
echo "| tokenizer | input | MB | tokens (ours / PyPI) | ours CPU s | PyPI CPU s | ours / PyPI |"
echo "|---|---|---|---|---|---|---|"
for dir in "${dirs[@]}"; do
  for input in demo.txt text10mb.txt; do
    ours=(); theirs=(); our_tokens=; their_tokens=
    for _ in $(seq "$ROUNDS"); do
      o=$(OMP_NUM_THREADS=1 "$BIN" --base-model "$dir" --bench "$WORK/$input" --repeats 1)
      p=$("$PY" scripts/bench_tokenizer.py time "$dir/tokenizer.json" "$WORK/$input" 1)
      ours+=("$(echo "$o" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seconds"][0])')")
      theirs+=("$(echo "$p" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seconds"][0])')")
      our_tokens=$(echo "$o" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')
      their_tokens=$(echo "$p" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')
    done
    mo=$(printf '%s\n' "${ours[@]}" | median)
    mp=$(printf '%s\n' "${theirs[@]}" | median)
    mb=$(awk -v b="$(wc -c < "$WORK/$input")" 'BEGIN {printf "%.2f", b / 1e6}')
    ratio=$(awk -v a="$mo" -v b="$mp" 'BEGIN {printf "%.2f", a / b}')
    echo "| $(basename "$dir") | $input | $mb | $our_tokens / $their_tokens | $(printf '%.3f' "$mo") | $(printf '%.3f' "$mp") | $ratio |"
  done
done
