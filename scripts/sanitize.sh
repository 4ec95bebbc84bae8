#!/usr/bin/env bash
# Builds the parser-focused tests (test_safetensors, test_config, test_dataset over the readers
# of io/, config/, data/ and model/model_config) with AddressSanitizer and UBSan (clang, into
# build-fuzz, shared with scripts/fuzz_smoke.sh) and runs them. Any sanitizer report fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIXLORA_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target mixlora-parser-tests-san
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"$BUILD/bin/mixlora-parser-tests-san" "$@"
