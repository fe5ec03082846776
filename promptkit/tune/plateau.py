"""Has a prompt plateaued? Its published versions' scores on its suite, from the run store.

A prompt has plateaued when its last K versions (default 3) gained less than a margin over the
best earlier version, or their gain is not significant by the paired McNemar test.

Which runs count: finished runs of a published version on the suite's own dataset and split, made
with the suite's model. "The same model" means the same provider and the same underlying model once
aliases and registered names are resolved (`smollm2`, `smollm2-135m-instruct` and `hf:<the same file>`
are one model); a tuned model (a LoRA adapter, a hosted fine-tune, or the eval runs `tune` records)
is never part of a prompt's history, so tuning cannot hide or fake a plateau."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from promptkit.data import file_hash
from promptkit.errors import ConfigError, PromptkitError
from promptkit.library import PromptVersion
from promptkit.models import DEFAULT_MODEL, ModelRef, ModelRegistry, resolve_model
from promptkit.project import Project, Suite
from promptkit.runs import RunRecord, RunStore
from promptkit.stats import ALPHA, McNemar, mcnemar

WINDOW = 3
MARGIN = 0.01  # absolute, in metric units (0.01 = one accuracy point)
# Settings only tuned-model eval runs carry (lora and hosted backends, promptkit.tune.run).
TUNED_MARKERS = ("adapter", "model_folder", "fine_tuned_model", "tuned_prompt_hash", "trainset_hash")
_VERSION = re.compile(r"@v(\d+)$")


@dataclass
class VersionScore:
    label: str  # v3
    number: int
    prompt_hash: str
    value: float
    run_id: str
    examples: int
    low: float | None = None  # the run's 95% interval of the metric
    high: float | None = None


@dataclass
class Verdict:
    plateaued: bool
    reason: str
    metric: str
    points: list[VersionScore] = field(default_factory=list)
    window: int = WINDOW
    margin: float = MARGIN
    gain: float | None = None
    test: McNemar | None = None
    alpha: float = ALPHA
    model: str = ""  # the model whose runs were judged
    base: VersionScore | None = None  # best version before the window
    top: VersionScore | None = None  # best version within the window
    other_models: dict[str, int] = field(default_factory=dict)  # model spec -> versions scored on it

    @property
    def best(self) -> VersionScore | None:
        return max(self.points, key=lambda p: p.value, default=None)


def primary_metric(suite: Suite) -> str:
    names = [m for m in suite.config.metric_names() if m not in ("latency", "tokens", "cost", "errors")]
    return names[0] if names else ("accuracy" if suite.config.task != "generation" else "exact_match")


def suite_model(suite: Suite, version: PromptVersion | None = None) -> str:
    """The model spec a suite scores with: its own, else the prompt's, else the embedded default."""
    prompt_model = version.spec.settings.model if version is not None else None
    return suite.config.model or prompt_model or DEFAULT_MODEL


class _ReadOnce(ModelRegistry):
    """The project's model registry, parsed once for a whole history (one lookup per run otherwise)."""

    _cached: dict[str, dict[str, Any]] | None = None

    def entries(self) -> dict[str, dict[str, Any]]:
        if self._cached is None:
            self._cached = super().entries()
        return self._cached


def _resolve(spec: Any, registry: ModelRegistry | None) -> ModelRef | None:
    if not spec:
        return None
    try:
        return resolve_model(str(spec), registry)
    except PromptkitError:
        return None


def is_tuned_run(settings: dict[str, Any], registry: ModelRegistry | None = None) -> bool:
    """An eval of a tuned model: an adapter, a hosted fine-tune, or a model `tune` registered."""
    if any(settings.get(k) for k in TUNED_MARKERS):
        return True
    entry = (registry.entries() if registry is not None else {}).get(str(settings.get("model")))
    return bool(entry and (entry.get("adapter") or entry.get("backend")))


def same_model(settings: dict[str, Any], target: ModelRef, registry: ModelRegistry | None = None) -> bool:
    """Whether a run was made with TARGET (no adapter), whatever spec named it."""
    if target.options.get("adapter") or is_tuned_run(settings, registry):
        return False
    provider, base = settings.get("provider"), settings.get("base_model")
    if provider and base and (provider, base) == (target.provider, target.model):
        return True
    # Older runs: no provider recorded, or `base_model` holding a spec rather than the resolved model.
    for spec in (base, settings.get("model")):
        ref = _resolve(spec, registry)
        if ref is not None and not ref.options.get("adapter") and (ref.provider, ref.model) == (target.provider, target.model):
            return provider in (None, target.provider)
    return False


