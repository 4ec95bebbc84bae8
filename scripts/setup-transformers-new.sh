#!/usr/bin/env bash
# Installs the newer transformers of requirements/transformers-new.txt (Qwen3, Gemma-3) with
# --no-deps into its own --target directory, next to the reference venv of
# scripts/setup-python-refs.sh, whose torch, numpy and safetensors it uses. Only
# tests/reference/make_tiny_arch.py reads it (sys.path, in a separate interpreter): PEFT 0.13.2 and
# MoE-PEFT keep the pinned transformers 4.46.3. Idempotent; prints the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(bash scripts/setup-python-refs.sh | tail -n 1)
TARGET=${MIXLORA_TRANSFORMERS_NEW:-$HOME/.cache/mixlora/transformers-new}
stamp="$TARGET/.stamp-$(sha256sum requirements/transformers-new.txt | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "setup-transformers-new: installing into $TARGET" >&2
  rm -rf "$TARGET"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$TARGET" \
    -r requirements/transformers-new.txt >&2
  touch "$stamp"
fi
echo "$TARGET"
