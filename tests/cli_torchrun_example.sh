# scripts/torchrun-example.sh with the torchrun of the build's own LibTorch major version (the
# agent's TCPStore speaks to ours): the pip torch 2.x venv's (scripts/setup-torch2.sh) for a
# 2.x build, Debian's python3-torch for 1.13. 2 local CPU ranks over Gloo meet in torchrun's own
# store (TORCHELASTIC_USE_AGENT_STORE) and train stories260K; both must finish and agree (rank 1
# exits 0 only when its adapter equals rank 0's bit for bit), rank 0 reporting 2 Gloo ranks.
set -euo pipefail
BIN=$1 SRC=$2
bash -n "$SRC/scripts/torchrun-example.sh"
libtorch=$("$BIN/mixlora-train" --version | sed -n 's/.*(LibTorch \([0-9]*\)\..*/\1/p')
if [ "$libtorch" = 1 ]; then
  TORCHRUN=${MIXLORA_TORCHRUN:-/usr/bin/torchrun}
  extra=(-r 2 -t 2)  # Debian's torchrun 1.13 on Python 3.11 needs explicit redirects (the script's default)
else
  TORCHRUN=${MIXLORA_TORCHRUN:-$HOME/.cache/mixlora/venv-torch2/bin/torchrun}
  extra=()
fi
if [ ! -x "$TORCHRUN" ]; then
  echo "skipped: needs torchrun of torch $libtorch.x at $TORCHRUN (2.x: bash scripts/setup-torch2.sh; or set MIXLORA_TORCHRUN)"
  exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
head -n 16 "$SRC/data/stories/train.jsonl" >"$WORK/rows.jsonl"
rc=0
env TORCHRUN="$TORCHRUN" BUILD_DIR="$(dirname "$BIN")" OUTPUT_DIR="$WORK/out" OMP_NUM_THREADS=1 \
  TORCHRUN_ARGS="${extra[*]}" \
  bash "$SRC/scripts/torchrun-example.sh" 2 --set "lora[0].data=$WORK/rows.jsonl" \
  --set lora[0].batch_size=4 --set lora[0].micro_batch_size=2 --set lora[0].lora_dropout=0 \
  --set log_every=1 --threads 1 >"$WORK/torchrun.log" 2>&1 || rc=$?
[ $rc = 0 ] || fail "torchrun-example.sh exit $rc: $(tail -n 8 "$WORK/torchrun.log")"
grep -q "2 ranks joined over gloo" "$WORK/torchrun.log" || fail "no '2 ranks joined over gloo': $(tail -n 8 "$WORK/torchrun.log")"
[ -f "$WORK/out/mixlora/adapter_model.safetensors" ] || fail "no adapter written: $(tail -n 8 "$WORK/torchrun.log")"
steps=$(wc -l <"$WORK/out/mixlora/metrics.jsonl")
[ "$steps" = 4 ] || fail "expected 4 logged steps (16 rows, global batch 4), got $steps"
echo "torchrun-example.sh with $TORCHRUN (LibTorch $libtorch build): 2 ranks over gloo trained 4 steps"
