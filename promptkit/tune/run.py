"""What every backend shares after training: evaluate before and after on the eval split, compare
with the paired McNemar test, and remember the machine's measured training speed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write
from promptkit.evaluate import ProgressFn, plan_eval, run_eval
from promptkit.library import PromptVersion
from promptkit.project import Project, Suite
from promptkit.providers.factory import open_provider
from promptkit.results import EvalRun
from promptkit.runs import RunStore
from promptkit.stats import McNemar, mcnemar

# LoRA training tokens/s (prompt + answer tokens of every row) of the reference runs (SmolLM2-135M, fp32,
# 2 idle CPU cores, r 8 on q/v: the chat prompt's 47k tokens at 270-310/s, its shared prefix run once per
# batch; the text prompt's 21k at 160-185/s), the lower figure, used until a project has measured its own
# (.promptkit/tune/speed.json, written after every lora run). A loaded machine is far slower.
REFERENCE_TOKENS_PER_S = 160.0


@dataclass
class Comparison:
    before: EvalRun
    after: EvalRun
    test: McNemar
    metric: str = "accuracy"

    def rows(self) -> list[tuple[str, str, float | None, str | None]]:
        """(label, model, metric, run id) for before and after."""
        return [("before", self.before.plan.model.spec, self.before.metric(self.metric), self.before.run_id),
                ("after", self.after.plan.model.spec, self.after.metric(self.metric), self.after.run_id)]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "before": self.before.metric(self.metric), "after": self.after.metric(self.metric),
                "before_run": self.before.run_id, "after_run": self.after.run_id, "n": self.test.n,
                "before_only": self.test.a_only, "after_only": self.test.b_only, "p_value": self.test.p_value}


def evaluate_model(
    project: Project,
    version: PromptVersion,
    suite: Suite,
    model: str,
    data: Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    extra_settings: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> EvalRun:
    """The normal eval path (plan_eval + run_eval, recorded in the run store) for MODEL. Settings
    gain base model, adapter and training manifest details so `runs show` names them."""

    plan = plan_eval(project, version, suite=suite, model=model, data=data, split=split, limit=limit)
    provider = open_provider(plan.model, project)
    store = RunStore(project.runs_path)
    try:
        settings = {**plan.settings(), **(extra_settings or {})}
        run_id = store.create_run(settings)
        return run_eval(plan, provider, store=store, run_id=run_id, progress=progress)
    finally:
        provider.close()
        store.close()


def adapter_version(version: PromptVersion) -> tuple[PromptVersion, str | None]:
    """The version a tuned model is evaluated with, and a note when it differs from VERSION.

    Calibration biases are fitted to the base model's label scores; a tuned model's scores move, so
    the biases would push it the wrong way. They are dropped (not refitted: that needs held-out labelled
    rows the tuner does not own) and the eval run records `calibration: dropped`."""
    from dataclasses import replace

    if not version.spec.calibration:
        return version, None
    spec = version.spec.model_copy(update={"calibration": None})
    note = (f"{version.ref}'s calibration ({', '.join(f'{k} {v:+g}' for k, v in version.spec.calibration.items())}) "
            "was fitted for the base model: dropped for the tuned model's eval")
    return replace(version, spec=spec), note


def compare(before: EvalRun, after: EvalRun, metric: str = "accuracy") -> Comparison:
    return Comparison(before, after, mcnemar(before.results, after.results), metric)


def before_after(
    project: Project,
    version: PromptVersion,
    suite: Suite,
    base_model: str,
    tuned_model: str,
    tuned_settings: dict[str, Any],
    data: Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    progress: ProgressFn | None = None,
) -> Comparison:
    before = evaluate_model(project, version, suite, base_model, data, split, limit, {"base_model": base_model}, progress)
    tuned_version, dropped = adapter_version(version)
    if dropped:
        tuned_settings = {**tuned_settings, "calibration": "dropped"}
    after = evaluate_model(project, tuned_version, suite, tuned_model, data, split, limit, tuned_settings, progress)
    return compare(before, after)


def speed_file(project: Project) -> Path:
    return project.state_dir / "tune" / "speed.json"


def measured_speed(project: Project) -> tuple[float, str]:
    """(LoRA training tokens per second, where the figure comes from)."""
    path = speed_file(project)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            speed = float(data["tokens_per_s"])
            # the estimate divides by it: a damaged file (0, negative, NaN) falls back to the reference
            if math.isfinite(speed) and speed > 0:
                return speed, f"measured {data.get('when', '')}".strip()
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            pass
    return REFERENCE_TOKENS_PER_S, "reference run"


def record_speed(project: Project, tokens_per_s: float, when: str) -> None:
    atomic_write(speed_file(project), json.dumps({"tokens_per_s": tokens_per_s, "when": when}) + "\n")
