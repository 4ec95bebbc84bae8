#!/usr/bin/env bash
# Rebuilds data/stories/{train,test}.jsonl: pre-tokenized rows for the stories260K model (which
# has no tokenizer). Each row is BOS, 16 tokens sampled from stories260K itself (temperature 1,
# seed = row number), then the same 16 tokens again: a copy task that the base model does
# poorly on and that adapters learn, so training visibly lowers the loss.
# Usage: scripts/make_stories_data.sh [MODEL_DIR]   (needs a build in build/)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-../shared/models/stories260K}
BIN=${BUILD_DIR:-build}/bin
out=data/stories
mkdir -p "$out"
make_rows() {  # first_seed count file
  : > "$3.tmp"
  for ((seed = $1; seed < $1 + $2; seed++)); do
    ids=$("$BIN/mixlora-generate" --base-model "$MODEL" --prompt-ids 1 --max-new-tokens 16 \
          --temperature 1.0 --seed "$seed" --print-ids --log-level error)
    n=$(wc -w <<<"$ids")
    if [ "$n" -ne 16 ]; then continue; fi  # stopped at EOS: skip
    csv=$(tr ' ' ',' <<<"$ids")
    echo "{\"input_ids\": [1,$csv,$csv]}" >> "$3.tmp"
  done
  mv "$3.tmp" "$3"
}
make_rows 1 256 "$out/train.jsonl"
make_rows 10001 64 "$out/test.jsonl"
wc -l "$out"/*.jsonl
