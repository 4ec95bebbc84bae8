#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, run.
# Until the embedded base model lands (issue 5), the demo runs on the stories260K checkpoint
# next to the repository (../shared/models/stories260K) or on MODEL_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BIN=${BUILD_DIR:-build}/bin
MODEL_DIR=${MODEL_DIR:-../shared/models/stories260K}
if [ ! -f "$MODEL_DIR/config.json" ]; then
  echo "demo: no base model at $MODEL_DIR (set MODEL_DIR to a Hugging Face LLaMA directory)" >&2
  exit 2
fi
echo "== greedy continuation of BOS (64 token ids) =="
"$BIN/mixlora-generate" --base-model "$MODEL_DIR" --prompt-ids 1 --max-new-tokens 64 --temperature 0 --print-ids
