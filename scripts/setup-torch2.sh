#!/usr/bin/env bash
# Installs the pinned CUDA-enabled torch 2.x (requirements/torch2.txt) from PyPI into a venv
# outside the repository and prints LibTorch's CMake prefix path on the last line of stdout.
# Idempotent: a venv that already has the pinned torch is reused. Download: ~3 GB (torch wheel
# ~530 MB + CUDA 13 runtime wheels), ~6 GB on disk.
#   MIXLORA_VENV   where the venv lives (default ~/.cache/mixlora/venv-torch2)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MIXLORA_VENV:-$HOME/.cache/mixlora/venv-torch2}
PIN=$(grep -E '^torch==' requirements/torch2.txt)
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "setup-torch2: python3 has no venv/ensurepip module (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-torch2: creating venv $VENV" >&2
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
fi
# Without importing torch (seconds of loading CUDA libraries) or running pip.
have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)
if [ "torch==$have" != "$PIN" ]; then
  echo "setup-torch2: installing $PIN into $VENV (~3 GB download)" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements/torch2.txt >&2
fi
"$VENV/bin/python" -c 'import importlib.util, os
print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin), "share", "cmake"))'
