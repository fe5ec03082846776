"""The eval loop: render each example, call the provider in batches, score, record.

`plan_eval` turns a prompt version, a suite and options into an EvalPlan (pure, no model);
`run_eval` executes a plan against a provider, writing results to the run store as it goes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptkit.assertions import assertion_metrics, build_checks
from promptkit.cache import provider_identity, request_key
from promptkit.data import Example, file_hash, load_examples, select_split
from promptkit.errors import ConfigError, NotFoundError, PromptkitError
from promptkit.library import PromptVersion
from promptkit.metrics import DEFAULT_METRICS, metrics, resolve_metrics
from promptkit.metrics.classification import confusion
from promptkit.models import DEFAULT_MODEL, ModelRef, resolve_model
from promptkit.pricing import Price, expected_cost, load_prices, price_for
from promptkit.project import Project, Suite
from promptkit.providers import Provider, options_of, providers
from promptkit.providers.base import parse_options
from promptkit.providers.factory import foreign_options
from promptkit.results import EvalRun, ExampleResult, MetricValue, Request, Response, RunPlan


@dataclass
class EvalPlan:
    """Everything that decides a run's outcome, resolved and validated before any model call."""

    version: PromptVersion
    suite: Suite
    model: ModelRef
    task: str
    examples: list[Example]
    data_path: Path
    data_hash: str
    split: str | None
    decoding: dict[str, Any]
    scoring: str
    metric_names: list[str]
    prices: dict[str, Price] | None = None  # None: the built-in table
    # Set by resolve_scoring when the provider cannot give the scoring asked for:
    scoring_asked: str | None = None  # what the suite asked ("loglik"); `scoring` is what ran
    scoring_note: str | None = None  # why
    probed: bool = False  # resolve_scoring has asked the provider
    checks: Any = None  # promptkit.assertions.SuiteChecks: the suite's and rows' assertions, with their judge
    custom_metrics: dict[str, Any] = field(default_factory=dict)  # name -> Metric class from the project folder
    # what the provider resolved to run with (hf: device, dtype), set by run_eval; not part of the hash
    runtime: dict[str, Any] = field(default_factory=dict)

    @property
    def price(self) -> Price:
        """The project's price for the model spec as written (`prices: {smollm2: ...}`), else for the model."""
        if self.prices is not None and self.model.spec in self.prices:
            return self.prices[self.model.spec]
        return price_for(self.model.model, self.prices)

    @property
    def hash(self) -> str:
        """Identifies the plan: a resumed run must have the same one (whatever scoring the endpoint gave,
        whatever precision the machine chose)."""
        settings = self.settings()
        settings.pop("scoring_note", None)
        settings.pop("runtime", None)
        settings["scoring"] = self.scoring_asked or self.scoring
        # the options that change answers (the suite's provider_options, the registered model's): a resumed
        # run whose endpoint, keywords or scoring option changed would mix two models' answers. Hashed, not
        # recorded: an option such as base_url may carry credentials.
        options = output_options(self.model)
        if options:
            settings["provider_options"] = options
        blob = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def labels(self) -> list[str] | None:
        return self.version.spec.labels

    def settings(self) -> dict[str, Any]:
        """The run's settings as recorded in the store and in reports."""
        return {
            "prompt": self.version.ref,
            "prompt_hash": self.version.hash,
            "suite": self.suite.name,
            "task": self.task,
            "model": self.model.spec,
            "provider": self.model.provider,
            "base_model": self.model.model,
            "adapter": str(self.model.options["adapter"]) if self.model.options.get("adapter") else None,
            "dataset": str(self.data_path),
            "dataset_hash": self.data_hash,
            "split": self.split,
            "examples": len(self.examples),
            "decoding": self.decoding,
            "scoring": self.scoring,
            "labels": self.labels,
            **({"checks": self.checks.settings()} if self.checks is not None else {}),
        } | ({"scoring_note": self.scoring_note} if self.scoring_note else {}) | (
            {"runtime": self.runtime} if self.runtime else {})


