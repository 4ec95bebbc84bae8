#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check_format.sh   # .clang-format over every C++ file (seconds)
bash scripts/build.sh ${CI:+-DMIXLORA_WERROR=ON}   # CI: a compiler warning fails the build
# The Python reference stack (torch 2.x, transformers, PEFT, MixLoRA plugin, MoE-PEFT; and a newer
# transformers for Qwen3 / Gemma-3) that the parity and interop tests compare against; tests that
# need it skip when MIXLORA_PYTHON is unset.
MIXLORA_PYTHON=$(bash scripts/setup-python-refs.sh | tail -n 1)
export MIXLORA_PYTHON
MIXLORA_TRANSFORMERS_NEW=$(bash scripts/setup-transformers-new.sh | tail -n 1)
export MIXLORA_TRANSFORMERS_NEW
# PyPI tokenizers for the tokenizer.json reference test; that test skips when this venv cannot be made.
export MIXLORA_TOKENIZERS_PYTHON=${MIXLORA_TOKENIZERS_PYTHON:-$(bash scripts/setup-tokenizers-venv.sh 2>/dev/null | tail -n 1 || true)}
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j "${JOBS:-$(nproc)}")
# The second variant (docs/building-cuda.md): the CUDA LibTorch 2.x of the pinned pip torch, in
# build-torch2/, CUDA, NCCL and Gloo on, the whole suite on the CPU. MIXLORA_TORCH2=0 skips it.
if [ "${MIXLORA_TORCH2:-1}" = 1 ]; then  # MIXLORA_TORCH2=0 skips it
  BUILD_DIR=build-torch2 bash scripts/build-torch2.sh
  for flag in CUDA NCCL GLOO; do
    grep -q "^#define MIXLORA_WITH_$flag 1" build-torch2/generated/mixlora/common/build_info.h ||
      { echo "test.sh: the LibTorch 2.x build has MIXLORA_WITH_$flag off" >&2; exit 1; }
  done
  (cd build-torch2 && ctest --output-on-failure -j "${JOBS:-$(nproc)}")
fi
# Reliability (docs/reliability.md): the parser tests under ASan + UBSan, then a 30 s libFuzzer
# smoke of each harness, both from build-fuzz (clang). MIXLORA_SKIP_FUZZ=1 skips them.
if [ "${MIXLORA_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/sanitize.sh
  bash scripts/fuzz_smoke.sh
fi
# ThreadSanitizer over the data-parallel tests (two Gloo ranks, instrumented mixlora-train),
# from build-tsan (clang). MIXLORA_SKIP_TSAN=1 skips it.
if [ "${MIXLORA_SKIP_TSAN:-0}" != 1 ]; then
  bash scripts/tsan.sh
fi