def history(project: Project, name: str, suite: Suite, metric: str | None = None,
            store: RunStore | None = None, model: str | None = None,
            other_models: dict[str, int] | None = None) -> list[VersionScore]:
    """Per published version, the finished run with the most examples (latest on ties) on the
    suite's own data and split, made with MODEL (default: the suite's). OTHER_MODELS, when given,
    collects how many versions were scored on other models (to point the user at them)."""
    metric = metric or primary_metric(suite)
    if store is None:
        with RunStore(project.runs_path) as own:
            return history(project, name, suite, metric, own, model, other_models)
    registry = _ReadOnce(project.models.path)
    target = resolve_model(model or suite_model(suite), registry)
    if not suite.dataset_path().is_file():  # without its hash, runs on every dataset the suite ever had would mix
        raise ConfigError(f"suite {suite.name}'s dataset {suite.dataset_path()} is not a file, so which runs scored it "
                          "cannot be told", where=suite.place("dataset", "path"),
                          hint="restore the dataset or fix dataset.path")
    data_hash = file_hash(suite.dataset_path())
    chosen: dict[int, tuple[RunRecord, float]] = {}
    elsewhere: dict[str, set[int]] = {}
    for run in store.runs(limit=10_000, prompt=name):  # newest first
        s = run.settings
        match = _VERSION.search(str(s.get("prompt", "")))
        value = run.metric(metric)
        if value is not None and not math.isfinite(value):  # a damaged or hand-edited record: no score
            value = None
        if (run.status != "finished" or match is None or value is None or s.get("suite") != suite.name
                or s.get("split") != suite.config.split or s.get("dataset_hash") != data_hash):
            continue
        number = int(match.group(1))
        if not same_model(s, target, registry):
            if not is_tuned_run(s, registry):
                elsewhere.setdefault(str(s.get("model") or "?"), set()).add(number)
            continue
        previous = chosen.get(number)
        if previous is None or _examples(s) > _examples(previous[0].settings):
            chosen[number] = (run, value)
    if other_models is not None:
        other_models.update({spec: len(numbers) for spec, numbers in elsewhere.items()})
    return [_score(n, r, v, metric) for n, (r, v) in sorted(chosen.items())]


def _score(number: int, run: RunRecord, value: float, metric: str) -> VersionScore:
    found = next((m for m in run.metrics if m.get("name") == metric), {})
    return VersionScore(f"v{number}", number, str(run.settings.get("prompt_hash")), value, run.id,
                        _examples(run.settings), found.get("low"), found.get("high"))


def _examples(settings: dict[str, Any]) -> int:
    """A run's example count; 0 for a damaged record ("12", null, NaN) rather than a crash."""
    count = settings.get("examples")
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def judge(points: list[VersionScore], metric: str, window: int = WINDOW, margin: float = MARGIN,
          alpha: float = ALPHA, store: RunStore | None = None) -> Verdict:
    """Whether the last WINDOW versions stopped paying off against the best version before them.
    The paired McNemar test (best recent vs best earlier version) is computed whenever both runs'
    examples are in the store, so the verdict can always show it."""
    if len(points) < window + 1:
        return Verdict(False, f"only {len(points)} version(s) scored; judging a plateau needs {window + 1} "
                              f"(the last {window} and one before them)", metric, points, window, margin, alpha=alpha)
    earlier, recent = points[:-window], points[-window:]
    base = max(earlier, key=lambda p: p.value)
    top = max(recent, key=lambda p: p.value)
    gain = top.value - base.value
    test = None
    untested = ""
    if store is not None:
        try:
            a, b = store.results(base.run_id), store.results(top.run_id)
        except PromptkitError as e:  # a damaged example record: judge by the scores, and say why untested
            a = b = []
            untested = f"; no paired test: {e.message}"
        if a and b:
            test = mcnemar(a, b)

    def verdict(plateaued: bool, reason: str) -> Verdict:
        return Verdict(plateaued, reason, metric, points, window, margin, gain, test, alpha, base=base, top=top)

    p_text = f" (paired McNemar p={test.p_value:.2g})" if test is not None else untested
    if gain < margin:
        return verdict(True, f"the last {window} versions gained {gain * 100:+.1f} points of {metric} over "
                             f"{base.label} (margin {margin * 100:.1f}){p_text}")
    if test is not None and not test.significant(alpha):
        return verdict(True, f"{top.label} gained {gain * 100:+.1f} points over {base.label}, but not "
                             f"significantly (paired McNemar p={test.p_value:.2g} >= {alpha:g})")
    why = f"{top.label} gained {gain * 100:+.1f} points of {metric} over {base.label} within the last {window} versions"
    return verdict(False, why + p_text + "; prompt edits still pay off")


def plateau(project: Project, name: str, suite: Suite, window: int = WINDOW, margin: float = MARGIN,
            alpha: float = ALPHA, metric: str | None = None, model: str | None = None,
            version: PromptVersion | None = None) -> Verdict:
    """The verdict for prompt NAME on SUITE with MODEL (default: the suite's model; VERSION's
    settings name it when the suite does not)."""
    metric = metric or primary_metric(suite)
    model = model or suite_model(suite, version)
    store = RunStore(project.runs_path)
    try:
        others: dict[str, int] = {}
        points = history(project, name, suite, metric, store, model, others)
        verdict = judge(points, metric, window, margin, alpha, store)
        verdict.model, verdict.other_models = model, others
        return verdict
    finally:
        store.close()
