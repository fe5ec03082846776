"""Assertions: checks on each output, declared in a suite's `assert:` list or a dataset row's
`assert` field, as promptfoo users write them.

Each example gets an outcome per assertion (pass/fail, score, reason), stored with its result.
The suite reports, with Wilson intervals: `assertions` (share of examples passing all of theirs
of weight > 0), `assert_score` (mean weighted score, bootstrap interval)
and one `assert:NAME` metric per assertion name (its `metric:`, else its type; assertions sharing
a name form one group, passed when all of them pass). Per-example 0/1 values ride along so the
gate compares them pairwise with the baseline. Judged types (llm-rubric, factuality) go through
a judge model in batches; an unreadable judge answer is a judge error (`judge_errors`), not a fail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from promptkit.assertions.base import AssertionSpec, AssertionType, Context, JudgedAssertion, Outcome
from promptkit.assertions.builtin import render
from promptkit.config import line_of, load_yaml
from promptkit.data import read_rows
from promptkit.errors import ConfigError, did_you_mean
from promptkit.judges import Judge, JudgeError
from promptkit.pricing import load_prices
from promptkit.registry import Registry
from promptkit.results import ExampleResult, MetricValue
from promptkit.stats import bootstrap_mean, wilson

if TYPE_CHECKING:
    from promptkit.data import Example
    from promptkit.project import Project, Suite

assertion_types: Registry[type[AssertionType]] = Registry("assertion type", group="promptkit.assertions")
for _name, _cls in [
    ("contains", "Contains"), ("icontains", "IContains"), ("contains-any", "ContainsAny"),
    ("not-contains", "NotContains"), ("not-icontains", "NotIContains"), ("equals", "Equals"),
    ("starts-with", "StartsWith"), ("regex", "Regex"), ("not-regex", "NotRegex"), ("is-json", "IsJson"),
    ("json-schema", "JsonSchema"), ("length", "Length"), ("word-count", "WordCount"),
    ("sentence-count", "SentenceCount"), ("latency", "Latency"), ("cost", "Cost"), ("python", "Python"),
]:
    assertion_types.register(_name, f"promptkit.assertions.builtin:{_cls}")
assertion_types.register("llm-rubric", "promptkit.judges.graded:LlmRubric")
assertion_types.register("factuality", "promptkit.judges.graded:Factuality")

PREFIX = "assert:"


@dataclass
class Bound:
    """An assertion ready to check: its type instance and the name it reports under."""

    label: str
    check: AssertionType


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def build(specs: Sequence[Any], folder: Path, root: Path, where: Any) -> list[Bound]:
    """Validate raw `assert` entries; `where(i)` names the place of entry i for errors."""
    if not isinstance(specs, list):
        raise ConfigError("'assert' must be a list of {type, value} entries", where=where(None))
    bound = []
    for i, raw in enumerate(specs):
        if isinstance(raw, AssertionSpec):
            spec = raw
        else:
            if not isinstance(raw, dict):
                raise ConfigError(f"assert[{i}] must be a mapping with 'type:'", where=where(i))
            try:
                spec = AssertionSpec.model_validate(raw)
            except ValidationError as e:
                err = e.errors()[0]
                key = ".".join(str(p) for p in err["loc"]) or "entry"
                raise ConfigError(f"assert[{i}].{key}: {err['msg']}", where=where(i),
                                  hint="keys: type, value, weight, metric, threshold") from None
        if spec.type not in assertion_types:
            raise ConfigError(f"unknown assertion type {spec.type!r}", where=where(i),
                              hint=did_you_mean(spec.type, assertion_types.names()))
        try:
            check = assertion_types.get(spec.type)(spec, folder, root)
        except ValueError as e:
            raise ConfigError(f"assert[{i}] ({spec.type}): {e}", where=where(i)) from None
        if spec.threshold is not None and not check.uses_threshold:
            raise ConfigError(f"assert[{i}] ({spec.type}): 'threshold' has no effect on this type", where=where(i),
                              hint="threshold is the pass mark of llm-rubric and python, the limit of latency and cost")
        bound.append(Bound(spec.metric or spec.type, check))
    return bound


def check_templates(bound: Sequence[Bound], row: dict[str, Any], where: Any, row_place: str) -> None:
    """Render each assertion's templates with one row, so that a field the row lacks (or any other
    template error) stops the run before any model call, naming the assertion and the row."""
    for i, b in enumerate(bound):
        for template in b.check.templates():
            try:
                render(template, row)
            except Exception as e:  # noqa: BLE001 - any error of the user's template (undefined, sandbox, type)
                raise ConfigError(f"assert[{i}] ({b.check.spec.type}): {template!r} fails on the row at {row_place}: "
                                  f"{type(e).__name__}: {e}", where=where(i),
                                  hint="give every row that field, or guard it: {{ field | default('') }}") from None


class SuiteChecks:
    """A plan's assertions: the suite's, each row's, and the judge for model-graded ones."""

    def __init__(self, common: list[Bound], per_row: dict[str, list[Bound]], rows: dict[str, dict[str, Any]],
                 folder: Path, judge: Judge | None):
        self.common = common
        self.per_row = per_row
        self.rows = rows
        self.folder = folder
        self.judge = judge

    def settings(self) -> dict[str, Any]:
        """What changes outcomes, for the plan hash."""
        return {"assert": [b.check.spec.model_dump() for b in self.common],
                "judge": self.judge.ref.spec if self.judge else None}

    def bound_for(self, example_id: str) -> list[Bound]:
        return self.common + self.per_row.get(example_id, [])

    def apply(self, results: Sequence[ExampleResult], cache: Any | None = None) -> float:
        """Check every result (filling `result.assertions`); judged ones in one judge batch.
        Returns the dollars the judge spent on uncached calls."""
        judged: list[tuple[dict[str, Any], JudgedAssertion, str, Context]] = []
        for result in results:
            ctx = Context(self.rows.get(result.id, {}), result, self.folder)
            outcomes: list[dict[str, Any]] = []
            for b in self.bound_for(result.id):
                entry = {"metric": b.label, "type": b.check.spec.type, "weight": b.check.spec.weight}
                if result.error is not None:
                    entry.update(_record(Outcome(False, "no output: the model call failed")))
                elif isinstance(b.check, JudgedAssertion):
                    judged.append((entry, b.check, result.output, ctx))
                else:
                    try:
                        entry.update(_record(b.check.check(result.output, ctx)))
                    except Exception as e:  # noqa: BLE001 - a value that only fails on some row (a template field it lacks)
                        entry.update(_record(Outcome(False, f"could not check: {type(e).__name__}: {e}")))
                outcomes.append(entry)
            result.assertions = outcomes
        if not judged:
            return 0.0
        assert self.judge is not None  # build_checks refuses judged assertions without a judge

        before = self.judge.spent
        asked, requests = [], []
        for item in judged:
            entry, check, output, ctx = item
            try:
                requests.append(check.judge_request(output, ctx, self.judge))
                asked.append(item)
            except Exception as e:  # noqa: BLE001 - the judge prompt failing to render (its budget, an override's bug)
                entry.update(_record(Outcome(None, f"judge prompt not rendered: {type(e).__name__}: {e}",
                                             judge_error=True)))
                self.judge.errors += 1
        answers = self.judge.ask(requests, cache)
        for (entry, check, _, ctx), answer in zip(asked, answers, strict=True):
            if not answer.cached:
                ctx.result.cost += answer.cost  # the run's spending (and --max-cost) includes its judging
            if answer.error is not None:
                outcome = Outcome(None, f"judge call failed: {answer.error}", judge_error=True)
            else:
                try:
                    outcome = check.parse(answer.output)
                except JudgeError as e:
                    outcome = Outcome(None, str(e), judge_error=True)
            if outcome.judge_error:
                self.judge.errors += 1
            entry.update(_record(outcome), judge_cost=answer.cost)
        return self.judge.spent - before

    def close(self) -> None:
        if self.judge is not None:
            self.judge.close()