def output_options(model: ModelRef) -> dict[str, Any]:
    """The model's options that can change an output: those its provider declares neutral (batch sizes,
    timeouts, keys) and those only another provider takes (open_provider leaves them out) are dropped."""
    neutral = options_of(model.provider).output_neutral()
    foreign = foreign_options(model.provider, set(model.options))
    return {k: v for k, v in sorted(model.options.items()) if k not in neutral and k not in foreign}


def plan_eval(
    project: Project,
    version: PromptVersion,
    suite: Suite | None = None,
    model: str | None = None,
    data: Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    overrides: dict[str, Any] | None = None,
    judge: str | None = None,
) -> EvalPlan:
    suite = suite or project.suite_for(version)
    cfg = suite.config
    spec = version.spec
    task = cfg.task or ("classification" if spec.labels else "generation")
    if task == "classification" and not spec.labels:
        raise ConfigError("classification needs a label set", where=str(version.source), hint="add 'labels: [...]'")
    if task == "classification" and cfg.dataset.target is None:
        # with no expected labels every prediction would count as wrong: a 0% accuracy that measures nothing
        raise ConfigError("a classification suite needs the dataset's target column", where=suite.place("dataset", "target"),
                          hint="set dataset.target to the column holding each row's label")
    if model is not None and not model.strip():
        raise NotFoundError("empty model name", hint="give a model spec such as --model smollm2")
    model_ref = resolve_model(model or cfg.model or spec.settings.model or DEFAULT_MODEL, project.models)
    check_suite_options(suite, model_ref)
    model_ref = ModelRef(model_ref.spec, model_ref.provider, model_ref.model, {**cfg.provider_options, **model_ref.options})

    variables = version.template.variables()
    fields = cfg.dataset.fields if cfg.dataset.fields is not None else {v: v for v in sorted(variables)}
    missing = sorted(variables - set(fields))
    if missing:
        raise ConfigError(
            f"template variable {missing[0]!r} is not defined by the suite's dataset fields",
            where=str(version.source),
            hint=f"fix the template, or map it in {suite.path} under dataset.fields ({', '.join(fields) or 'none mapped'})",
        )
    data_path = data if data is not None else suite.dataset_path()
    # An explicit --data file is scored whole unless a split is asked for.
    split = split if split is not None else (None if data is not None else cfg.split)
    examples = load_examples(data_path, fields, cfg.dataset.target, cfg.dataset.split_field)
    examples = select_split(examples, split, str(data_path))
    if limit is not None:
        examples = examples[: max(0, limit)]
    if not examples:
        raise ConfigError("no examples to evaluate", where=str(data_path))
    if task == "classification":
        check_targets(spec.labels, [e.target for e in examples], str(data_path))

    settings = spec.settings
    decoding = {"temperature": settings.temperature, "max_tokens": settings.max_tokens, "stop": list(settings.stop)}
    decoding.update({k: v for k, v in (overrides or {}).items() if v is not None})

    supports = providers.get(model_ref.provider).supports_scoring
    scoring = cfg.scoring or ("loglik" if task == "classification" and supports else "generate")

    names, custom = resolve_metrics(cfg.metrics or DEFAULT_METRICS[task], project.root, str(suite.path))
    for name in names:
        (custom.get(name) or metrics.get(name)).check()  # unknown or unusable metrics fail here, before any model call
    checks = build_checks(project, suite, examples, data_path, judge)
    return EvalPlan(version, suite, model_ref, task, examples, data_path, file_hash(data_path), split, decoding,
                    scoring, names, load_prices(project.root), checks=checks, custom_metrics=custom)


