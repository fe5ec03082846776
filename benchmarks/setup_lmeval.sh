#!/usr/bin/env bash
# Create benchmarks/.lmeval-venv with lm-evaluation-harness (for the comparison in benchmarks/run.py only).
# Its own environment. torch: when the project's venv (PROJECT_VENV, default ../.venv) already has
# torch 2.13, its site-packages are linked in (a .pth file) so both sides run the very same torch build
# and no second copy is downloaded; otherwise the CPU wheel is installed. Then lm-eval. Idempotent.
# Usage: benchmarks/setup_lmeval.sh
set -euo pipefail
cd "$(dirname "$0")"
VENV=".lmeval-venv"
PYTHON="${PYTHON:-python3}"
PROJECT_VENV="${PROJECT_VENV:-../.venv}"
stamp="$VENV/.setup-done"
[ -f "$stamp" ] && exit 0
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
echo "setup_lmeval: installing lm-eval into benchmarks/$VENV" >&2
shared=""
if [ -x "$PROJECT_VENV/bin/python" ]; then
  shared="$("$PROJECT_VENV/bin/python" -c 'import sysconfig, torch; assert torch.__version__.startswith("2.13"); print(sysconfig.get_paths()["purelib"])' 2>/dev/null || true)"
fi
if [ -n "$shared" ]; then
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$shared" > "$site/_project_torch.pth"
else
  pip install "torch==2.13.0"
fi
pip install "lm-eval[hf]==0.4.13"
touch "$stamp"
echo "setup_lmeval: done" >&2
