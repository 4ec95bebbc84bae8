#!/usr/bin/env bash
# Builds the project against the CUDA LibTorch 2.x inside the pinned pip torch
# (scripts/setup-torch2.sh, installed when missing) into build-torch2/ (docs/building-cuda.md).
# The CUDA toolkit (nvcc, cuBLAS, NCCL headers) is taken from CUDA_HOME, else /usr/local/cuda;
# no GPU is needed to build. Extra arguments go to CMake's configure step.
#   BUILD_DIR  build folder (default build-torch2)    JOBS  parallel compile jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=$(bash scripts/setup-torch2.sh | tail -n 1)
CUDA_ROOT=${CUDA_HOME:-/usr/local/cuda}
cuda_args=()
if [ -x "$CUDA_ROOT/bin/nvcc" ]; then
  # Caffe2's cuda.cmake looks for nvcc on PATH or in CUDAToolkit_ROOT; NCCL_ROOT / CUDA_HOME
  # also lead CMakeLists.txt to nccl.h.
  cuda_args=(-DCUDAToolkit_ROOT="$CUDA_ROOT" -DCMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc")
  export CUDA_HOME=$CUDA_ROOT
else
  echo "build-torch2: no CUDA toolkit at $CUDA_ROOT (set CUDA_HOME): CMake will look on its own" >&2
fi
# No kernels of our own: the architecture list only spares cuda.cmake probing for a GPU.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}
BUILD_DIR=${BUILD_DIR:-build-torch2} bash scripts/build.sh -DCMAKE_PREFIX_PATH="$PREFIX" "${cuda_args[@]}" "$@"
grep -H 'MIXLORA_WITH_\(CUDA\|NCCL\|GLOO\)' "${BUILD_DIR:-build-torch2}/generated/mixlora/common/build_info.h"
