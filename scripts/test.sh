#!/usr/bin/env bash
# Set up .venv with the dev tools and run every check CI runs: ruff, mypy, pytest,
# then promptkit lint and promptkit check on the repo's own prompts against the committed baselines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
VENV="${PROMPTKIT_VENV:-.venv}"
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff"; ruff check .
echo "== mypy"; mypy promptkit
echo "== pytest"; python -m pytest -q "$@"
echo "== promptkit lint"; python -m promptkit lint
echo "== promptkit check"; python -m promptkit check --no-store
