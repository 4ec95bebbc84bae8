# scripts/slurm/train.sbatch without Slurm (sbatch --test-only needs a cluster): syntax checks,
# then the script itself under a fake SLURM_* environment whose srun starts SLURM_NTASKS local
# tasks, 2 CPU ranks over Gloo on stories260K. Both must finish and agree (rank 1 exits 0 only
# when its adapter equals rank 0's bit for bit); rank 0 must report the Gloo group of 2 ranks.
set -euo pipefail
BIN=$1 SRC=$2
SCRIPT=$SRC/scripts/slurm/train.sbatch
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

bash -n "$SCRIPT" || fail "bash -n $SCRIPT"
if command -v shellcheck >/dev/null; then shellcheck "$SCRIPT" || fail "shellcheck $SCRIPT"; fi
grep -q '^#SBATCH --ntasks-per-node=' "$SCRIPT" || fail "no #SBATCH header in $SCRIPT"

# srun as Slurm runs it on one node: one task per SLURM_NTASKS, each with its SLURM_PROCID and
# SLURM_LOCALID, stderr per task; --kill-on-bad-exit ends the others when one fails.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/srun" <<'SRUN'
#!/usr/bin/env bash
kill_on_bad_exit=0
while [[ ${1:-} == --* ]]; do
  [[ $1 == --kill-on-bad-exit=1 ]] && kill_on_bad_exit=1
  shift
done
pids=()
for ((task = 0; task < SLURM_NTASKS; task++)); do
  SLURM_PROCID=$task SLURM_LOCALID=$task "$@" >"$SRUN_LOGS/task$task.out" 2>"$SRUN_LOGS/task$task.err" &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then
    rc=1
    if [ $kill_on_bad_exit = 1 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  fi
done
exit $rc
SRUN
chmod +x "$WORK/bin/srun"

head -n 16 "$SRC/data/stories/train.jsonl" >"$WORK/rows.jsonl"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rc=0
(cd "$SRC" && env PATH="$WORK/bin:$PATH" SRUN_LOGS="$WORK" \
  SLURM_JOB_ID=4242 SLURM_NTASKS=2 SLURM_NNODES=1 SLURM_JOB_NODELIST=localhost SLURM_CPUS_PER_TASK=1 \
  MASTER_PORT="$port" MIXLORA_DEVICE=cpu MIXLORA_TRAIN="$BIN/mixlora-train" \
  BASE_MODEL="$SRC/data/stories260K" OUTPUT_DIR="$WORK/out" \
  bash "$SCRIPT" --config configs/mixlora.json --set "lora[0].data=$WORK/rows.jsonl" \
    --set lora[0].batch_size=4 --set lora[0].micro_batch_size=2 --set lora[0].lora_dropout=0 \
    --set log_every=1 --threads 1) || rc=$?
[ $rc = 0 ] || fail "train.sbatch exit $rc; rank 0: $(tail -n 3 "$WORK/task0.err"); rank 1: $(tail -n 3 "$WORK/task1.err")"
grep -q "2 ranks joined over gloo" "$WORK/task0.err" || fail "rank 0 did not join 2 ranks over gloo: $(tail -n 5 "$WORK/task0.err")"
[ -f "$WORK/out/mixlora/adapter_model.safetensors" ] || fail "no adapter written: $(ls -R "$WORK/out")"
steps=$(wc -l <"$WORK/out/mixlora/metrics.jsonl")
[ "$steps" = 4 ] || fail "expected 4 logged steps (16 rows, global batch 4), got $steps"
echo "train.sbatch: 2 Slurm tasks over gloo trained 4 steps; rank 0: $(grep -m1 'ranks joined' "$WORK/task0.err")"
