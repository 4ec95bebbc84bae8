#!/usr/bin/env bash
# Data-parallel mixlora-train on this machine through torchrun (docs/distributed.md):
# torchrun starts NPROC copies of the binary itself (--no_python, which torch >= 2
# also spells --no-python) and gives each RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
# MASTER_PORT, which mixlora-train reads.
#   scripts/torchrun-example.sh [NPROC] [more mixlora-train flags]
# TORCHRUN names the launcher (default: torchrun on PATH; a pip torch 2.x venv has bin/torchrun).
# Several nodes: run on each node, with the same --master_addr/--master_port and its own rank:
#   torchrun --nnodes 2 --node_rank 0|1 --master_addr HOST0 --master_port 29500 \
#            --nproc_per_node 4 --no_python build/bin/mixlora-train --device cuda ...
set -euo pipefail
cd "$(dirname "$0")/.."
NPROC=${1:-2}
shift || true
BIN=${BUILD_DIR:-build}/bin
MODEL_DIR=${MODEL_DIR:-data/stories260K}
OUTPUT_DIR=${OUTPUT_DIR:-output/torchrun}
# The cores shared among the ranks: more threads than cores only slows every rank down.
THREADS=$(( $(nproc) / NPROC ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( THREADS > 0 ? THREADS : 1 ))}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$OMP_NUM_THREADS}
# Debian's torchrun 1.13 under Python 3.11 trips over its own default redirect setting unless
# given one ("-r 2 -t 2": each rank's stderr to a log file, teed to the console, prefixed).
TORCHRUN_ARGS=${TORCHRUN_ARGS:--r 2 -t 2}
# shellcheck disable=SC2086
exec "${TORCHRUN:-torchrun}" --standalone --nproc_per_node "$NPROC" $TORCHRUN_ARGS --no_python \
  "$BIN/mixlora-train" --config configs/mixlora.json --base-model "$MODEL_DIR" \
  --output-dir "$OUTPUT_DIR" --overwrite "$@"
