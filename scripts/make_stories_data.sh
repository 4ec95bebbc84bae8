#!/usr/bin/env bash
# Rebuilds data/stories/{train,test}.jsonl: pre-tokenized rows for the stories260K model (which
# has no tokenizer). Each row is BOS, 16 tokens of a story sampled from stories260K itself
# (temperature 1), then the same 16 tokens again: a copy task that the base model does poorly
# on and that adapters learn, so training visibly lowers the held-out loss.
# Usage: scripts/make_stories_data.sh [MODEL_DIR]   (needs a build in build/)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-data/stories260K}
BIN=${BUILD_DIR:-build}/bin
out=data/stories
mkdir -p "$out"
make_rows() {  # first_seed wanted_rows file
  : > "$3.tmp"
  local seed=$1 rows=0
  while [ "$rows" -lt "$2" ]; do
    # One sampled story of 256 tokens gives up to 16 chunks of 16 (fewer if it ends early).
    read -r -a ids <<<"$("$BIN/mixlora-generate" --base-model "$MODEL" --prompt-ids 1 \
        --max-new-tokens 256 --temperature 1.0 --seed "$seed" --print-ids --log-level error)"
    seed=$((seed + 1))
    for ((i = 0; i + 16 <= ${#ids[@]} && rows < $2; i += 16)); do
      chunk=("${ids[@]:i:16}")
      case " ${chunk[*]} " in *" 1 "*|*" 2 "*) continue ;; esac  # no BOS/EOS inside a row
      csv=$(IFS=,; echo "${chunk[*]}")
      echo "{\"input_ids\": [1,$csv,$csv]}" >> "$3.tmp"
      rows=$((rows + 1))
    done
  done
  mv "$3.tmp" "$3"
}
make_rows 1 2048 "$out/train.jsonl"
make_rows 100001 128 "$out/test.jsonl"
wc -l "$out"/*.jsonl
