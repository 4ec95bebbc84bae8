#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# The Python reference stack (transformers, PEFT, MixLoRA plugin, MoE-PEFT) the interop tests
# load our adapters into; tests that need it skip when MIXLORA_PYTHON is unset.
MIXLORA_PYTHON=$(bash scripts/setup-python-refs.sh | tail -1)
export MIXLORA_PYTHON
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j "${JOBS:-$(nproc)}")
# Reliability (README "Reliability"): the parser tests under ASan + UBSan, then a 30 s libFuzzer
# smoke of each harness, both from build-fuzz (clang). MIXLORA_SKIP_FUZZ=1 skips them.
if [ "${MIXLORA_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/sanitize.sh
  bash scripts/fuzz_smoke.sh
fi
