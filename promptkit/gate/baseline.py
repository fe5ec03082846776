"""Blessed baselines: a small, committed JSON file per suite under evals/baselines/.

A baseline holds the suite's metrics and each example's outcome (by example id), plus what
decides whether it still applies: the prompt hash, the model, the dataset hash and a
fingerprint of the suite settings that change outcomes. The check evaluates the working copy
of the prompt, so a different working copy is what is being checked, not staleness; the
baseline is stale when the model, the dataset or those suite settings changed, or when the
prompt has since published a newer current version than the one blessed."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write, decode_text, load_yaml
from promptkit.errors import ConfigError
from promptkit.fileio import read_regular
from promptkit.gate.run import Providers, evaluate
from promptkit.library import PromptVersion
from promptkit.project import Project, Suite
from promptkit.providers import options_of
from promptkit.results import EvalRun, MetricValue, RunPlan
from promptkit.strict_json import loads_strict

FORMAT = 1  # format 1 files without per-example "scores" (older baselines) still load; they compare accuracy/F1 only
BASELINES_DIR = "baselines"
SCORE_DIGITS = 4
MAX_SCORE = 1e15  # a per-example value beyond this is a broken metric or a hand edit: sums of them would overflow


def paired_scores(values: Sequence[MetricValue]) -> list[str]:
    """The values whose metric declares them compared by their per-example scores (exact_match,
    relevance, bleu, rouge_l, assertion pass rates...): those scores are stored in the baseline."""
    return [m.name for m in values if m.paired == "scores"]


@dataclass
class Baseline:
    suite: str
    prompt: str  # the ref blessed, e.g. sentiment@v1
    prompt_hash: str
    model: str
    dataset: str
    dataset_hash: str
    split: str | None
    suite_hash: str
    repeat: int
    metrics: dict[str, float]
    outcomes: dict[str, dict[str, Any]]  # example id -> {correct, prediction, tokens, cost[, scores]}
    blessed: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)  # what the model ran with when blessed (hf: device, dtype)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "suite": self.suite, "prompt": self.prompt, "prompt_hash": self.prompt_hash,
            "model": self.model, "dataset": self.dataset, "dataset_hash": self.dataset_hash, "split": self.split,
            "suite_hash": self.suite_hash, "repeat": self.repeat, "blessed": self.blessed,
            "metrics": dict(sorted(self.metrics.items())), "outcomes": dict(sorted(self.outcomes.items())),
            **({"runtime": self.runtime} if self.runtime else {}),
        }


def baseline_path(project: Project, suite: Suite) -> Path:
    return project.evals_dir / BASELINES_DIR / f"{suite.name}.json"


def suite_fingerprint(suite: Suite, provider: str) -> str:
    """A hash of the suite settings that change outcomes (not its metrics, thresholds, or the
    provider options that the provider's Options declare output-neutral, such as batch sizes)."""
    cfg = suite.config
    neutral = options_of(provider).output_neutral()
    relevant = {
        "task": cfg.task, "scoring": cfg.scoring, "split": cfg.split,
        "dataset": cfg.dataset.model_dump(exclude={"path"}),
        "provider_options": {k: v for k, v in cfg.provider_options.items() if k not in neutral},
    }
    canonical = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _round(value: float) -> float | int:
    rounded = float(f"{value:.6g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 2**53 else rounded


def score(value: float) -> float:
    """A per-example metric value as stored in a baseline (and compared): 4 decimals."""
    return round(float(value), SCORE_DIGITS) + 0.0


def example_scores(runs: list[EvalRun]) -> dict[str, list[float | None]]:
    """Per-example values of the metrics compared by their scores (paired_scores), aligned with
    runs[0].results, averaged over repeated runs and rounded; None where an example does not count."""
    out: dict[str, list[float | None]] = {}
    for name in paired_scores(runs[0].metrics):
        series = [next((m.per_example for m in run.metrics if m.name == name and m.per_example is not None), None)
                  for run in runs]
        if any(s is None or len(s) != len(run.results) for s, run in zip(series, runs, strict=True)):
            continue
        values: list[float | None] = []
        for i in range(len(runs[0].results)):
            known = [v for s in series if s is not None and (v := s[i]) is not None]
            for v in known:
                _finite(runs[0], name, v, runs[0].results[i].id)
            values.append(score(sum(known) / len(known)) if known else None)
        out[name] = values
    return out


def _finite(run: EvalRun, name: str, value: float, example_id: str | None = None) -> None:
    """Refuse a metric value that no baseline can hold and no paired test can compare (NaN, inf, 1e308):
    it would be written as a baseline that cannot be read, or compare as "not worse" and pass."""
    if not (math.isfinite(value) and abs(value) <= MAX_SCORE):
        of = f" for example {example_id}" if example_id else ""
        raise ConfigError(f"metric {name!r} gave {value}{of}: the gate needs finite numbers up to {MAX_SCORE:g}",
                          where=str(run.plan.suite.path),
                          hint="fix the metric (a custom metric's scores must be finite numbers, or None to skip one)")


def outcomes_of(runs: list[EvalRun]) -> dict[str, dict[str, Any]]:
    """Each example's outcome over one or more runs of the same plan: the fraction correct
    (0 or 1 for a single run), the first run's prediction, mean tokens and cost, and for the
    continuous metrics the suite computes (generation: relevance, bleu, rouge_l, ...) their
    per-example values under "scores"."""
    outcomes: dict[str, dict[str, Any]] = {}
    scores = example_scores(runs)
    for i, result in enumerate(runs[0].results):
        repeats = [run.results[i] for run in runs]
        known = [r.correct for r in repeats if r.correct is not None]
        correct = _round(sum(bool(c) for c in known) / len(known)) if known else None
        if correct is not None and correct in (0.0, 1.0):
            correct = int(correct)
        prediction = result.prediction if result.prediction is None else str(result.prediction)[:80]
        outcomes[result.id] = {
            "correct": correct,
            "prediction": prediction,
            "tokens": _round(sum(r.tokens_in + r.tokens_out for r in repeats) / len(repeats)),
            "cost": _round(sum(r.cost for r in repeats) / len(repeats)),
        }
        per_example = {name: values[i] for name, values in scores.items() if values[i] is not None}
        if per_example:
            outcomes[result.id]["scores"] = per_example
    return outcomes


def mean_metrics(runs: list[EvalRun]) -> dict[str, float]:
    """Each metric averaged over repeated runs."""
    names = [m.name for m in runs[0].metrics]
    out = {}
    for name in names:
        values = [v for v in (run.metric(name) for run in runs) if v is not None]
        for v in values:
            _finite(runs[0], name, v)
        if values:
            out[name] = float(f"{sum(values) / len(values):.6g}")
    return out


def relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def make_baseline(project: Project, runs: list[EvalRun]) -> Baseline:
    plan = runs[0].plan
    return Baseline(
        suite=plan.suite.name, prompt=plan.version.ref, prompt_hash=plan.version.hash, model=plan.model.spec,
        dataset=relative(plan.data_path, project.root), dataset_hash=plan.data_hash, split=plan.split,
        suite_hash=suite_fingerprint(plan.suite, plan.model.provider), repeat=len(runs), metrics=mean_metrics(runs),
        outcomes=outcomes_of(runs), blessed=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        runtime=dict(plan.runtime),
    )


def dumps(baseline: Baseline) -> str:
    """Stable JSON: sorted keys, one line per example, so a re-bless diffs cleanly."""
    data = baseline.to_dict()
    outcomes = data.pop("outcomes")
    head = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    lines = [f"    {json.dumps(k)}: {json.dumps(v, sort_keys=True, ensure_ascii=False)}" for k, v in outcomes.items()]
    body = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
    return head[:-2] + f',\n  "outcomes": {body}\n}}\n'


def write_baseline(path: Path, baseline: Baseline) -> None:
    try:
        atomic_write(path, dumps(baseline))
    except OSError as e:
        raise ConfigError(f"cannot write the baseline: {e.strerror or e}", where=str(path)) from None


MAX_BASELINE_BYTES = 100_000_000


def load_baseline(path: Path) -> Baseline | None:
    """The baseline at `path`, or None when there is none. A damaged file, or one whose values
    have the wrong types (a hand edit, a merge gone wrong), is a ConfigError naming the key."""

    folder = path.parent
    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():  # not "no baseline": the gate would pass
        raise ConfigError("the baselines folder is not a folder", where=str(folder),
                          hint="move the file away; 'promptkit baseline bless' writes one baseline per suite in it")
    if not path.exists() and not path.is_symlink():
        return None
    text = decode_text(read_regular(path, MAX_BASELINE_BYTES, "baseline"), path)
    try:
        data = loads_strict(text, _BadValue, "key {key!r} appears twice in one object",
                            "{name} is not a number a baseline can hold")
    except _BadValue as e:
        raise ConfigError(f"baseline: {e}", where=str(path), hint="re-bless it with 'promptkit baseline bless'") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"baseline is not valid JSON: {e.msg}", where=f"{path}:{e.lineno}",
                          hint="re-bless it with 'promptkit baseline bless'") from None
    except ValueError as e:  # an integer of more digits than Python converts (4300)
        raise ConfigError(f"baseline: {str(e).split(';')[0]}", where=str(path),
                          hint="re-bless it with 'promptkit baseline bless'") from None
    except RecursionError:
        raise ConfigError("baseline JSON nested too deeply", where=str(path)) from None
    try:
        return _baseline_of(data)
    except _BadValue as e:
        raise ConfigError(f"baseline: {e}", where=str(path), hint="re-bless it with 'promptkit baseline bless'") from None


class _BadValue(ValueError):
    pass


def _text(data: dict[str, Any], key: str, optional: bool = False) -> Any:
    if key not in data:
        if optional:
            return None
        raise _BadValue(f"missing key {key!r}")
    value = data[key]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _BadValue(f"{key!r} must be text, got {json.dumps(value)[:40]}")
    return value


def _number(value: Any, where: str, low: float | None = None, high: float | None = None,
            optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite_number(value):
        raise _BadValue(f"{where} must be a number, got {json.dumps(value)[:40]}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _BadValue(f"{where} is {value}, outside {low} to {high}")
    return float(value)


def _finite_number(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float (10**400)
        return False


def _baseline_of(data: Any) -> Baseline:
    if not isinstance(data, dict):
        raise _BadValue("the file must hold one JSON object")
    if data.get("format") != FORMAT:
        raise _BadValue(f"unsupported baseline format {json.dumps(data.get('format'))[:20]}")
    repeat = data.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 1000:
        raise _BadValue(f"'repeat' must be a whole number from 1 to 1000, got {json.dumps(repeat)[:20]}")
    metrics, outcomes = data.get("metrics"), data.get("outcomes")
    if not isinstance(metrics, dict):
        raise _BadValue("'metrics' must be an object of metric name -> number")
    if not isinstance(outcomes, dict):
        raise _BadValue("'outcomes' must be an object of example id -> outcome")
    checked_metrics = {name: _number(v, f"metrics.{name}") for name, v in metrics.items()}
    checked: dict[str, dict[str, Any]] = {}
    for example_id, outcome in outcomes.items():
        where = f"outcomes.{example_id[:40]}"
        if not isinstance(outcome, dict):
            raise _BadValue(f"{where} must be an object")
        _number(outcome.get("correct"), f"{where}.correct", 0, 1, optional=True)
        for key in ("tokens", "cost"):
            _number(outcome.get(key), f"{where}.{key}", 0, None, optional=True)
        prediction = outcome.get("prediction")
        if prediction is not None and not isinstance(prediction, str):
            raise _BadValue(f"{where}.prediction must be text or null")
        scores = outcome.get("scores", {})
        if not isinstance(scores, dict):
            raise _BadValue(f"{where}.scores must be an object")
        for name, value in scores.items():
            _number(value, f"{where}.scores.{name}", -MAX_SCORE, MAX_SCORE, optional=True)
        checked[example_id] = dict(outcome)
    return Baseline(
        suite=_text(data, "suite"), prompt=_text(data, "prompt"), prompt_hash=_text(data, "prompt_hash"),
        model=_text(data, "model"), dataset=_text(data, "dataset"), dataset_hash=_text(data, "dataset_hash"),
        split=_text(data, "split", optional=True), suite_hash=_text(data, "suite_hash"), repeat=repeat,
        metrics={k: v for k, v in checked_metrics.items() if v is not None}, outcomes=checked,
        blessed=_text(data, "blessed", optional=True) or "",
        runtime=_runtime(data.get("runtime")),
    )


def _runtime(value: Any) -> dict[str, Any]:
    """What the model ran with when blessed (hf: device, dtype): an object of short texts, or nothing."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str | None) for v in value.values()):
        raise _BadValue("'runtime' must be an object of setting -> text")
    return dict(value)


def stale_reasons(project: Project, baseline: Baseline, plan: RunPlan) -> list[str]:
    """Why a baseline no longer applies to a suite run; empty when it does."""
    reasons = []
    prompt_name = baseline.prompt.partition("@")[0]
    if baseline.suite != plan.suite.name or prompt_name != plan.version.name:
        reasons.append(f"the baseline is of suite {baseline.suite!r} (prompt {prompt_name!r}), not of suite "
                       f"{plan.suite.name!r} (prompt {plan.version.name!r}): a copied or renamed file")
    if baseline.model != plan.model.spec:
        reasons.append(f"model changed: baseline {baseline.model}, now {plan.model.spec}")
    if baseline.dataset_hash != plan.data_hash:
        reasons.append(f"dataset changed: baseline {baseline.dataset} {baseline.dataset_hash}, now {plan.data_hash}")
    if baseline.split != plan.split:
        reasons.append(f"split changed: baseline {baseline.split}, now {plan.split}")
    if baseline.suite_hash != suite_fingerprint(plan.suite, plan.model.provider):
        reasons.append("suite settings changed (task, scoring, split or dataset mapping)")
    missing = sum(e.id not in baseline.outcomes for e in plan.examples)
    if missing:  # compared on the rest only, a regression in these would pass unseen
        reasons.append(f"the baseline has no outcome for {missing} of the {len(plan.examples)} examples checked "
                       "(blessed with --limit, or edited)")
    reasons += _newer_version(project, baseline, plan)
    return reasons


def _newer_version(project: Project, baseline: Baseline, plan: RunPlan) -> list[str]:
    """The prompt's current version (production, else newest) differs from what was blessed: for a
    blessed published version, whenever; for a blessed working copy, once a version has been published
    after the blessing (the working copy then moved on into a version that was never blessed)."""
    folder, _ = project.library.folder(plan.version.name)
    if not folder.version_numbers():
        return []
    current = folder.resolve(None)
    if current.hash == baseline.prompt_hash:
        return []
    if "@working" in baseline.prompt:
        published = _published_at(current)
        if published is None or not baseline.blessed or published < baseline.blessed:
            return []
        return [f"{current.ref} ({current.hash}) was published on {published}, after this baseline of the working "
                f"copy ({baseline.prompt_hash}) was blessed on {baseline.blessed}"]
    return [f"prompt's current version is {current.ref} ({current.hash}); "
            f"the baseline is for {baseline.prompt} ({baseline.prompt_hash})"]


def _published_at(version: PromptVersion) -> str | None:
    """When a published version was written (its file's `created`), as an ISO time in UTC."""

    try:
        data, _ = load_yaml(version.source)
    except ConfigError:
        return None
    created = data.get("created") if isinstance(data, dict) else None
    return str(created) if created else None


def rebless_hint(suite: Suite) -> str:
    """What to run when a baseline is stale."""
    option = "" if suite.name == suite.config.prompt else f" --suite {suite.name}"
    return (f"re-bless the baseline: 'promptkit baseline bless {suite.config.prompt}{option}', "
            f"then commit evals/{BASELINES_DIR}/{suite.name}.json")


def bless(project: Project, ref: str, suite_name: str | None = None, repeat: int = 1, store: Any | None = None,
          limit: int | None = None, providers: Providers | None = None) -> tuple[Baseline, Path]:
    """Evaluate prompt REF (by default its production/newest version) and write its suite's baseline."""
    version = project.library.resolve(ref)
    suite = project.suite(suite_name) if suite_name else project.suite_for(version)
    own = providers is None
    providers = providers or Providers()
    try:
        runs = evaluate(project, version, suite, providers, repeat, store, limit)
    finally:
        if own:
            providers.close()
    baseline = make_baseline(project, runs)
    path = baseline_path(project, suite)
    write_baseline(path, baseline)
    return baseline, path
