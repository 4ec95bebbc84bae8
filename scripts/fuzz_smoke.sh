#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan; fuzz/CMakeLists.txt) into build-fuzz and
# runs each for FUZZ_SECONDS (default 30) from its committed seed corpus fuzz/corpus/<harness>/.
# A finding (crash, sanitizer report, an exception other than InputError, a timeout) fails the
# script; the input that caused it is kept as build-fuzz/findings/<harness>-crash-*.
# Longer runs: FUZZ_SECONDS=600 scripts/fuzz_smoke.sh fuzz_dataset
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
RUN_SECONDS=${FUZZ_SECONDS:-30}
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIXLORA_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target fuzz_safetensors fuzz_config fuzz_dataset fuzz_hf_tokenizer fuzz_torch_bin
mkdir -p "$BUILD/findings"
# LibTorch is not instrumented and keeps a few allocations for the life of the process.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_safetensors fuzz_config fuzz_dataset fuzz_hf_tokenizer fuzz_torch_bin)
for name in "${harnesses[@]}"; do
  new=$(mktemp -d)  # inputs found on the way; the committed corpus is only read
  log="$BUILD/findings/$name.log"
  if ! "$BUILD/bin/$name" -max_total_time="$RUN_SECONDS" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$BUILD/findings/$name-" "$new" "fuzz/corpus/$name" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz_smoke: $name found a problem; see $log and $BUILD/findings/" >&2
    rm -rf "$new"
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz_smoke: $name: ${RUN_SECONDS} s, $execs runs, no finding"
  rm -rf "$new"
done
