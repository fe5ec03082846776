"""The gate's decision against a blessed baseline, as a pure function of per-example outcomes.

Every metric is tested on the same evidence, the examples whose outcome differs between the
baseline and the working copy: accuracy and exact match by exact one-sided McNemar, macro-F1 and
the continuous scores by a paired permutation test that swaps those examples between the runs
(exact up to 2**16 swaps). So 3 examples worse and 0 better give p = 1/8 for every metric, never a
failure at alpha 0.05. The p-values of one suite's metrics are Holm-adjusted together, so checking
several metrics does not multiply the false alarms. A metric fails when its drop is larger than the
allowed one and its adjusted p-value is below alpha."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from promptkit.gate.thresholds import Thresholds
from promptkit.stats import (
    TestResult,
    holm,
    label_counts,
    macro_f1_of,
    mcnemar_one_sided,
    mean_of,
    paired_permutation_test,
)

MAX_FLIPPED = 50  # examples listed per metric in reports
SHARE_KINDS = ("proportion", "macro")  # metric aggregates that are shares of examples: printed as %, drops in points


@dataclass
class MetricCheck:
    metric: str
    kind: str  # "min" / "max" (absolute threshold) or "baseline" (drop from the baseline)
    passed: bool
    value: float | None
    limit: float | None = None  # the threshold, or the largest allowed drop
    baseline: float | None = None
    test: str | None = None
    p_value: float | None = None  # Holm-adjusted over the suite's baseline checks
    low: float | None = None  # interval of new - baseline
    high: float | None = None
    paired: int | None = None
    flipped: list[dict[str, Any]] = field(default_factory=list)  # worse than in the baseline
    fixed: int = 0  # better than in the baseline
    worse: int = 0  # worse than in the baseline (flipped lists the first MAX_FLIPPED)
    message: str = ""
    raw_p_value: float | None = None  # before the Holm adjustment
    percent: bool = False  # a share of examples: printed as %, its drop in points
    level: float = 0.95  # of the interval low-high (1 - alpha)

    @property
    def name(self) -> str:
        return f"{self.metric} vs baseline" if self.kind == "baseline" else f"{self.kind} {self.metric}"

    @property
    def drop(self) -> float | None:
        if self.value is None or self.baseline is None:
            return None
        return self.baseline - self.value

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "drop": self.drop, **asdict(self)}


def _binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def outcome_test(base: Sequence[float], new: Sequence[float], higher_is_better: bool = True,
                 level: float = 0.95) -> TestResult:
    """Paired test of a per-example value (0/1 outcome, fraction correct over repeats, or a score):
    exact one-sided McNemar for 0/1 outcomes, else the paired permutation test of the mean. The
    interval inverts the permutation test either way (for 0/1 outcomes the two tests are one)."""
    n = len(base)
    perm = paired_permutation_test(base, new, mean_of(n), higher_is_better, level)
    if _binary(base) and _binary(new) and higher_is_better:
        worse = sum(b > v for b, v in zip(base, new, strict=True))
        better = sum(b < v for b, v in zip(base, new, strict=True))
        return TestResult("exact McNemar (one-sided)", perm.delta, mcnemar_one_sided(worse, better), perm.low, perm.high,
                          worse + better)
    return TestResult("paired permutation", perm.delta, perm.p_value, perm.low, perm.high, perm.discordant)


def f1_test(expected: Sequence[str | None], before: Sequence[str | None], after: Sequence[str | None],
            labels: Sequence[str], level: float = 0.95) -> tuple[float, float, TestResult]:
    """(baseline F1, new F1, test): macro-F1 by paired permutation over the examples whose prediction changed."""
    base_rows = label_counts(expected, before, labels).reshape(len(expected), -1)
    new_rows = label_counts(expected, after, labels).reshape(len(expected), -1)
    statistic = macro_f1_of(len(labels))
    b_value = float(statistic(base_rows.sum(0)[None])[0])
    n_value = float(statistic(new_rows.sum(0)[None])[0])
    perm = paired_permutation_test(base_rows, new_rows, statistic, level=level)
    return b_value, n_value, TestResult("paired permutation", perm.delta, perm.p_value, perm.low, perm.high,
                                        perm.discordant)


@dataclass
class Comparison:
    """One metric's paired comparison before the decision."""

    metric: str
    base: float
    new: float
    result: TestResult
    paired: int
    worse_ids: list[str]
    better: int
    percent: bool
    label: str = ""
    flipped: list[dict[str, Any]] = field(default_factory=list)
    higher_is_better: bool = True


