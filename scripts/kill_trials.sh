#!/usr/bin/env bash
# kill -9 at random moments of a small stories260K training run that checkpoints every step,
# then --resume (again and again if needed): every resumed run must end with the adapter bytes
# of an uninterrupted run, and no incomplete checkpoint may ever be taken for a complete one.
# usage: scripts/kill_trials.sh [TRIALS=20] [BIN_DIR=build/bin] [TARGETED=0]   (prints a summary)
# MIN_KILLED=N fails the run when fewer than N trials killed the run mid-way (a trial whose run
# finished before its kill tests nothing).
# TARGETED more trials each kill the run the moment a checkpoint is being written (a
# .checkpoint-N.tmp directory exists), after a random number of completed checkpoints.
set -euo pipefail
TRIALS=${1:-20}
BIN=$(cd "${2:-build/bin}" && pwd)
TARGETED=${3:-0}
SRC=$(cd "$(dirname "$0")/.." && pwd)
source "$SRC/tests/train_run.sh"
# 48 rows, 4 per step in 2 micro-batches, 2 epochs: 24 steps, a checkpoint after each.
train_run_setup 48 1

start=$(date +%s%N)
train "$WORK/ref" >/dev/null 2>"$WORK/ref.log"
ms=$((($(date +%s%N) - start) / 1000000))
ref="$WORK/ref/mixlora"

# Every checkpoint-N directory must be whole: the four files, and a trainer_state that parses.
check_checkpoints() {
  local dir=$1 c
  for c in "$dir"/checkpoint-*; do
    [ -d "$c" ] || continue
    for f in adapter_config.json adapter_model.safetensors optimizer.safetensors trainer_state.json; do
      [ -s "$c/$f" ] || { echo "incomplete checkpoint $c (no $f)"; return 1; }
    done
  done
}

killed=0 during_checkpoint=0 during_file=0 finished_first=0 resumes=0 equal=0 bad=0
for trial in $(seq 1 $((TRIALS + TARGETED))); do
  out="$WORK/t$trial"
  args "$out"
  "$BIN/mixlora-train" "${ARGS[@]}" >/dev/null 2>"$WORK/t$trial.log" &
  pid=$!
  if [ "$trial" -le "$TRIALS" ]; then
    # A delay anywhere in the run, process start-up included.
    delay_ms=$((RANDOM % (ms * 9 / 10 + 1)))
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  else
    # Targeted: after 1..20 complete checkpoints, at the first sight of one being written.
    after=$((1 + RANDOM % 20))
    delay_ms="checkpoint $after"
    while kill -0 "$pid" 2>/dev/null; do
      [ -d "$out/mixlora/checkpoint-$after" ] && compgen -G "$out/mixlora/.checkpoint-*.tmp" >/dev/null && break
    done
  fi
  if kill -9 "$pid" 2>/dev/null; then
    killed=$((killed + 1))
    wait "$pid" 2>/dev/null || true
    compgen -G "$out/mixlora/.checkpoint-*.tmp" >/dev/null && during_checkpoint=$((during_checkpoint + 1))
    compgen -G "$out/mixlora/*.tmp.*" >/dev/null && during_file=$((during_file + 1))
  else
    wait "$pid" || true
    finished_first=$((finished_first + 1))
  fi
  check_checkpoints "$out/mixlora" || { bad=$((bad + 1)); continue; }
  ok=0
  for attempt in 1 2 3; do
    resumes=$((resumes + 1))
    if train "$out" --resume >/dev/null 2>>"$WORK/t$trial.log"; then ok=1; break; fi
  done
  if [ $ok = 1 ] && cmp -s "$ref/adapter_model.safetensors" "$out/mixlora/adapter_model.safetensors" &&
    cmp -s "$ref/adapter_config.json" "$out/mixlora/adapter_config.json"; then
    equal=$((equal + 1))
  else
    bad=$((bad + 1))
    echo "trial $trial (kill after ${delay_ms} ms): resumed run differs or failed; log:" >&2
    tail -n 3 "$WORK/t$trial.log" >&2
  fi
  rm -rf "$out"
done
echo "kill -9 trials: $TRIALS random + $TARGETED targeted (uninterrupted run $ms ms); killed mid-run $killed (with a checkpoint being" \
  "written $during_checkpoint, a file being written $during_file), finished before the kill $finished_first;" \
  "resume runs $resumes; final adapter byte-equal $equal / $((TRIALS + TARGETED)); failures $bad"
[ "$bad" = 0 ] || exit 1
if [ "$killed" -lt "${MIN_KILLED:-0}" ]; then
  echo "only $killed of $((TRIALS + TARGETED)) trials killed the run mid-way (need ${MIN_KILLED})" >&2
  exit 1
fi
