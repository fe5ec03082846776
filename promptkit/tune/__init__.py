"""Escalation from prompt edits to fine-tuning: plateau detection, training sets rendered exactly
as the evals render them, and tuners (`lora` local, `openai` hosted) behind one registry.

Nothing here imports torch, peft or openai at import time."""

from promptkit.tune.base import Estimate, TuneJob, Tuner, TuneResult, tuners

__all__ = ["Estimate", "TuneJob", "TuneResult", "Tuner", "tuners"]
