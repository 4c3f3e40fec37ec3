#!/usr/bin/env bash
# Quick start: set up, then run the main job on this machine (`local`), end to end:
#   block sweep -> LUT -> network sweep -> cost model -> supernet -> search -> zoo
# Everything lands in .hwnas-quickstart/ (registry: scripts/quickstart.yaml). A second run reuses
# what is there (stored measurements, the cost model, the trained supernet, the search state, the zoo).
# The 7-operator demo is its own command: `hwnas demo --device local`.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start ))s] $*" >&2; }

if [ "${HWNAS_SKIP_SETUP:-0}" != 1 ]; then   # HWNAS_SKIP_SETUP=1: already installed
  step "set-up (scripts/setup.sh)"
  bash scripts/setup.sh
fi
CFG=scripts/quickstart.yaml
WS=.hwnas-quickstart
BUDGETS=${HWNAS_BUDGETS:-0.15,0.3,0.6}

if [ -f "$WS/cost_models/local-onnxruntime-digits.json" ]; then
  step "reusing the sweeps, LUT and cost model in $WS (delete it to start over)"
else
  step "device check"
  hwnas devices check local --config "$CFG" >/dev/null
  step "block sweep: every block of the digits space (resumable)"
  hwnas profile --device local --space digits --what blocks --sessions 1 --config "$CFG" >/dev/null
  step "latency LUT"
  hwnas lut build --device local --config "$CFG" --out "$WS/lut-local.json" >/dev/null
  step "network sweep: 40 sampled networks (resumable)"
  hwnas profile --device local --space digits --what networks --num 40 --config "$CFG" >/dev/null
  step "cost model"
  hwnas costmodel fit --device local --space digits --config "$CFG" >/dev/null
fi
step "supernet (trained once), search with the device in the loop, zoo"
hwnas zoo export --device local --latency-ms "$BUDGETS" --out "$WS/zoo" --evaluations 100 --rounds 1 --config "$CFG"
step "done: the zoo is in $WS/zoo (README.md, index.json, local.png)"
