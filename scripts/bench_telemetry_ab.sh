#!/usr/bin/env bash
# Cost of router telemetry (docs/telemetry.md): mixlora-bench without and with
# --router-telemetry, interleaved A B A B ... so that a change in machine load hits both alike.
# Prints each pair's ms/step (wall) and CPU ms/step with their on/off ratios, then the median
# ratios and their spread. On a loaded machine the CPU time (all of the process's threads) is the
# steadier of the two.
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
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["runs"][0]; print(r["ms_per_step"], r["cpu_ms_per_step"])' "$TMP/bench.json"
}
wall=(); cpu=()
for i in $(seq 1 "$PAIRS"); do
  read -r a ac < <(ms)
  read -r b bc < <(ms --router-telemetry)
  w=$(python3 -c "print(f'{$b / $a:.4f}')")
  c=$(python3 -c "print(f'{$bc / $ac:.4f}')")
  wall+=("$w"); cpu+=("$c")
  echo "pair $i: off $a ms ($ac cpu), on $b ms ($bc cpu); on/off wall $w, cpu $c"
done
python3 - "${wall[*]}" "${cpu[*]}" <<'PY'
import statistics, sys
for name, text in (("wall", sys.argv[1]), ("cpu", sys.argv[2])):
    r = sorted(float(x) for x in text.split())
    print(f"{name}: median on/off {statistics.median(r):.4f}; min {r[0]:.4f}, max {r[-1]:.4f}; "
          f"quartiles {r[len(r) // 4]:.4f}..{r[(3 * len(r)) // 4]:.4f} over {len(r)} pairs")
PY