def _record(outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"pass": outcome.passed, "score": outcome.score, "reason": outcome.reason}
    if outcome.judge_error:
        out["judge_error"] = True
    return out


def build_checks(project: Project, suite: Suite, examples: Sequence[Example], data_path: Path,
                 judge: str | None = None) -> SuiteChecks | None:
    """The plan's assertions, validated before any model call; None when there are none."""

    folder = suite.path.parent
    text = load_yaml(suite.path)[1] if suite.path.is_file() else ""

    def suite_where(i: int | None, key: str = "assert") -> str:
        loc: tuple[str | int, ...] = (key,) if i is None else (key, i)
        return _where(suite.path, line_of(text, loc) if text else None)

    common = build(list(suite.config.assert_), folder, project.root, suite_where)
    per_row: dict[str, list[Bound]] = {}
    rows: dict[str, dict[str, Any]] = {}
    raw_rows = read_rows(data_path)
    for example in examples:
        line, row = raw_rows[example.index]
        rows[example.id] = row
        row_where = lambda i, line=line: _where(data_path, line)  # noqa: E731
        if row.get("assert") is not None:
            per_row[example.id] = build(row["assert"], folder, project.root, row_where)
            check_templates(per_row[example.id], row, row_where, _where(data_path, line))
        check_templates(common, row, suite_where, _where(data_path, line))
    if not common and not per_row:
        return None
    bound = common + [b for bs in per_row.values() for b in bs]
    judge_spec = judge or suite.config.judge
    judge_obj = None
    needing = next((b for b in bound if b.check.needs_judge), None)
    if needing is not None:
        if not judge_spec:
            raise ConfigError(f"assertion {needing.check.spec.type!r} needs a judge model", where=suite_where(None),
                              hint="add 'judge: MODEL' to the suite (e.g. judge: smollm2 or judge: openai:gpt-4o-mini)")

        judge_obj = Judge.resolve(judge_spec, project, suite_where(None, "judge") if suite.config.judge else "--judge",
                                  load_prices(project.root))
        # the judge's prompt renders (a project's override of it may be broken) before any model call
        probes = [(examples[0], common)] + [(e, per_row[e.id]) for e in examples if e.id in per_row]
        for example, bounds in probes:
            result = ExampleResult(example.id, example.index, example.vars, example.target, "(output)", None, None)
            for b in bounds:
                if isinstance(b.check, JudgedAssertion):
                    b.check.judge_request(result.output, Context(rows[example.id], result, folder), judge_obj)
    return SuiteChecks(common, per_row, rows, folder, judge_obj)


