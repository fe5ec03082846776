"""--estimate and --max-cost. Acceptance 3: the estimate agrees with the real run's token and
money totals within 2% against a provider with fixed outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from promptkit.estimate import estimate_run
from promptkit.evaluate import plan_eval, run_eval
from promptkit.project import Project
from promptkit.providers.fake import FakeProvider
from promptkit.runs import RunStore
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import register_model, write_reviews
from tests.helpers.run_store import db_rows


class NoCalls(FakeProvider):
    def _complete(self, requests):  # type: ignore[no-untyped-def]
        raise AssertionError("an estimate must not call the model")


def _close(estimated: float, real: float) -> bool:
    return abs(estimated - real) <= 0.02 * abs(real)


def test_estimate_matches_the_real_run_for_label_scoring(project: Path, tmp_path: Path) -> None:
    (project / "promptkit.yaml").write_text("prices:\n  house-model: {input: 3.0, output: 15.0}\n")
    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("sentiment"), model="fake:house-model",
                     data=write_reviews(tmp_path / "d.jsonl", 200))
    est = estimate_run(plan, NoCalls("house-model"))
    assert (est.price_in, est.price_out, est.out_basis) == (3.0, 15.0, "labels")
    run = run_eval(plan, FakeProvider("house-model"))
    real_in, real_out, real_cost = run.metric("tokens_in"), run.metric("tokens_out"), run.metric("cost_total")
    assert real_cost and real_cost > 0
    assert _close(est.tokens_in, real_in) and _close(est.tokens_out, real_out) and _close(est.cost, real_cost)
    assert _close(est.to_spend, real_cost)


def test_cli_estimate_calls_nothing_and_records_nothing(project: Path, tmp_path: Path) -> None:
    data = str(write_reviews(tmp_path / "d.jsonl", 50))
    out = run_cli_in_process(project, "eval", "sentiment", "-m", "fake:gpt-4o-mini", "--data", data, "--estimate")
    assert out.exit_code == 0, out.output
    assert not (project / ".promptkit" / "runs.db").exists() or db_rows(project / ".promptkit" / "runs.db",
                                                                        "SELECT COUNT(*) FROM runs") == [(0,)]
    tokens_in = int(re.search(r"tokens in:\s+([\d,]+)", out.output).group(1).replace(",", ""))  # type: ignore[union-attr]
    money = float(re.search(r"cost:\s+\$([\d.]+)", out.output).group(1))  # type: ignore[union-attr]
    assert run_cli_in_process(project, "eval", "sentiment", "-m", "fake:gpt-4o-mini", "--data", data).exit_code == 0
    record = RunStore(project / ".promptkit" / "runs.db").runs()[0]
    assert _close(tokens_in, record.metric("tokens_in") or 0) and _close(money, record.metric("cost_total") or 0)
    # Now everything is cached: nothing left to spend.
    again = run_cli_in_process(project, "eval", "sentiment", "-m", "fake:gpt-4o-mini", "--data", data, "--estimate")
    assert "(50 cached)" in again.output and "to spend:   $0.000000" in again.output


def test_generation_estimate_uses_observed_output_length(project: Path, tmp_path: Path) -> None:
    (project / "evals" / "gen.yaml").write_text(
        "prompt: sentiment\ntask: generation\nmetrics: [tokens, cost]\n"
        "dataset: {path: data/sentiment.jsonl, fields: {text: text}, target: label}\n")
    register_model(project, "fixed", reply="The answer is positive, quite clearly so.")
    proj = Project(project)
    data = write_reviews(tmp_path / "d.jsonl", 100)
    store = RunStore(tmp_path / "runs.db")

    def plan(limit: int | None = None):  # type: ignore[no-untyped-def]
        return plan_eval(proj, proj.library.resolve("sentiment"), suite=proj.suite("gen"), model="fixed", data=data,
                         limit=limit, overrides={"max_tokens": 40})

    from promptkit.models import resolve_model

    options = resolve_model("fixed", proj.models).options
    blind = estimate_run(plan(), NoCalls("gpt-4o-mini", **options), store=store)
    assert blind.out_basis == "max_tokens" and blind.tokens_out == 100 * 40  # an upper bound
    run_eval(plan(limit=5), FakeProvider("gpt-4o-mini", **options), store=store)
    est = estimate_run(plan(), NoCalls("gpt-4o-mini", **options), store=store)
    run = run_eval(plan(), FakeProvider("gpt-4o-mini", **options))
    assert est.out_basis == "observed"
    assert _close(est.tokens_out, run.metric("tokens_out") or 0) and _close(est.cost, run.metric("cost_total") or 0)


def test_max_cost_stops_before_the_budget_and_resumes(project: Path, tmp_path: Path) -> None:
    data = str(write_reviews(tmp_path / "d.jsonl", 200))
    args = ["eval", "sentiment", "-m", "fake:gpt-4o-mini", "--data", data, "--batch-size", "7"]
    budget = 0.0004  # about 45% of the run
    stopped = run_cli_in_process(project, *args, "--max-cost", str(budget))
    assert stopped.exit_code == 0, stopped.output
    assert "stopped before crossing --max-cost" in stopped.output
    store = RunStore(project / ".promptkit" / "runs.db")
    (record,) = store.runs()
    assert record.status == "interrupted"
    done = store.results(record.id)
    assert 50 < len(done) < 200
    spent = sum(r.cost for r in done)
    assert spent <= budget and record.extra["spent"] == pytest.approx(spent)
    # The budget is the run's: resuming under the same one does nothing more.
    same = run_cli_in_process(project, *args, "--max-cost", str(budget), "--resume")
    assert same.exit_code == 0 and "stopped before crossing" in same.output
    assert store.count_results(record.id) == len(done)
    resumed = run_cli_in_process(project, *args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    record = store.run(record.id)
    assert record.status == "finished" and store.count_results(record.id) == 200
    assert sum(r.cost for r in store.results(record.id)) > budget


@pytest.mark.model
def test_estimate_matches_the_real_model_tokens(project: Path, tmp_path: Path, embedded_provider) -> None:  # type: ignore[no-untyped-def]
    from promptkit.providers.factory import open_provider

    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("sentiment"), model="smollm2", limit=12)
    fresh = open_provider(plan.model)
    est = estimate_run(plan, fresh)
    assert fresh._model is None  # the tokenizer counts; the weights stay on disk
    run = run_eval(plan, embedded_provider)
    assert _close(est.tokens_in, run.metric("tokens_in") or 0) and _close(est.tokens_out, run.metric("tokens_out") or 0)


def test_a_provider_can_say_how_it_bills_output(project: Path, tmp_path: Path) -> None:
    class EchoScoring(FakeProvider):
        """Like an API that scores labels by echoed logprobs: prompt+label billed as input, no output."""

        def expected_tokens_out(self, request):  # type: ignore[no-untyped-def]
            return 0.0 if request.labels else None

        def _complete(self, requests):  # type: ignore[no-untyped-def]
            responses = super()._complete(requests)
            for r in responses:
                r.tokens_out = 0
            return responses

    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("sentiment"), model="fake:gpt-4o-mini",
                     data=write_reviews(tmp_path / "d.jsonl", 40))
    est = estimate_run(plan, EchoScoring("gpt-4o-mini"))
    run = run_eval(plan, EchoScoring("gpt-4o-mini"))
    assert est.tokens_out == 0 == run.metric("tokens_out")
    assert _close(est.cost, run.metric("cost_total") or 0)


def test_acceptance_3_openai_provider_against_a_fixed_output_server(project: Path) -> None:
    """Acceptance 3 over real HTTP: the openai provider against a local server with fixed outputs
    (tokens counted by the client with tiktoken, labels scored by echoed logprobs)."""
    from promptkit.providers.factory import open_provider
    from tests.helpers.fault_server import FaultServer

    (project / "promptkit.yaml").write_text("prices:\n  fixed: {input: 2.5, output: 10.0}\n")
    proj = Project(project)
    plan = plan_eval(proj, proj.library.resolve("sentiment"), model="openai:fixed", limit=40)
    with FaultServer(usage=False) as server:
        def provider():  # type: ignore[no-untyped-def]
            return open_provider("openai:fixed", proj, base_url=server.url, api_key="sk-test")

        est = estimate_run(plan, provider())
        requests_before = server.requests
        run = run_eval(plan, provider())
    assert requests_before == 0  # the estimate asked the server nothing
    real_in, real_out, real_cost = run.metric("tokens_in") or 0, run.metric("tokens_out") or 0, run.metric("cost_total") or 0
    assert real_cost > 0
    assert _close(est.tokens_in + est.tokens_out, real_in + real_out) and _close(est.cost, real_cost)
