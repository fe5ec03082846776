"""Shared fixtures only (helpers live in tests/helpers/). Tests are hermetic: no network, model conversions
cached in a session folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.projects import copy_project


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
    return copy_project(tmp_path)


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