def weighted_score(entries: list[dict[str, Any]]) -> float | None:
    """An example's assertion score: the weighted mean of its judged assertions' scores (0..1)."""
    counted = [(e["weight"], e["score"]) for e in entries if e.get("score") is not None and e["weight"] > 0]
    total = sum(w for w, _ in counted)
    return sum(w * s for w, s in counted) / total if total else None


def assertion_metrics(results: Sequence[ExampleResult]) -> list[MetricValue]:
    """`assertions`, one `assert:NAME` per name, and `judge_errors`, from the results' outcomes."""

    labels: list[str] = []
    for r in results:
        for entry in r.assertions or []:
            if entry["metric"] not in labels:
                labels.append(entry["metric"])
    if not labels:
        return []

    def value(name: str, per_example: list[float | None]) -> MetricValue:
        counted = [v for v in per_example if v is not None]
        n, yes = len(counted), int(sum(counted))
        low, high = wilson(yes, n)
        return MetricValue(name, yes / n if n else 0.0, True, low, high, interval="wilson", n=n, kind="proportion",
                           paired="scores", per_example=per_example)

    def passed(entries: list[dict[str, Any]]) -> float | None:
        counted = [e["pass"] for e in entries if e.get("pass") is not None]
        if not counted:
            return None  # no assertion of this example counts (none, or judge errors only)
        return float(all(counted))

    # weight 0 (as in promptfoo): reported under its own name, not counted in the example's pass or score
    out = [value("assertions", [passed([e for e in r.assertions or [] if e["weight"] > 0]) for r in results])]
    scores = [weighted_score(r.assertions or []) for r in results]
    counted = [v for v in scores if v is not None]
    if counted:
        low, high = bootstrap_mean(counted)
        out.append(MetricValue("assert_score", sum(counted) / len(counted), True, low, high, interval="bootstrap",
                               n=len(counted), kind="mean", per_example=scores))
    for label in labels:
        per_example = [passed([e for e in r.assertions or [] if e["metric"] == label]) for r in results]
        if any(v is not None for v in per_example):  # a group judged on no example (all judge errors) has no rate
            out.append(value(PREFIX + label, per_example))
    errors = sum(bool(e.get("judge_error")) for r in results for e in r.assertions or [])
    if any("judge_cost" in e or e.get("judge_error") for r in results for e in r.assertions or []):
        out.append(MetricValue("judge_errors", float(errors), None, n=len(results), kind="sum"))
    return out


__all__ = ["PREFIX", "AssertionSpec", "AssertionType", "Context", "JudgedAssertion", "Outcome", "SuiteChecks",
           "assertion_metrics", "assertion_types", "build", "build_checks"]