def decide(comparisons: Sequence[Comparison], thresholds: Thresholds, alpha: float) -> list[MetricCheck]:
    """Holm-adjust the comparisons' p-values together and decide each metric."""
    adjusted = holm([c.result.p_value for c in comparisons])
    held = len(comparisons) > 1
    checks = []
    for c, p in zip(comparisons, adjusted, strict=True):
        drop = c.base - c.new if c.higher_is_better else c.new - c.base  # how much worse
        allowed = thresholds.drop_allowed(c.metric)
        significant = p < alpha
        failed = drop > allowed + 1e-12 and significant
        f = "{:.1%}" if c.percent else "{:.4f}"
        d = "{:+.1f} pt" if c.percent else "{:+.4f}"
        scale = 100 if c.percent else 1
        interval = ("" if c.result.low is None or c.result.high is None else
                    f", {1 - alpha:.0%} interval of the change [{d.format(c.result.low * scale)}, "
                    f"{d.format(c.result.high * scale)}]")
        p_text = f"p={p:.3g}" + (f" (Holm-adjusted over {len(comparisons)} metrics, raw {c.result.p_value:.3g})"
                                 if held and p != c.result.p_value else "")
        stats = f"{c.result.test} {p_text}"
        dropped = ("dropped " if c.higher_is_better else "rose ") + (f"{drop * 100:.1f} pt" if c.percent else f"{drop:.4f}")
        change = f"({f.format(c.base)} -> {f.format(c.new)})"
        name = c.label or c.metric
        if failed:
            message = f"{name} {dropped} {change}, {stats} < {alpha}{interval}"
        elif drop > allowed + 1e-12:
            message = f"{name} {dropped} {change}, not significant: {stats} >= {alpha}{interval}"
        else:
            message = f"{name} {f.format(c.base)} -> {f.format(c.new)}, {stats}{interval}"
        checks.append(MetricCheck(c.metric, "baseline", not failed, c.new, allowed, c.base, c.result.test, p,
                                  c.result.low, c.result.high, c.paired, c.flipped, c.better, len(c.worse_ids),
                                  message, c.result.p_value, c.percent, 1 - alpha))
    return checks


def _scores(outcome: dict[str, Any] | None) -> dict[str, Any]:
    scores = (outcome or {}).get("scores")
    return scores if isinstance(scores, dict) else {}


