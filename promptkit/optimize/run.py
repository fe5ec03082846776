"""The search: candidates raced by successive halving on growing validation slices, a bias fitted
per candidate, instruction rounds from a proposer, then one paired test of the winner against the
current version, and a published version that records how it was found."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import promptkit.optimize.candidates as cands
from promptkit.cache import provider_identity, request_key
from promptkit.errors import ConfigError, PromptkitError
from promptkit.estimate import estimate_run
from promptkit.evaluate import RunFailed, build_request, run_eval
from promptkit.fileio import file_lock
from promptkit.library import PromptVersion
from promptkit.library.spec import PromptSpec
from promptkit.library.store import PromptFolder
from promptkit.optimize.calibrate import cross_fitted_accuracy, fit_bias
from promptkit.optimize.candidates import Candidate
from promptkit.optimize.data import OptimizeData, carve
from promptkit.optimize.proposer import proposal_request, propose
from promptkit.optimize.publish import publish
from promptkit.optimize.state import SearchState
from promptkit.project import Project, Suite
from promptkit.providers import Provider
from promptkit.results import EvalRun
from promptkit.stats import mcnemar, wilson

Event = Callable[[str, dict[str, Any]], None]  # (kind, info): "phase", "candidate", "rows", "note"


@dataclass
class OptimizeOptions:
    rounds: int = 5
    max_evals: int | None = None  # model calls in the search (cached answers are free)
    max_cost: float | None = None  # dollars, search and final test together
    time_budget: float | None = None  # seconds of search
    proposer: str | None = None
    instructions: list[str] = field(default_factory=list)
    validation_size: int = 400
    first_rung: int = 100
    fewshot_k: tuple[int, ...] = (4,)
    embeddings: bool = True  # diverse and similar few-shot (MiniLM); False: balanced static only
    proposals: int = 4  # instructions asked of the proposer per round
    seed: int = 0
    calibrate: bool = True

    def rungs(self, n: int) -> list[int]:
        sizes, size = [], min(self.first_rung, n)
        while size < n:
            sizes.append(size)
            size *= 2
        return [*sizes, n]

    def record(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "max_evals": self.max_evals, "max_cost": self.max_cost,
                "time_budget": self.time_budget, "proposer": self.proposer, "instructions": len(self.instructions),
                "validation_size": self.validation_size, "first_rung": self.first_rung,
                "fewshot_k": list(self.fewshot_k), "embeddings": self.embeddings, "proposals": self.proposals, "seed": self.seed,
                "calibrate": self.calibrate}


class BudgetStop(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class TestOutcome:
    rows: int
    current: float
    winner: float
    current_only: int  # right only with the current version
    winner_only: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class OptimizeResult:
    state: SearchState
    leaderboard: list[dict[str, Any]]
    winner: Candidate | None
    base_key: str
    test: TestOutcome | None = None
    published: PromptVersion | None = None
    labelled: str | None = None
    verdict: str = ""
    estimate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "status": self.state.status, "stopped_by": self.state.stopped_by,
                "evals": self.state.evals, "cost": self.state.cost, "seconds": round(self.state.seconds, 1),
                "leaderboard": self.leaderboard, "winner": self.winner.to_dict() if self.winner else None,
                "test": self.test.to_dict() if self.test else None,
                "published": self.published.ref if self.published else None, "label": self.labelled,
                "estimate": self.estimate, "proposer_calls": self.state.proposer_calls}


def as_version(base: PromptVersion, spec: PromptSpec) -> PromptVersion:
    return PromptVersion(base.name, base.folder, None, spec.content_hash(), spec, base.source)


class Search:
    def __init__(self, project: Project, base: PromptVersion, data: OptimizeData, provider: Provider,
                 options: OptimizeOptions, state: SearchState, cache: Any | None, event: Event,
                 proposer: Provider | None = None):
        self.project, self.base, self.data, self.provider = project, base, data, provider
        self.options, self.state, self.cache, self.event, self.proposer = options, state, cache, event, proposer
        self.rungs = options.rungs(len(data.validation))
        self.started = time.monotonic()
        self.seconds_before = state.seconds
        self.test_cost = 0.0  # reserved for the final test when --max-cost is set
        self.results: dict[tuple[str, int], EvalRun] = {}

    # -- budget -------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.seconds_before + time.monotonic() - self.started

    def check_budget(self) -> None:
        o, s = self.options, self.state
        if o.max_evals is not None and s.evals >= o.max_evals:
            raise BudgetStop(f"max-evals {o.max_evals}")
        if o.max_cost is not None and s.cost + self.test_cost >= o.max_cost:
            raise BudgetStop(f"max-cost ${o.max_cost:g}")
        if o.time_budget is not None and self.elapsed() >= o.time_budget:
            raise BudgetStop(f"time-budget {o.time_budget:g}s")

    def save(self) -> None:
        self.state.seconds = self.elapsed()
        self.state.save()

    # -- scoring ------------------------------------------------------------------------------------
    def score(self, cand: Candidate, rows: int) -> None:
        """Score a candidate on the first `rows` validation rows (cached calls are free)."""
        if rows in cand.scores:
            return
        self.check_budget()
        plan = self.data.validation_plan(as_version(self.base, cand.spec), rows)
        max_cost = None if self.options.max_cost is None else self.options.max_cost - self.test_cost - self.state.cost
        if self.options.max_evals is not None:
            plan = replace(plan, examples=self._within_evals(plan))
        self.event("candidate", {"origin": cand.origin, "rows": rows, "key": cand.key})
        run = run_eval(plan, self.provider, cache=self.cache, max_cost=max_cost,
                       progress=lambda done, total: self.event("rows", {"done": done, "total": total}))
        spent = [r for r in run.results if not r.cached]
        self.state.evals += len(spent)
        self.state.cost += sum(r.cost for r in spent)
        if run.status == "failed":  # a bad key, a dead endpoint, or every row an error: no score to race on
            self.save()
            raise RunFailed(f"scoring '{cand.origin}' on {plan.model.spec} failed: {run.extra.get('stopped')}",
                            hint="fix the model or provider, then rerun with --resume")
        if run.status != "finished" or len(run.results) < rows:
            self.save()
            raise BudgetStop(f"max-cost ${self.options.max_cost:g}" if run.status != "finished"
                             else f"max-evals {self.options.max_evals}")
        correct = sum(bool(r.correct) for r in run.results)
        cand.scores[rows] = (correct, len(run.results))
        if self.options.calibrate and any(r.scores for r in run.results):
            cand.calibrated[rows] = cross_fitted_accuracy(run.results, list(cand.spec.labels or []))
            cand.bias = fit_bias(run.results, list(cand.spec.labels or []))
        self.results[(cand.key, rows)] = run
        self.save()

    def _within_evals(self, plan: Any) -> list[Any]:
        """Rows up to the --max-evals budget, uncached ones counted (a cached answer is free)."""
        left = (self.options.max_evals or 0) - self.state.evals
        if self.cache is None:
            return list(plan.examples[: max(0, left)])

        identity = provider_identity(self.provider, self.cache)
        keys = [request_key(identity, build_request(plan, e)) for e in plan.examples]
        hits = self.cache.get_many(keys) if keys else {}
        kept = []
        for example, key in zip(plan.examples, keys, strict=True):
            if key not in hits:
                if left <= 0:
                    break
                left -= 1
            kept.append(example)
        return kept

    def add(self, spec: PromptSpec, origin: str, parent: str | None = None) -> Candidate | None:
        try:
            version = as_version(self.base, spec)
            version.template.render(self.data.validation[0].vars, what="a validation row")
        except ConfigError as e:
            self.event("note", {"text": f"skipped candidate '{origin}': {e}"})
            return None
        cand = Candidate.of(spec, origin, parent)
        return self.state.candidates.setdefault(cand.key, cand)

    @staticmethod
    def accuracy(cand: Candidate) -> float:
        _rows, correct, n, _ = cand.best()
        return correct / n if n else -1.0

    def race(self, pool: Sequence[Candidate]) -> Candidate:
        """Successive halving: all on the first slice, the better half on a slice twice as large, ..."""
        alive = list({c.key: c for c in pool}.values())
        for i, rows in enumerate(self.rungs):
            for cand in alive:
                self.score(cand, rows)
            alive.sort(key=lambda c: (-self.accuracy(c), c.key != self.base_key))
            if i < len(self.rungs) - 1:
                keep = max(1, -(-len(alive) // 2))
                # the current version runs every slice: it is what the winner is measured against
                dropped = [c for c in alive[keep:] if c.key != self.base_key]
                for cand in dropped:
                    cand.dropped_at = rows
                alive = [c for c in alive if c not in dropped]
        return max(alive, key=lambda c: (self.accuracy(c), c.key == self.base_key))

    def incumbent(self) -> Candidate:
        full = self.rungs[-1]
        scored = [c for c in self.state.candidates.values() if full in c.scores]
        return max(scored, key=lambda c: (self.accuracy(c), c.key == self.base_key))

    # -- phases -------------------------------------------------------------------------------------
    @property
    def base_key(self) -> str:
        return self.base.spec.content_hash()

    def phase(self, name: str, make: Callable[[], list[Candidate]]) -> None:
        if name in self.state.phases_done:
            return
        self.event("phase", {"name": name})
        pool = [c for c in make() if c is not None]
        if pool:
            self.race(pool)
        self.state.phases_done.append(name)
        self.save()

    def run(self) -> None:
        base = self.add(self.base.spec, "current version")
        assert base is not None
        labels = list(self.base.spec.labels or [])

        def structural() -> list[Candidate]:
            found = [self.add(spec, origin, base.key) for spec, origin in cands.structural(self.base.spec)]
            found += [self.add(cands.with_instruction(self.base.spec, text), f"instruction from file #{i + 1}", base.key)
                      for i, text in enumerate(self.options.instructions)]
            return [base, *[c for c in found if c is not None]]

        self.phase("structural", structural)

        def fewshot() -> list[Candidate]:
            best = self.incumbent()
            made = cands.fewshot(best.spec, self.data.pool, self.options.fewshot_k, self.options.seed,
                                 embeddings=self.options.embeddings)
            return [best, *[c for c in (self.add(spec, origin, best.key) for spec, origin in made) if c is not None]]

        if self.data.pool and self.options.fewshot_k:
            self.phase("fewshot", fewshot)

        for round_ in range(1, self.options.rounds + 1):
            if self.proposer is None:
                break

            def proposals(round_: int = round_) -> list[Candidate]:
                best = self.incumbent()
                instructions = self.ask_proposer(best, labels, round_)
                made = [self.add(cands.with_instruction(best.spec, text), f"proposer round {round_} #{i + 1}", best.key)
                        for i, text in enumerate(instructions)]
                return [best, *[c for c in made if c is not None]]

            self.phase(f"round {round_}", proposals)

    def ask_proposer(self, best: Candidate, labels: list[str], round_: int) -> list[str]:
        assert self.proposer is not None
        self.check_budget()
        run = self.results.get((best.key, self.rungs[-1]))
        failures = [(" ".join(str(v) for v in r.input.values()), str(r.expected), r.prediction)
                    for r in (run.results if run else []) if not r.correct]
        _rows, correct, n, _ = best.best()
        request = proposal_request(best.spec.slots.instruction or "", best.spec.slots.task, labels,
                                   correct / max(1, n), failures, self.options.proposals,
                                   self.options.seed * 1000 + round_)
        instructions, record = propose(self.proposer, request)
        self.state.cost += record.get("cost") or 0.0
        self.state.proposer_calls.append({"round": round_, **record, "proposed": instructions})
        self.event("note", {"text": f"round {round_}: the proposer offered {len(instructions)} instruction(s)"
                            + (f" (error: {record['error']})" if record.get("error") else "")})
        return instructions


# Seconds per scored row and per token, fitted to the two uncached reference runs of the README (hf,
# SmolLM2, 2 idle cores, float32: 3,594 rows / 76k tokens in 4.4 min; 3,888 rows / 185k tokens in 6.7 min).
# Time grows with tokens (the chat prompt's rows are longer), so a rows-only rate misjudged the chat run
# by half. API providers: 5 rows/s.
SECONDS_PER_ROW = {"hf": 0.05}
SECONDS_PER_TOKEN = {"hf": 0.0011}


def estimate(search: Search, cache: Any | None) -> dict[str, Any]:
    """Calls, tokens, dollars and minutes of the whole run, before anything runs: structural candidates
    and few-shot raced by halving, proposer rounds, the final test of two versions."""
    o, rungs = search.options, search.rungs
    n_structural = 1 + len(cands.structural(search.base.spec)) + len(o.instructions)
    n_fewshot = (3 if o.embeddings else 1) * len([k for k in o.fewshot_k if k <= len(search.data.pool)])
    rounds = o.rounds if o.proposer else 0

    def halving(count: int) -> int:
        rows, alive, previous = 0, count, 0
        for size in rungs:
            rows += alive * (size - previous)  # the first rows of a larger slice are cached
            previous = size
            alive = max(1, -(-alive // 2))
        return rows

    # the incumbent of each later phase is already scored: count only the new candidates
    search_rows = halving(n_structural) + (halving(n_fewshot + 1) - rungs[-1] if n_fewshot else 0)
    search_rows += rounds * (halving(o.proposals + 1) - rungs[-1])
    sample = search.data.validation_plan(search.base, min(len(search.data.validation), 50))
    per_row = estimate_run(sample, search.provider)
    test = estimate_run(search.data.test_plan, search.provider, cache=cache)
    tokens_per_row = (per_row.tokens_in + per_row.tokens_out) / max(1, per_row.examples)
    cost_per_row = per_row.cost / max(1, per_row.examples)
    provider = search.data.train_plan.model.provider
    test_rows = 2 * (test.examples - test.cached)
    seconds = (search_rows + test_rows) * (SECONDS_PER_ROW.get(provider, 0.2)
                                          + SECONDS_PER_TOKEN.get(provider, 0.0) * tokens_per_row)
    return {"validation_rows": len(search.data.validation), "rungs": rungs, "pool_rows": len(search.data.pool),
            "test_rows": test.examples, "candidates": n_structural + n_fewshot + rounds * o.proposals,
            "search_calls": search_rows, "proposer_calls": rounds, "test_calls": test_rows,
            "tokens": round((search_rows + test_rows) * tokens_per_row),
            "search_cost": search_rows * cost_per_row, "test_cost": 2 * test.to_spend,
            "minutes": seconds / 60}


def settings_key(base: PromptVersion, data: OptimizeData, options: OptimizeOptions) -> str:
    # budgets are left out: a run stopped by one resumes with a larger one
    searched = {k: v for k, v in options.record().items() if k not in ("max_evals", "max_cost", "time_budget")}
    blob = json.dumps({"prompt": base.hash, "data": data.data_hash, "options": searched,
                       "instructions": options.instructions}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def leaderboard(state: SearchState, base_key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for cand in state.candidates.values():
        scored_rows, correct, n, calibrated = cand.best()
        if not n:
            continue
        low, high = wilson(correct, n)
        raw = cand.scores.get(scored_rows, (0, 0))
        rows.append({"key": cand.key, "origin": cand.origin + (" + fitted bias" if calibrated else ""),
                     "current": cand.key == base_key, "rows": scored_rows, "accuracy": correct / n, "low": low,
                     "high": high, "raw_accuracy": raw[0] / max(1, raw[1]), "calibrated": calibrated,
                     "dropped_at": cand.dropped_at, "parent": cand.parent,
                     "scores": {str(k): list(v) for k, v in sorted(cand.scores.items())},
                     "calibrated_scores": {str(k): list(v) for k, v in sorted(cand.calibrated.items())},
                     "bias": cand.bias})
    rows.sort(key=lambda r: (-r["rows"], -r["accuracy"], not r["current"]))
    return rows


def final_spec(cand: Candidate) -> PromptSpec:
    """The winner as published: with its fitted bias when the bias is what made it win."""
    _, _, _, calibrated = cand.best()
    if calibrated and cand.bias and any(cand.bias.values()):
        data = cand.spec.model_dump(exclude_defaults=True)
        data["calibration"] = cand.bias
        return PromptSpec.model_validate(data)
    return cand.spec


def optimize(project: Project, base: PromptVersion, suite: Suite, provider: Provider,
             options: OptimizeOptions, *, train_data: Path | None = None, eval_data: Path | None = None,
             model: str | None = None, cache: Any | None = None, store: Any | None = None,
             proposer: Provider | None = None, resume: bool = False, dry_run: bool = False,
             label: str | None = None, event: Event | None = None) -> OptimizeResult:

    event = event or (lambda kind, info: None)
    if not base.spec.labels:
        raise ConfigError("optimize searches classification prompts (label scores); this prompt has no labels",
                          where=str(base.source), hint="add 'labels: [...]'")
    data = carve(project, base, suite, train_data, eval_data, options.validation_size, options.seed, model)
    key = settings_key(base, data, options)
    path = project.state_dir / "optimize" / f"{base.name}-{key}.json"
    with ExitStack() as held:
        try:  # two runs with these settings would write one state file, the last writer's
            held.enter_context(file_lock(path.with_name(path.name + ".lock"), "the optimize state", timeout=0))
        except PromptkitError as e:
            if "locked by another process" not in e.message:
                raise
            raise ConfigError("another `promptkit optimize` with these settings is running", where=str(path),
                              hint="wait for it to finish (then --resume continues from its state), or change --seed") from None
        return _optimize(project, base, suite, provider, options, data, key, path, cache, store, proposer, resume,
                         dry_run, label, event)


def _optimize(project: Project, base: PromptVersion, suite: Suite, provider: Provider, options: OptimizeOptions,
              data: OptimizeData, key: str, path: Path, cache: Any | None, store: Any | None, proposer: Provider | None,
              resume: bool, dry_run: bool, label: str | None, event: Event) -> OptimizeResult:
    """optimize(), holding the lock on its state file."""
    if resume:
        state = SearchState.load(path, key)
    else:
        state = SearchState(path, key, {"prompt": base.ref, "prompt_hash": base.hash, "suite": suite.name,
                                        "model": data.train_plan.model.spec, "options": options.record(),
                                        "train": str(data.train_plan.data_path), "train_split": data.train_plan.split,
                                        "test": str(data.test_plan.data_path), "test_split": data.test_plan.split,
                                        "data_hash": data.data_hash, "validation_rows": len(data.validation),
                                        "validation_ids": [e.id for e in data.validation]})
    search = Search(project, base, data, provider, options, state, cache, event, proposer)
    plan_estimate = estimate(search, cache)
    result = OptimizeResult(state, [], None, search.base_key, estimate=plan_estimate)
    event("estimate", plan_estimate)
    if dry_run:
        result.verdict = "dry run: nothing was scored"
        return result
    if options.max_cost is not None:
        search.test_cost = plan_estimate["test_cost"]
    if state.status in ("running", "stopped"):
        state.status, state.stopped_by = "running", None
        try:
            search.run()
            state.status = "searched"
        except BudgetStop as stop:
            state.status, state.stopped_by = "stopped", stop.reason
            event("note", {"text": f"budget reached ({stop.reason}): the search stops with what it has scored"})
        search.save()
    result.leaderboard = leaderboard(state, search.base_key)
    full = search.rungs[-1]
    scored = [c for c in state.candidates.values() if c.scores]
    if not scored:
        result.verdict = "the budget ran out before any candidate was scored; nothing published"
        return result
    # the winner must have been scored on every validation row, as the current version was
    finalists = [c for c in scored if full in c.scores] or scored
    winner = max(finalists, key=lambda c: (Search.accuracy(c), c.key == search.base_key))
    base_cand = state.candidates.get(search.base_key)
    if base_cand is None or not base_cand.scores:  # the search scores it first: only a damaged state lacks it
        raise ConfigError(f"the optimize state holds no score of {base.ref}", where=str(state.path),
                          hint="run without --resume to start again")
    result.winner = winner
    winner_spec = final_spec(winner)
    # the current version as it is scored today: its raw accuracy (its fitted bias is a candidate of its own)
    raw = base_cand.scores.get(max(winner.scores), base_cand.scores[max(base_cand.scores)])
    if winner_spec.content_hash() == base.spec.content_hash() or Search.accuracy(winner) <= raw[0] / max(1, raw[1]):
        result.verdict = f"nothing beat {base.ref} on validation; nothing published"
        state.outcome = {"verdict": result.verdict}
        if state.status != "stopped":
            state.status = "finished"
        state.save()
        return result
    event("phase", {"name": "test"})
    runs = []
    for spec in (base.spec, winner_spec):
        plan = replace(data.test_plan, version=as_version(base, spec))
        runs.append(run_eval(plan, provider, cache=cache,
                             progress=lambda done, total: event("rows", {"done": done, "total": total})))
    for run in runs:
        state.cost += sum(r.cost for r in run.results if not r.cached)
        if run.status == "failed":
            state.save()
            raise RunFailed(f"the final test on {data.test_plan.model.spec} failed: {run.extra.get('stopped')}",
                            hint="fix the model or provider, then rerun with --resume")
    stat = mcnemar(runs[0].results, runs[1].results)
    acc = [sum(bool(r.correct) for r in run.results) / max(1, len(run.results)) for run in runs]
    result.test = TestOutcome(stat.n, acc[0], acc[1], stat.a_only, stat.b_only, stat.p_value)
    if acc[1] <= acc[0]:
        result.verdict = (f"the validation winner did not beat {base.ref} on the test rows "
                          f"({acc[1]:.1%} vs {acc[0]:.1%}); nothing published")
    else:
        record = {"from": base.ref, "from_hash": base.hash, "method": "promptkit optimize",
                  "settings": state.settings["options"], "model": state.settings["model"],
                  "data_hash": data.data_hash, "train": state.settings["train"], "test": state.settings["test"],
                  "winner": winner.origin + (" + fitted bias" if winner_spec.calibration != winner.spec.calibration else ""),
                  "validation": result.leaderboard[:50],
                  "candidates_tried": len(scored), "evals": state.evals, "test_result": result.test.to_dict()}
        result.published = publish(base, winner_spec, record)
        significant = stat.p_value < 0.05
        if label and significant:
            PromptFolder(base.folder, base.name).set_label(label, result.published)
            result.labelled = label
        result.verdict = (f"published {result.published.ref}: {acc[1]:.1%} vs {acc[0]:.1%} on {stat.n} test rows, "
                          f"McNemar p={stat.p_value:.2g}"
                          + ("" if significant else " (not significant" + (f": label {label!r} not applied)" if label else ")")))
        if store is not None:  # ordinary runs for `runs` and `status` (all answers cached by now)
            for version in (base, result.published):
                run_eval(replace(data.test_plan, version=version), provider, store=store, cache=cache)
    state.outcome = {"verdict": result.verdict, "test": result.test.to_dict()}
    if state.status != "stopped":  # a budget-stopped search stays resumable
        state.status = "finished"
    state.save()
    return result
