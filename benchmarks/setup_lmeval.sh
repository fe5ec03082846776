#!/usr/bin/env bash
# Create benchmarks/.lmeval-venv with lm-evaluation-harness (for the comparison in benchmarks/run.py only).
# Its own environment: torch (the CPU wheel) first, then lm-eval. Idempotent.  Usage: benchmarks/setup_lmeval.sh
set -euo pipefail
cd "$(dirname "$0")"
VENV=".lmeval-venv"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.setup-done"
[ -f "$stamp" ] && exit 0
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
echo "setup_lmeval: installing torch (CPU) and lm-eval into benchmarks/$VENV" >&2
pip install "torch==2.13.0"
pip install "lm-eval[hf]==0.4.13"
touch "$stamp"
echo "setup_lmeval: done" >&2