def check_suite_options(suite: Suite, model_ref: ModelRef) -> None:
    """Refuse a bad entry of the suite's provider_options at its line, before the provider (which
    knows no file) refuses it. Options another provider declares are left out, as open_provider does;
    those the registered model sets itself override the suite's."""
    options = suite.config.provider_options
    schema = options_of(model_ref.provider)
    for name in sorted(set(options) - set(model_ref.options) - foreign_options(model_ref.provider, set(options))):
        try:
            parse_options(model_ref.provider, schema, {name: options[name]})
        except ConfigError as e:
            raise ConfigError(e.message, where=suite.place("provider_options", name), hint=e.hint) from None


def build_request(plan: RunPlan, example: Example) -> Request:
    rendered = plan.version.template.render(example.vars, what=f"example {example.index + 1} of {plan.data_path}")
    # the answer texts (verbalizers) are scored; score_example maps them back to label names
    scored = plan.task == "classification" and (plan.scoring_asked or plan.scoring) == "loglik"
    labels = plan.version.spec.answers if scored else None
    return Request(
        id=example.id,
        text=rendered.text,
        messages=rendered.messages,
        labels=labels,
        label_prefix=plan.version.spec.prefix,
        max_tokens=int(plan.decoding["max_tokens"]),
        temperature=float(plan.decoding["temperature"]),
        stop=list(plan.decoding["stop"]),
        seed=plan.decoding.get("seed"),
    )


def parse_label(output: str, labels: Sequence[str]) -> str | None:
    """The label a free-text answer names: an exact match, else the first label it starts with or mentions."""
    text = output.strip().strip(".!\"'").lower()
    by_lower = {label.lower(): label for label in labels}
    if text in by_lower:
        return by_lower[text]
    for lowered, label in sorted(by_lower.items(), key=lambda kv: -len(kv[0])):
        if text.startswith(lowered):
            return label
    mentioned = [label for lowered, label in by_lower.items() if lowered in text]
    return mentioned[0] if len(mentioned) == 1 else None


def score_example(plan: EvalPlan, example: Example, response: Response) -> ExampleResult:
    prediction: str | None
    correct: bool | None
    scores = response.scores
    if response.error is not None:
        prediction, correct = None, False
    elif plan.task == "classification":
        spec = plan.version.spec
        if response.scores:
            prediction, scores = spec.decide(response.scores)  # verbalizers and calibration
        else:
            answer = parse_label(response.output, spec.answers)
            prediction = (spec.labels or [])[spec.answers.index(answer)] if answer is not None else None
        correct = prediction == example.target
    else:
        prediction = response.output
        correct = None if example.target is None else response.output.strip() == example.target.strip()
    return ExampleResult(
        id=example.id, index=example.index, input=example.vars, expected=example.target,
        output=response.output, prediction=prediction, correct=correct, error=response.error,
        scores=scores, tokens_in=response.tokens_in, tokens_out=response.tokens_out,
        cost=response.cost, latency=response.latency, cached=response.cached,
    )


def check_context_window(plan: EvalPlan, provider: Provider) -> None:
    """Refuse a run whose longest prompt (few-shot examples included) cannot fit the model."""
    window = provider.context_window
    if not window:
        return
    longest = max(plan.examples, key=lambda e: len(json.dumps(e.vars, ensure_ascii=False)))
    tokens = provider.prompt_tokens(build_request(plan, longest))
    needed = tokens + (int(plan.decoding["max_tokens"]) if plan.task == "generation" else 8)
    if needed > window:
        raise ConfigError(
            f"the prompt with its longest example needs {needed} tokens; {plan.model.spec} holds {window}",
            where=str(plan.version.source),
            hint="shorten the slots or few-shot examples, lower max_tokens, or use a model with a longer context",
        )


def compute_metrics(plan: EvalPlan, results: Sequence[ExampleResult]) -> list[MetricValue]:
    values: list[MetricValue] = []
    for name in plan.metric_names:
        metric = (plan.custom_metrics.get(name) or metrics.get(name))()
        if plan.task in metric.tasks:
            values += metric.compute(results, plan.labels)
    if plan.checks is not None:
        values += assertion_metrics(results)
    return values


