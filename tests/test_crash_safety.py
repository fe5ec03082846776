"""SIGKILL an eval at random points: the run store stays consistent (integrity_check, whole rows,
whole batches, nothing already written changes); with --resume the run
finishes with every example exactly once."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.helpers.kill_trials import kill_trial
from tests.helpers.projects import slow_project

TRIALS = 4
ROWS, BATCH = 24, 2


@pytest.mark.parametrize("resume", [False, True], ids=["consistent-store", "resume-loses-and-repeats-nothing"])
def test_sigkill(tmp_path: Path, resume: bool) -> None:
    rng = random.Random(9 if resume else 8)
    project = slow_project(tmp_path / "project", rows=ROWS, batch=BATCH, delay=0.1)
    for _ in range(TRIALS):
        trial = kill_trial(project, rng, ROWS, BATCH, resume=resume)
        assert trial.problems == []
        assert trial.lost == 0


# A SIGKILLed LoRA tune resuming from its last checkpoint: tests/test_tune_lora.py
# (test_sigkilled_tune_resumes_from_checkpoint).
