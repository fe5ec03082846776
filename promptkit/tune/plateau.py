"""Has a prompt plateaued? Its published versions' scores on its suite, from the run store.

A prompt has plateaued when its last K versions (default 3) gained less than a margin over the
best earlier version, or their gain is not significant by the paired McNemar test."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from promptkit.data import file_hash
from promptkit.project import Project, Suite
from promptkit.runs import RunRecord, RunStore
from promptkit.stats import McNemar, mcnemar

WINDOW = 3
MARGIN = 0.01  # absolute, in metric units (0.01 = one accuracy point)
ALPHA = 0.05
_VERSION = re.compile(r"@v(\d+)$")


@dataclass
class VersionScore:
    label: str  # v3
    number: int
    prompt_hash: str
    value: float
    run_id: str
    examples: int


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

    @property
    def best(self) -> VersionScore | None:
        return max(self.points, key=lambda p: p.value, default=None)


def primary_metric(suite: Suite) -> str:
    names = [m for m in suite.config.metric_names() if m not in ("latency", "tokens", "cost", "errors")]
    return names[0] if names else ("accuracy" if suite.config.task != "generation" else "exact_match")


def history(project: Project, name: str, suite: Suite, metric: str | None = None,
            store: RunStore | None = None) -> list[VersionScore]:
    """Per published version, the latest finished run on the suite's own data and split."""
    metric = metric or primary_metric(suite)
    store = store or RunStore(project.runs_path)
    data_hash = file_hash(suite.dataset_path()) if suite.dataset_path().is_file() else None
    chosen: dict[int, tuple[RunRecord, float]] = {}
    for run in store.runs(limit=10_000, prompt=name):  # newest first
        s = run.settings
        match = _VERSION.search(str(s.get("prompt", "")))
        value = run.metric(metric)
        if (run.status != "finished" or match is None or value is None or s.get("suite") != suite.name
                or s.get("split") != suite.config.split or (data_hash and s.get("dataset_hash") != data_hash)
                or s.get("adapter") or s.get("base_model")):
            continue
        number = int(match.group(1))
        previous = chosen.get(number)
        if previous is None or int(s.get("examples") or 0) > int(previous[0].settings.get("examples") or 0):
            chosen[number] = (run, value)
    return [VersionScore(f"v{n}", n, str(r.settings.get("prompt_hash")), v, r.id, int(r.settings.get("examples") or 0))
            for n, (r, v) in sorted(chosen.items())]


def judge(points: list[VersionScore], metric: str, window: int = WINDOW, margin: float = MARGIN,
          alpha: float = ALPHA, store: RunStore | None = None) -> Verdict:
    """Whether the last WINDOW versions stopped paying off against the best version before them."""
    if len(points) < window + 1:
        return Verdict(False, f"only {len(points)} version(s) scored; judging a plateau needs {window + 1} "
                              f"(the last {window} and one before them)", metric, points, window, margin)
    earlier, recent = points[:-window], points[-window:]
    base = max(earlier, key=lambda p: p.value)
    top = max(recent, key=lambda p: p.value)
    gain = top.value - base.value
    if gain < margin:
        return Verdict(True, f"the last {window} versions gained {gain * 100:+.1f} points of {metric} over "
                             f"{base.label} (margin {margin * 100:.1f})", metric, points, window, margin, gain)
    test = None
    if store is not None:
        a, b = store.results(base.run_id), store.results(top.run_id)
        if a and b:
            test = mcnemar(a, b)
            if not test.significant(alpha):
                return Verdict(True, f"{top.label} gained {gain * 100:+.1f} points over {base.label}, but not "
                                     f"significantly (McNemar p={test.p_value:.2g})", metric, points, window, margin,
                               gain, test)
    why = f"{top.label} gained {gain * 100:+.1f} points of {metric} over {base.label} within the last {window} versions"
    if test is not None:
        why += f" (McNemar p={test.p_value:.2g})"
    return Verdict(False, why + "; prompt edits still pay off", metric, points, window, margin, gain, test)


def plateau(project: Project, name: str, suite: Suite, window: int = WINDOW, margin: float = MARGIN,
            alpha: float = ALPHA, metric: str | None = None) -> Verdict:
    metric = metric or primary_metric(suite)
    store = RunStore(project.runs_path)
    try:
        return judge(history(project, name, suite, metric, store), metric, window, margin, alpha, store)
    finally:
        store.close()