ProgressFn = Callable[[int, int], None]


class RunFailed(PromptkitError):
    """The run cannot go on (bad API key, endpoint down) or every example failed: exit 1."""

    exit_code = 1


def check_targets(plan_labels: Sequence[str] | None, targets: Sequence[str | None], where: str) -> None:
    """Refuse a classification dataset whose targets are not all in the prompt's label set."""
    if not plan_labels:
        return
    unknown = sorted({t for t in targets if t is not None and t not in plan_labels})
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ConfigError(f"dataset targets {shown} are not in the prompt's labels {list(plan_labels)}", where=where,
                          hint="make the labels match the dataset's target values")


def resolve_scoring(plan: EvalPlan, provider: Provider, cache: Any | None = None) -> None:
    """Send the first uncached request alone (the run reuses its answer). Raises RunFailed when it
    shows the run cannot go on (bad key, endpoint down), before a whole batch is sent; for label
    scoring, records in the plan the scoring the provider really gives, with why, when it is not
    what the suite asked for."""
    if not provider.probes_scoring or plan.probed:
        return
    requests = [build_request(plan, e) for e in plan.examples]
    if cache is not None:
        identity = provider_identity(provider, cache)
        keys = [request_key(identity, r) for r in requests]
        hits = cache.get_many(keys)
        requests = [r for r, k in zip(requests, keys, strict=True) if k not in hits]
    if not requests:
        return
    plan.probed = True
    mode, note = provider.resolve_scoring(requests[0])
    if provider.fatal:
        raise RunFailed(provider.fatal)
    if plan.task == "classification" and plan.scoring == "loglik":
        plan.scoring_asked = plan.scoring
        plan.scoring, plan.scoring_note = mode, note


class BudgetExceeded(Exception):
    """Raised inside run_eval when the next call would cross --max-cost; the run stops cleanly."""


def _fill_cost(plan: EvalPlan, response: Response) -> None:
    if not response.cost and (response.tokens_in or response.tokens_out):
        response.cost = plan.price.cost(response.tokens_in, response.tokens_out)


def _cache_hits(results: Sequence[ExampleResult]) -> dict[str, Any]:
    hits = sum(r.cached for r in results)
    return {
        "cache_hits": hits,
        "model_calls": len(results) - hits,
        "spent": sum(r.cost for r in results if not r.cached),
        "cost_saved": sum(r.cost for r in results if r.cached),
    }


