"""Shared fixtures. Tests are hermetic: no network, model conversions cached in a session folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "sentiment"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One converted copy of the embedded model per test session, shared by subprocesses.
    if "PROMPTKIT_CACHE_DIR" not in os.environ:
        os.environ["PROMPTKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("promptkit-cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch copy of the repo's prompts/ and evals/ in a temp folder."""
    for name in ("prompts", "evals"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def run_cli(*args: str, cwd: Path | str = ROOT, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `python -m promptkit ARGS` in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "promptkit", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.fixture(scope="session")
def embedded_provider():  # type: ignore[no-untyped-def]
    """The real embedded SmolLM2 through the hf provider in float32 (exact comparisons), loaded once per session."""
    from promptkit.models import resolve_model
    from promptkit.providers.factory import open_provider

    ref = resolve_model("smollm2")
    provider = open_provider(ref, forward_batch=16, dtype="float32")
    yield provider
    provider.close()


@pytest.fixture(scope="session")
def default_precision_provider():  # type: ignore[no-untyped-def]
    """The embedded model at the machine's default precision (dtype 'auto'), as a CLI process or serve runs it."""
    from promptkit.models import resolve_model
    from promptkit.providers.factory import open_provider

    ref = resolve_model("smollm2")
    provider = open_provider(ref, forward_batch=16)
    yield provider
    provider.close()
