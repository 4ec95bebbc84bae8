#!/usr/bin/env bash
# Cost of router telemetry (docs/telemetry.md): mixlora-bench without and with
# --router-telemetry, interleaved A B A B ... so that a change in machine load hits both alike.
# Prints each pair's ms/step and their ratio, then the median ratio and its spread.
#   scripts/bench_telemetry_ab.sh [PAIRS] [extra mixlora-bench flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-6}
shift || true
BENCH=${BENCH:-build/bin/mixlora-bench}
common=(--preset tiny --runs mixlora --seq-len 128 --micro-batch 4 --warmup 2 --steps 9 --threads 1 "$@")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ms() {
  "$BENCH" "${common[@]}" "$@" --json "$TMP/bench.json" >/dev/null 2>&1
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["runs"][0]["ms_per_step"])' "$TMP/bench.json"
}
ratios=()
for i in $(seq 1 "$PAIRS"); do
  a=$(ms)
  b=$(ms --router-telemetry)
  r=$(python3 -c "print(f'{$b / $a:.4f}')")
  ratios+=("$r")
  echo "pair $i: off $a ms, on $b ms, on/off $r"
done
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = sorted(float(x) for x in sys.argv[1:])
print(f"median on/off {statistics.median(r):.4f}; min {r[0]:.4f}, max {r[-1]:.4f}; "
      f"quartiles {r[len(r) // 4]:.4f}..{r[(3 * len(r)) // 4]:.4f} over {len(r)} pairs")
PY