def run_eval(
    plan: EvalPlan,
    provider: Provider,
    store: Any | None = None,
    run_id: str | None = None,
    progress: ProgressFn | None = None,
    *,
    cache: Any | None = None,
    max_cost: float | None = None,
    force: bool = False,
) -> EvalRun:
    """Run a plan. With a store, every batch is recorded as it finishes, and examples the
    run already holds (a resumed run, `run_id` given) are not repeated. With a cache
    (promptkit.cache.ResponseCache), cached responses are used and the model is only asked,
    and only loaded, for the rest. With `max_cost` (dollars), the run stops before a batch
    whose expected cost would push the run's spending (earlier sessions of a resumed run included)
    past it, and is left interrupted (resumable). A resumed run is refused when it finished or another
    process took it meanwhile (`force`: take it over anyway)."""

    done: dict[str, ExampleResult] = {}
    resumed_with = None
    resolve_scoring(plan, provider, cache)
    plan.runtime = dict(provider.run_settings)
    if store is not None:
        if run_id is None:
            run_id = store.create_run(plan.settings(), plan.hash)
            done = {}
        else:
            store.claim(run_id, force)
            done = {r.id: r for r in store.results(run_id)}
            resumed_with = len(done)
    pending = [e for e in plan.examples if e.id not in done]
    requests = {e.id: build_request(plan, e) for e in pending}
    keys: dict[str, str] = {}
    if cache is not None and pending:
        identity = provider_identity(provider, cache)
        keys = {i: request_key(identity, r) for i, r in requests.items()}
    # An API batch waits for its slowest request: keep several requests per slot in flight.
    chunk = max(1, provider.batch_size, 4 * int(provider.options.get("concurrency") or 0))
    finished = len(plan.examples) - len(pending)
    # The budget is the run's: what a resumed run spent before counts against it.
    status, spent, checked = "finished", sum(r.cost for r in done.values() if not r.cached), False
    if progress:
        progress(finished, len(plan.examples))
    try:
        for start in range(0, len(pending), chunk):
            batch = pending[start: start + chunk]
            hits = cache.get_many([keys[e.id] for e in batch]) if cache is not None else {}
            misses = [e for e in batch if keys.get(e.id) not in hits]
            if misses and not checked:
                check_context_window(plan, provider)
                checked = True
            if misses and max_cost is not None:
                allowed = []
                for e in misses:
                    expected = expected_cost(plan.price, provider, requests[e.id])
                    if spent + expected > max_cost:
                        break
                    spent += expected
                    allowed.append(e)
                if len(allowed) < len(misses):
                    status = "interrupted"
                    cut = set(e.id for e in misses[len(allowed):])
                    batch = [e for e in batch if e.id not in cut]
                    misses = allowed
            answered = provider.complete([requests[e.id] for e in misses]) if misses else []
            by_id = dict(zip((e.id for e in misses), answered, strict=True))
            if cache is not None and misses:
                cache.put_many((keys[e.id], by_id[e.id]) for e in misses)
            responses = [hits[keys[e.id]] if e.id not in by_id else by_id[e.id] for e in batch]
            for response in responses:
                _fill_cost(plan, response)
            scored = [score_example(plan, e, r) for e, r in zip(batch, responses, strict=True)]
            if plan.checks is not None:  # assertions, and the judge's calls for model-graded ones
                spent += plan.checks.apply(scored, cache)
            if store is not None and run_id is not None and scored:
                store.add_results(run_id, scored)
            for result in scored:
                done[result.id] = result
            finished += len(batch)
            if progress:
                progress(finished, len(plan.examples))
            if provider.fatal:  # a bad key or a dead endpoint: every further call would fail too
                status = "failed"
                break
            if status != "finished":
                break
    except KeyboardInterrupt as interrupt:
        if store is not None and run_id is not None:
            store.set_status(run_id, "interrupted", {**_cache_hits(list(done.values())), "stopped": "interrupted"})
            interrupt.run_id = run_id  # type: ignore[attr-defined]  # named by the CLI's "--resume ID" hint
        raise
    results = [done[e.id] for e in plan.examples if e.id in done]
    values = compute_metrics(plan, results)
    matrix = confusion(results, plan.labels) if plan.task == "classification" and plan.labels else None
    extra = _cache_hits(results)
    if resumed_with is not None:
        extra["resumed_with"] = resumed_with  # results the run held when this process took it over
    if status == "failed":
        extra.update(stopped=provider.fatal, remaining=len(plan.examples) - len(results))
    elif status != "finished":
        extra.update(stopped="max-cost", max_cost=max_cost, remaining=len(plan.examples) - len(results))
    if status == "finished" and results and all(r.error is not None for r in results):
        status = "failed"  # nothing was scored: a run of errors is not a result
        extra["stopped"] = f"every example failed; first: {results[0].error}"
    if provider.scoring_modes:
        extra["scoring_modes"] = dict(provider.scoring_modes)  # which scoring each request really got
    if provider.stats.get("requests"):
        extra["provider_stats"] = {k: v for k, v in provider.stats.items() if k != "faults_reported"}
    run = EvalRun(plan, results, values, matrix, run_id, extra, status)
    if store is not None and run_id is not None:
        store.finish_run(run_id, values, status, extra)
    return run
