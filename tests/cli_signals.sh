# SIGINT / SIGTERM during training: the step in progress finishes, every unfinished adapter is
# checkpointed, the exit code is 130 / 143, and --resume ends with an uninterrupted run's bytes.
set -euo pipefail
BIN=$1 SRC=$2
source "$SRC/tests/train_run.sh"
train_run_setup 48 1000

train "$WORK/ref" >/dev/null 2>"$WORK/ref.log" || fail "reference run: $(tail -n 2 "$WORK/ref.log")"
for sig in INT TERM; do
  out="$WORK/$sig"
  args "$out"
  "$BIN/mixlora-train" "${ARGS[@]}" >/dev/null 2>"$WORK/$sig.log" &
  pid=$!
  # Signal once three steps are logged (24 steps in all: the run is far from done).
  for _ in $(seq 1 600); do
    [ "$(cat "$out/mixlora/metrics.jsonl" 2>/dev/null | wc -l)" -ge 3 ] && break
    sleep 0.05
  done
  kill -s "$sig" "$pid"
  rc=0
  wait "$pid" || rc=$?
  want=$([ $sig = INT ] && echo 130 || echo 143)
  [ "$rc" = "$want" ] || fail "SIG$sig: exit $rc, expected $want; $(tail -n 2 "$WORK/$sig.log")"
  tail -n 1 "$WORK/$sig.log" | grep -q "stopped by .* continue with --resume" || fail "SIG$sig: last line $(tail -n 1 "$WORK/$sig.log")"
  [ ! -e "$out/mixlora/adapter_model.safetensors" ] || fail "SIG$sig: run finished before the signal"
  # The checkpoint is at the last logged step: the step in progress was finished, not lost.
  last=$(tail -n 1 "$out/mixlora/metrics.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')
  [ -f "$out/mixlora/checkpoint-$last/trainer_state.json" ] || fail "SIG$sig: no checkpoint-$last: $(ls "$out/mixlora")"
  train "$out" --resume >/dev/null 2>>"$WORK/$sig.log" || fail "SIG$sig: resume failed: $(tail -n 2 "$WORK/$sig.log")"
  cmp "$WORK/ref/mixlora/adapter_model.safetensors" "$out/mixlora/adapter_model.safetensors" ||
    fail "SIG$sig: resumed adapter differs from the uninterrupted run"
  echo "SIG$sig: exit $rc, checkpoint-$last, resumed to identical bytes"
done
