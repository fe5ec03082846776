#!/usr/bin/env bash
# Set up .venv with the dev tools and run every check CI runs: ruff, mypy, pytest,
# then promptkit lint and promptkit check on the repo's own prompts against the committed baselines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
# Headless Chromium renders the HTML report and drives the `promptkit view` browser tests (Playwright, from the
# dev extras, uses this system browser: no browser download). Those tests skip where Chromium cannot be installed.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium (Debian package) for the HTML report test"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "chromium could not be installed; the HTML screenshot test will skip" >&2
fi
VENV="${PROMPTKIT_VENV:-.venv}"
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff"; ruff check .
echo "== mypy"; mypy promptkit
echo "== pytest"; python -m pytest -q "$@"
echo "== promptkit lint"; python -m promptkit lint
echo "== promptkit check"; python -m promptkit check --no-store
