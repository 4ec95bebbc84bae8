#!/usr/bin/env bash
# A small venv with PyPI `tokenizers` (requirements/tokenizers.txt) for the tokenizer.json
# reference fixtures and the speed comparison; prints its python on the last line of stdout.
# Idempotent. Tests find it through MIXLORA_TOKENIZERS_PYTHON (they skip when it is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MIXLORA_TOKENIZERS_VENV:-$HOME/.cache/mixlora/venv-tokenizers}
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "setup-tokenizers-venv: creating $VENV" >&2
  python3 -m venv "$VENV" >&2
fi
stamp="$VENV/.requirements-$(sha256sum requirements/tokenizers.txt | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "setup-tokenizers-venv: installing requirements/tokenizers.txt" >&2
  "$PY" -m pip install -q --disable-pip-version-check -r requirements/tokenizers.txt >&2
  touch "$stamp"
fi
echo "$PY"
