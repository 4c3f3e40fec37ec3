#!/usr/bin/env bash
# Set up, lint (ruff, configured in pyproject.toml), then run the whole test suite.
# A lint finding fails the run; "no tests collected" (pytest exit 5) is a failure too.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
python3 -m ruff check . || { echo "test.sh: ruff check failed" >&2; exit 1; }
python3 -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
