"""`promptkit tune compare`: several local methods trained on one split, same seed and budget, one table.

Each method trains into its own adapter folder (PREFIX-METHOD) and leaves a compare.json there keyed by
the training set, seed and settings: a second call with the same key reuses it (resumable); a different
key retrains. Test accuracy goes through the normal eval path (recorded runs); the McNemar test is paired
against the prompt alone on the base model."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from promptkit.config import atomic_write, read_json_object
from promptkit.errors import ConfigError
from promptkit.models import ModelRef, resolve_model
from promptkit.providers.factory import open_provider
from promptkit.stats import mcnemar, wilson
from promptkit.tune.base import TuneJob
from promptkit.tune.lora import LoraTuner, base_model_of, settings_of, tuned_location
from promptkit.tune.methods import method_of, validate
from promptkit.tune.run import adapter_version, evaluate_model
from promptkit.tune.trainset import TrainRow

RESULT_FILE = "compare.json"


@dataclass
class MethodResult:
    method: str
    model: str  # registered name
    val_accuracy: float | None
    val_interval: tuple[float, float] | None
    val_n: int
    test_accuracy: float | None
    test_interval: tuple[float, float] | None
    test_n: int
    p_vs_prompt: float | None  # two-sided McNemar against the prompt alone
    fixed: int  # right here, wrong with the prompt alone
    broken: int
    seconds: float
    tokens_per_s: float
    adapter_bytes: int
    peak_rss_mb: float
    steps: int
    run_id: str | None = None
    reused: bool = False
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PromptBaseline:
    model: str
    val_accuracy: float | None
    val_n: int
    test_accuracy: float | None
    test_interval: tuple[float, float] | None
    test_n: int
    run_id: str | None


@dataclass
class MethodComparison:
    prompt: str
    baseline: PromptBaseline
    results: list[MethodResult]

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "baseline": asdict(self.baseline), "methods": [r.to_dict() for r in self.results]}


def accuracy(correct: Sequence[bool]) -> tuple[float | None, tuple[float, float] | None]:
    if not correct:
        return None, None
    return sum(correct) / len(correct), wilson(sum(correct), len(correct))


def score_rows(model_spec: str, project: Any, rows: Sequence[TrainRow], answers: Sequence[str] | None,
               options: dict[str, Any] | None = None) -> list[bool]:
    """Is the model's answer the target, per validation row. Training rows carry no label set; with
    ANSWERS (the version's answer texts) they are scored by label log-likelihood as the eval scores."""
    from dataclasses import replace as with_fields


    if not rows:
        return []
    ref = resolve_model(model_spec, project.models)
    provider = open_provider(ModelRef(ref.spec, ref.provider, ref.model, {**(options or {}), **ref.options}), project)
    try:
        responses = provider.complete([with_fields(r.request, labels=list(answers) if answers else None) for r in rows])
    finally:
        provider.close()
    return [resp.error is None and (resp.output or "").strip() == r.target.strip()
            for resp, r in zip(responses, rows, strict=True)]


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value has a MethodResult field's type (numbers finite, booleans not numbers)."""
    if get_origin(hint) in (Union, UnionType):
        return any(_fits(value, h) for h in get_args(hint))
    if hint is type(None):
        return value is None
    if get_origin(hint) is tuple:
        return isinstance(value, list) and len(value) == len(get_args(hint)) and all(
            _fits(v, h) for v, h in zip(value, get_args(hint), strict=True))
    if hint in (int, float):
        return (isinstance(value, int) or (hint is float and isinstance(value, float) and math.isfinite(value))) \
            and not isinstance(value, bool)
    return isinstance(value, hint)


def stored_result(path: Path, key: str) -> MethodResult | None:
    """The result a previous `tune compare` left in PATH when it was made with KEY, else None (retrain).
    The file sits in the adapter folder where anyone can edit or damage it: a file that is not a result
    is one error naming it and the key at fault, not a traceback half-way through the table."""
    if not path.exists() and not path.is_symlink():
        return None
    hint = "delete it, and that method is trained again"
    data = read_json_object(path, hint)
    if data.get("key") != key:
        return None  # another split, seed or settings: retrained
    hints = get_type_hints(MethodResult)
    for name in hints:
        if name == "reused":  # set below, whatever the file says
            continue
        if name not in data:
            raise ConfigError(f"key {name!r} is missing", where=str(path), hint=hint)
        if not _fits(data[name], hints[name]):
            raise ConfigError(f"key {name!r} is {json.dumps(data[name])[:40]}, not "
                              f"{getattr(hints[name], '__name__', hints[name])}",
                              where=str(path), hint=hint)
    data = {name: data[name] for name in hints if name != "reused"}  # unknown keys are ignored
    data["reused"] = True
    for field in ("val_interval", "test_interval"):
        data[field] = tuple(data[field]) if data[field] else None
    return MethodResult(**data)


def compare_key(job: TuneJob, method: str) -> str:
    settings = {k: v for k, v in job.options.items() if k not in ("overwrite", "threads")}
    revision = method_of(method).revision  # left out at 1, so that keys written before revisions still match
    text = json.dumps({"method": method, **({"revision": revision} if revision > 1 else {}),
                       "trainset": job.trainset.jsonl(), "settings": settings,
                       "eval": [str(job.eval_data), job.eval_split, job.eval_limit]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compare_methods(job: TuneJob, methods: Sequence[str], notify: Callable[[str], None] = lambda m: None,
                    ) -> MethodComparison:
    """Train (or reuse) each method on JOB's training set and compare them with the prompt alone."""

    spec, _ = base_model_of(job)
    if adapter_version(job.version)[1]:
        notify(str(adapter_version(job.version)[1]))
    for method in methods:  # every method's settings are checked before anything trains
        validate(replace(settings_of(job.options), method=method))
    settings = settings_of(job.options)
    _, val_rows = job.trainset.split(settings.val_fraction, settings.seed)
    notify(f"the prompt alone on {spec}")
    base_run = evaluate_model(job.project, job.version, job.suite, spec, job.eval_data, job.eval_split, job.eval_limit,
                              {"base_model": spec})
    answers = job.version.spec.answers if job.version.spec.labels else None
    options = job.suite.config.provider_options
    base_val = score_rows(spec, job.project, val_rows, answers, options)
    base_correct = [bool(r.correct) for r in base_run.results]
    base_acc, base_interval = accuracy(base_correct)
    baseline = PromptBaseline(spec, accuracy(base_val)[0], len(base_val), base_acc, base_interval, len(base_correct),
                              base_run.run_id)
    results = []
    for method in methods:
        name = f"{job.name}-{method}"
        out = job.out_dir.parent / name
        key = compare_key(job, method)
        saved = out / RESULT_FILE
        stored = stored_result(saved, key) if (out / "manifest.json").is_file() else None
        if stored is not None:
            notify(f"{method}: reusing {out} (same split, seed and settings)")
            results.append(stored)
            continue
        notify(f"{method}: training into {out}")
        method_job = replace(job, name=name, out_dir=out, evaluate=False, resume=False,
                             options={**job.options, "method": method, "overwrite": True})
        tuned = LoraTuner().run(method_job)
        metrics = tuned.manifest["metrics"]
        tuned_version, dropped = adapter_version(job.version)
        run = evaluate_model(job.project, tuned_version, job.suite, name, job.eval_data, job.eval_split, job.eval_limit,
                             {"base_model": spec, **tuned_location(method_of(method), out), "method": method,
                              **({"calibration": "dropped"} if dropped else {})})
        test_correct = [bool(r.correct) for r in run.results]
        val_correct = score_rows(name, job.project, val_rows, answers, options)
        test = mcnemar(base_run.results, run.results)
        test_acc, test_interval = accuracy(test_correct)
        val_acc, val_interval = accuracy(val_correct)
        result = MethodResult(method, name, val_acc, val_interval, len(val_correct), test_acc, test_interval,
                              len(test_correct), test.p_value if test.n else None, test.b_only, test.a_only,
                              float(metrics["seconds"]), float(metrics["tokens_per_s"]), int(metrics["adapter_bytes"]),
                              float(metrics["peak_rss_mb"]), int(metrics["steps"]), run.run_id, key=key)
        atomic_write(saved, json.dumps(result.to_dict(), indent=2) + "\n")
        results.append(result)
    return MethodComparison(job.version.ref, baseline, results)


def write_json(path: Path, comparison: MethodComparison) -> None:
    atomic_write(path, json.dumps(comparison.to_dict(), indent=2) + "\n")
