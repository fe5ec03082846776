"""With a fake API key in the environment, run what exists of eval (fake model; the openai provider
against a local double), check, tune and serve, then search every file written (project,
.promptkit/, cache, HOME, TMPDIR, reports) and everything printed for the key: zero hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import eval_help
from tests.helpers.secrets_scan import PARTS, secrets_check


def test_no_secret_in_any_file_or_output(tmp_path: Path) -> None:
    result = secrets_check(tmp_path, tuple(p for p in PARTS if p != "serve"))
    assert result["problems"] == []
    assert result["hits"] == [], f"the API key leaked into: {result['hits']}"
    assert "eval fake" in result["ran"]


def test_key_never_in_argv_of_child_commands() -> None:
    """The CLI takes keys from the environment only: no command has an option that would put an
    OpenAI key on a command line (where `ps` shows it), except serve's own --api-key (env var too)."""
    assert "--api-key" not in eval_help()


@pytest.mark.model
def test_serve_never_shows_the_key(tmp_path: Path) -> None:
    """serve (embedded model) guarded by the key, and the openai provider calling it with the key."""
    result = secrets_check(tmp_path, ("serve",))
    assert result["problems"] == []
    assert result["hits"] == [], f"the API key leaked into: {result['hits']}"
