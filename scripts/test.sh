#!/usr/bin/env bash
# Set up .venv with the dev tools and run every check CI runs: ruff, mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
VENV="${PROMPTKIT_VENV:-.venv}"
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff"; ruff check .
echo "== mypy"; mypy promptkit
echo "== pytest"; python -m pytest -q "$@"
