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

# --pretrain has no checkpoints: a signal finishes the step and saves the model as it is.
pre="$WORK/pretrain"
"$BIN/mixlora-train" --pretrain --config "$SRC/configs/mixlora.json" --base-model "$MODEL" \
  --output-dir "$pre" --set "lora[0].data=$WORK/rows.jsonl" --set lora[0].batch_size=2 \
  --set lora[0].micro_batch_size=1 --set lora[0].num_epochs=100 --set log_every=1 \
  >/dev/null 2>"$WORK/pretrain.log" &
pid=$!
for _ in $(seq 1 600); do
  [ "$(cat "$pre/metrics.jsonl" 2>/dev/null | wc -l)" -ge 3 ] && break
  sleep 0.05
done
kill -s INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 130 ] || fail "pretrain SIGINT: exit $rc, expected 130; $(tail -n 2 "$WORK/pretrain.log")"
line=$(tail -n 1 "$WORK/pretrain.log")
step=$(echo "$line" | sed -n 's/.*after step \([0-9]*\) of .*the model so far is saved in.*/\1/p')
[ -n "$step" ] || fail "pretrain SIGINT: last line $line"
last=$(tail -n 1 "$pre/metrics.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')
[ "$step" = "$last" ] || fail "pretrain SIGINT: stopped after step $step, last logged step $last"
# The saved model is a base model: a one-step pretraining run starts from it.
"$BIN/mixlora-train" --pretrain --config "$SRC/configs/mixlora.json" --base-model "$pre" \
  --output-dir "$WORK/pretrain-2" --set "lora[0].data=$WORK/rows.jsonl" --set lora[0].batch_size=48 \
  --set lora[0].micro_batch_size=48 --set lora[0].num_epochs=1 >/dev/null 2>>"$WORK/pretrain.log" ||
  fail "pretrain SIGINT: the saved model does not load: $(tail -n 2 "$WORK/pretrain.log")"
echo "pretrain SIGINT: exit 130 after step $step, model saved and loadable"

