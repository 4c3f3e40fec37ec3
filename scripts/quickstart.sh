#!/usr/bin/env bash
# Quick start: set up, then run the main job on the embedded default device `local`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
hwnas devices check local
hwnas demo --device local
