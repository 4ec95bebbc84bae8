#!/usr/bin/env bash
# Installs the pinned Python reference stack (requirements/python-refs.txt, moe-peft.txt) into the
# torch 2.x venv (scripts/setup-torch2.sh) and prints the venv's python on the last line of stdout.
# Idempotent: pip skips what is installed. Tests find the interpreter through MIXLORA_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-torch2.sh > /dev/null
VENV=${MIXLORA_VENV:-$HOME/.cache/mixlora/venv-torch2}
PY="$VENV/bin/python"
stamp="$VENV/.python-refs-$(cat requirements/python-refs.txt requirements/moe-peft.txt | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "setup-python-refs: installing the reference packages into $VENV" >&2
  "$PY" -m pip install -q --disable-pip-version-check -r requirements/python-refs.txt >&2
  "$PY" -m pip install -q --disable-pip-version-check --no-deps -r requirements/moe-peft.txt >&2
  touch "$stamp"
fi
echo "$PY"