def compare_outcomes(baseline: dict[str, dict[str, Any]], outcomes: dict[str, dict[str, Any]], metrics: Sequence[str],
                     continuous: Sequence[str], labels: Sequence[str] | None, expected: dict[str, str | None],
                     f1_comparable: bool = True, direction: Callable[[str], bool] = lambda name: True,
                     kind: Callable[[str], str | None] = lambda name: None,
                     level: float = 0.95) -> tuple[list[Comparison], list[str]]:
    """Paired comparisons of a working copy's per-example outcomes with the baseline's (both keyed
    by example id: {"correct", "prediction"[, "scores"]}); returns them and notes for the report.
    `metrics` are the value names the suite computes; `direction(name)` (higher is better?) and
    `kind(name)` (the metric's aggregate) come from the metric classes via the run's MetricValues."""
    comparisons: list[Comparison] = []
    notes: list[str] = []
    ids = [k for k, v in outcomes.items() if k in baseline
           and v.get("correct") is not None and baseline[k].get("correct") is not None]
    if ids and len(ids) < len(outcomes):
        notes.append(f"{len(ids)} of {len(outcomes)} examples are in the baseline; compared on those")
    if ids:
        base = [float(baseline[k]["correct"]) for k in ids]
        new = [float(outcomes[k]["correct"]) for k in ids]
        worse = [k for k, b, v in zip(ids, base, new, strict=True) if v < b]
        better = sum(v > b for b, v in zip(base, new, strict=True))
        if "accuracy" in metrics:
            comparisons.append(Comparison("accuracy", sum(base) / len(base), sum(new) / len(new),
                                          outcome_test(base, new, level=level), len(ids), worse, better, True))
        if "f1_macro" in metrics and labels and f1_comparable:
            before = [baseline[k].get("prediction") for k in ids]
            after = [outcomes[k].get("prediction") for k in ids]
            b_value, n_value, result = f1_test([expected.get(k) for k in ids], before, after, labels, level)
            changed = [k for k, b, a in zip(ids, before, after, strict=True) if b != a]
            f1_worse = [k for k in changed if float(outcomes[k]["correct"]) < 1]  # the prediction changed to a wrong one
            comparisons.append(Comparison("f1_macro", b_value, n_value, result, len(ids), f1_worse, better, True))
    unscored = []
    for name in continuous:
        if name not in metrics:
            continue
        scored = [k for k, v in outcomes.items() if isinstance(_scores(v).get(name), (int, float))
                  and isinstance(_scores(baseline.get(k)).get(name), (int, float))]
        if not scored:
            unscored.append(name)
            continue
        base = [float(_scores(baseline[k])[name]) for k in scored]
        new = [float(_scores(outcomes[k])[name]) for k in scored]
        up = direction(name)
        drops = sorted(((b - v if up else v - b, k) for k, b, v in zip(scored, base, new, strict=True) if (v < b) == up
                        and v != b), key=lambda d: (-d[0], d[1]))
        better = sum((v > b) == up and v != b for b, v in zip(base, new, strict=True))
        comparisons.append(Comparison(name, sum(base) / len(base), sum(new) / len(new), outcome_test(base, new, up, level),
                                      len(scored), [k for _, k in drops], better, kind(name) in SHARE_KINDS,
                                      "bleu (mean sentence BLEU)" if name == "bleu" else "", higher_is_better=up))
    if unscored:
        notes.append(f"the baseline has no per-example {', '.join(unscored)}: re-bless it to compare them")
    if not comparisons and not unscored:
        notes.append("no example in common with the baseline: nothing to compare")
    return comparisons, notes


def baseline_checks(baseline: dict[str, dict[str, Any]], outcomes: dict[str, dict[str, Any]], metrics: Sequence[str],
                    continuous: Sequence[str], labels: Sequence[str] | None, expected: dict[str, str | None],
                    thresholds: Thresholds, alpha: float, f1_comparable: bool = True,
                    direction: Callable[[str], bool] = lambda name: True,
                    kind: Callable[[str], str | None] = lambda name: None) -> tuple[list[MetricCheck], list[str]]:
    """The decision function of `check` against a baseline: paired tests, Holm, drop limits."""
    comparisons, notes = compare_outcomes(baseline, outcomes, metrics, continuous, labels, expected, f1_comparable,
                                          direction, kind, 1 - alpha)
    return decide(comparisons, thresholds, alpha), notes


def _change(row: dict[str, Any], percent: bool) -> str:
    if "score_before" in row:
        return f"{row['score_before']:.3g} -> {row['score_now']:.3g}"
    before, now = row.get("correct_before"), row.get("correct_now")
    if before in (0, 1) and now in (0, 1):
        return f"{'right' if before else 'wrong'} -> {'right' if now else 'wrong'}"
    return f"{before} -> {now}"


def worse_examples(checks: Sequence[MetricCheck], failed_only: bool = True) -> list[dict[str, Any]]:
    """The examples that got worse in the (failed) baseline checks, each listed once with what fell
    in each metric: {id, index, input, expected, before, after, metrics: {metric: "0.81 -> 0.42"}}."""
    rows: dict[str, dict[str, Any]] = {}
    for check in checks:
        if check.kind != "baseline" or (failed_only and check.passed):
            continue
        for row in check.flipped:
            entry = rows.setdefault(row["id"], {k: row.get(k) for k in ("id", "index", "input", "expected", "before",
                                                                          "after")} | {"metrics": {}})
            entry["metrics"][check.metric] = _change(row, check.percent)
    return sorted(rows.values(), key=lambda r: (r["index"] is None, r["index"]))
