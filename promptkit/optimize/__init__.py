"""`promptkit optimize`: automated prompt search between hand edits and fine-tuning."""

from __future__ import annotations

from promptkit.optimize.run import OptimizeOptions, OptimizeResult, optimize

__all__ = ["OptimizeOptions", "OptimizeResult", "optimize"]
