#!/usr/bin/env bash
# Creates (once, cached) the simulator host's Python environment: SCALE-Sim 3.0 needs numpy < 2.4,
# so it gets its own venv; the hwnas agent runs there (stdlib + numpy + scalesim + onnx).
#   usage: bash scripts/scalesim_env.sh    (prints the venv's python)
set -euo pipefail
VENV=${HWNAS_SCALESIM_VENV:-$HOME/.cache/hwnas/scalesim-venv}
MARK="$VENV/.hwnas-scalesim-v1"
if [ ! -e "$MARK" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "numpy<2.4" "scalesim==3.0.0" "onnx>=1.16,<2" >&2
  touch "$MARK"
fi
echo "$VENV/bin/python"
