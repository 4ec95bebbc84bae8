# Shared by the fault scripts (tests/cli_*.sh, scripts/kill_trials.sh): a small stories260K
# MixLoRA run on the first ROWS copy-task rows, 4 rows per step in 2 micro-batches, 2 epochs,
# a checkpoint every SAVE_STEP steps. Source it after setting SRC and BIN, then call
# train_run_setup ROWS SAVE_STEP.
#   train OUT FLAGS...   runs in the foreground;
#   args OUT FLAGS...; "$BIN/mixlora-train" "${ARGS[@]}" &   runs the process itself in the background.
MODEL=${MIXLORA_STORIES:-$SRC/data/stories260K}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

train_run_setup() {
  head -n "$1" "$SRC/data/stories/train.jsonl" >"$WORK/rows.jsonl"
  SAVE_STEP=$2
}
args() {
  local out=$1
  shift
  ARGS=(--config "$SRC/configs/mixlora.json" --base-model "$MODEL" --output-dir "$out" \
    --set "lora[0].data=$WORK/rows.jsonl" --set lora[0].batch_size=4 --set lora[0].micro_batch_size=2 \
    --set lora[0].num_epochs=2 --set lora[0].lr=0.01 --set "save_step=$SAVE_STEP" --set log_every=1 "$@")
}
train() {
  args "$@"
  "$BIN/mixlora-train" "${ARGS[@]}"
}
fail() { echo "FAIL: $*" >&2; exit 1; }
