#!/usr/bin/env bash
# ThreadSanitizer run of the data-parallel tests (docs/reliability.md): builds the library,
# mixlora-train and the [distributed] tests with -fsanitize=thread (clang, into build-tsan) and
# runs the tests that train on two Gloo ranks; each rank is an instrumented mixlora-train. A
# report from any process fails the run. Debian's LibTorch and Gloo are not instrumented: TSan
# sees their locks (pthread calls are intercepted) but not their atomics, so the few reports
# that stem from inside them alone are suppressed, by name, in scripts/tsan.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${TSAN_BUILD_DIR:-build-tsan}
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMIXLORA_TSAN=ON >/dev/null
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target mixlora-train mixlora-tests-tsan
logs="$PWD/$BUILD/tsan-logs"
rm -rf "$logs" && mkdir -p "$logs/canary"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# First a deliberate race (tests/tsan_canary.cpp): it must be reported, or nothing below counts.
TSAN_OPTIONS="log_path=$logs/canary/report" "$BUILD/bin/mixlora-tests-tsan" "[.tsan-canary]" \
  >/dev/null 2>&1 || true
compgen -G "$logs/canary/report*" >/dev/null ||
  { echo "tsan.sh: the canary race was not reported: is $BUILD instrumented?" >&2; exit 1; }
echo "tsan.sh: the canary race was reported; running the data-parallel tests"
# log_path: every process (the test and each rank) writes its reports to its own file.
# print_suppressions: each process also writes how often each suppression matched.
export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp print_suppressions=1 log_path=$logs/report second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
status=0
"$BUILD/bin/mixlora-tests-tsan" "${@:-[distributed]}" || status=$?
if compgen -G "$logs/report*" >/dev/null; then  # the canary's reports are in a subfolder
  # Lines "  COUNT race:NAME" after "Matched N suppressions": totals over all processes.
  awk '$2 ~ /^race:/ { n[$2] += $1 } END { for (k in n) printf "tsan.sh: suppressed %d x %s\n", n[k], k }' \
    "$logs"/report* | sort
  if grep -l "WARNING: ThreadSanitizer" "$logs"/report* >/dev/null; then
    grep -h -v "^ThreadSanitizer: Matched\|^ *[0-9]* race:" "$logs"/report* >&2
    echo "tsan.sh: ThreadSanitizer reported the races above ($logs)" >&2
    exit 1
  fi
fi
echo "tsan.sh: no ThreadSanitizer report"
exit "$status"
