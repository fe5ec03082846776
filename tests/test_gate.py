"""promptkit check / baseline: statistics, staleness, thresholds and reports, with the fake provider."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from promptkit.gate.baseline import dumps, load_baseline
from tests.helpers.cli import run_cli, run_cli_in_process
from tests.helpers.projects import toy_project, write_toy_prompt

FLIP_TWO = 'Review: {{ text | replace("great place #4.", "awful place #4.") | replace("great place #8.", "awful place #8.") }}'
FLIP_ALL = 'Review: {{ text | replace("great", "awful") }}'


# -- acceptance 2: noise passes, a real drop fails, absolute thresholds fail regardless ----------

def _check(root: Path, *args: str) -> tuple[int, dict]:
    result = run_cli_in_process(root, "check", "--no-store", "--json", str(root / "r.json"), *args)
    assert result.exit_code in (0, 1, 2), result.output
    return result.exit_code, json.loads((root / "r.json").read_text())


def test_flipping_two_of_200_passes_and_a_real_drop_fails(tmp_path: Path) -> None:
    root = toy_project(tmp_path)
    blessed = run_cli("baseline", "bless", "toy", "--no-store", cwd=root)
    assert blessed.returncode == 0, blessed.stderr
    baseline = load_baseline(root / "evals" / "baselines" / "toy.json")
    assert baseline is not None and len(baseline.outcomes) == 200 and baseline.metrics["accuracy"] == 1.0

    write_toy_prompt(root, FLIP_TWO)
    code, report = _check(root)
    acc = next(c for c in report["suites"][0]["checks"] if c["name"] == "accuracy vs baseline")
    assert code == 0 and acc["passed"] and acc["worse"] == 2
    # one-sided McNemar 0.25, Holm-adjusted over accuracy and F1
    assert acc["raw_p_value"] == 0.25 and acc["p_value"] == 0.5 and "not significant" in acc["message"]

    write_toy_prompt(root, FLIP_ALL)
    result = run_cli("check", "--no-store", "--json", "r.json", cwd=root)
    assert result.returncode == 1
    assert "accuracy dropped 50.0 pt" in result.stdout and "p=1.58e-30" in result.stdout and "raw 7.89e-31" in result.stdout
    assert "flipped #0" in result.stdout
    report = json.loads((root / "r.json").read_text())
    acc = next(c for c in report["suites"][0]["checks"] if c["name"] == "accuracy vs baseline")
    assert not acc["passed"] and acc["worse"] == 100 and acc["drop"] == pytest.approx(0.5)
    assert acc["high"] < 0 and acc["flipped"][0]["before"] == "positive" and acc["flipped"][0]["after"] == "negative"

    # a generous max_drop lets the same drop through
    suite = yaml.safe_load((root / "evals" / "toy.yaml").read_text())
    suite["thresholds"] = {"max_drop": {"accuracy": 0.6, "f1_macro": 0.7}}
    (root / "evals" / "toy.yaml").write_text(yaml.safe_dump(suite))
    assert _check(root)[0] == 0


@pytest.mark.parametrize("threshold", [{"max_tokens_per_example": 5}, {"max_latency_p95": 1e-12},
                                       {"min_accuracy": 1.0, "max_tokens_per_example": 9.5}])
def test_absolute_threshold_breach_fails_whatever_the_statistics(tmp_path: Path, threshold: dict) -> None:
    root = toy_project(tmp_path, n=40, thresholds=threshold)
    assert run_cli_in_process(root, "baseline", "bless", "toy", "--no-store").exit_code == 0
    code, report = _check(root)  # the prompt is unchanged: no drop at all
    suite = report["suites"][0]
    assert code == 1 and suite["status"] == "fail"
    failed = [c for c in suite["checks"] if not c["passed"]]
    assert len(failed) == 1 and failed[0]["kind"] == "max" and "above the maximum" in failed[0]["message"]
    assert all(c["passed"] for c in suite["checks"] if c["kind"] in ("baseline", "min"))


@pytest.mark.parametrize(("threshold", "metric"), [({"max_cost_per_example": 0.005}, "cost_per_example"),
                                                   ({"max_cost_per_run": 0.1}, "cost_total")])
def test_cost_thresholds(tmp_path: Path, threshold: dict, metric: str) -> None:
    from promptkit.gate.check import check_suite
    from promptkit.gate.run import Providers
    from promptkit.project import Project
    from promptkit.providers.fake import FakeProvider

    class Priced(FakeProvider):
        def _complete(self, requests):  # type: ignore[no-untyped-def]
            responses = super()._complete(requests)
            for r in responses:
                r.cost = 0.01
            return responses

    root = toy_project(tmp_path, n=20, thresholds=threshold)
    project = Project(root)
    result = check_suite(project, project.suite("toy"), None, Providers(lambda ref, project: Priced(ref.model, **ref.options)))
    assert result.status == "fail"
    assert [c.metric for c in result.failures] == [metric]


def test_no_baseline_passes_with_a_note_and_stale_baseline_is_reported(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=20)
    code, report = _check(root)
    assert code == 0 and report["suites"][0]["status"] == "no baseline"
    assert run_cli_in_process(root, "baseline", "bless", "toy", "--no-store").exit_code == 0
    data = root / "evals" / "data" / "toy.jsonl"
    data.write_text(data.read_text() + json.dumps({"text": "a great day.", "label": "positive", "split": "test"}) + "\n")
    result = run_cli_in_process(root, "check", "--no-store")
    assert result.exit_code == 2 and "stale baseline: dataset changed" in result.stdout
    # a model change is stale too
    assert run_cli_in_process(root, "baseline", "bless", "toy", "--no-store").exit_code == 0
    suite = yaml.safe_load((root / "evals" / "toy.yaml").read_text())
    suite["model"] = "fake:other"
    (root / "evals" / "toy.yaml").write_text(yaml.safe_dump(suite))
    result = run_cli_in_process(root, "check", "--no-store")
    assert result.exit_code == 2 and "model changed: baseline fake:toy, now fake:other" in result.stdout


def test_a_newer_published_version_makes_the_baseline_stale(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=20)
    assert run_cli_in_process(root, "prompt", "new-version", "toy", "-m", "v1").exit_code == 0
    assert run_cli_in_process(root, "baseline", "bless", "prompts/toy", "--no-store").exit_code == 0
    assert json.loads((root / "evals/baselines/toy.json").read_text())["prompt"] == "toy@v1"
    write_toy_prompt(root, FLIP_TWO)  # editing the working copy is what check checks: not stale
    assert _check(root)[0] == 0
    assert run_cli_in_process(root, "prompt", "new-version", "toy", "-m", "v2").exit_code == 0
    result = run_cli_in_process(root, "check", "--no-store")
    assert result.exit_code == 2 and "current version is toy@v2" in result.stdout


def test_baseline_file_is_sorted_and_one_line_per_example(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=10)
    assert run_cli_in_process(root, "baseline", "bless", "toy", "--no-store").exit_code == 0
    text = (root / "evals/baselines/toy.json").read_text()
    data = json.loads(text)
    assert list(data["outcomes"]) == sorted(data["outcomes"])
    assert len(text.splitlines()) < 60
    baseline = load_baseline(root / "evals/baselines/toy.json")
    assert baseline is not None and dumps(baseline) == text
    (root / "evals/baselines/toy.json").write_text("{not json")
    result = run_cli_in_process(root, "check", "--no-store")
    assert result.exit_code == 2 and "baseline is not valid JSON" in result.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=10)
    result = run_cli_in_process(root, "check", "nosuch")
    assert result.exit_code == 2 and "unknown prompt 'nosuch'" in result.stderr
    assert run_cli_in_process(root, "check", "--alpha", "3").exit_code == 2
    suite = yaml.safe_load((root / "evals" / "toy.yaml").read_text())
    suite["thresholds"] = {"min_acuracy": 0.9}
    (root / "evals" / "toy.yaml").write_text(yaml.safe_dump(suite))
    result = run_cli_in_process(root, "check")
    assert result.exit_code == 2 and "min_acuracy" in result.stderr and "min_accuracy" in result.stderr


def test_repeat_reports_flaky_examples(tmp_path: Path) -> None:
    from promptkit.gate.check import check_suite
    from promptkit.gate.run import Providers
    from promptkit.project import Project
    from promptkit.providers import Provider
    from promptkit.results import Response

    class Coin(Provider):  # right on even seeds for every third example: flaky
        name = "fake"

        def _complete(self, requests):  # type: ignore[no-untyped-def]
            out = []
            for r in requests:
                flip = int(r.id, 16) % 3 == 0 and (r.seed or 0) % 2 == 1
                pos = ("great" in (r.text or "")) != flip
                out.append(Response(output="positive" if pos else "negative", tokens_in=1))
            return out

    root = toy_project(tmp_path, n=30)
    project = Project(root)
    suite = project.suite("toy")
    result = check_suite(project, suite, None, Providers(lambda ref, project: Coin(ref.model)), repeat=2)
    assert result.status == "no baseline" and result.repeat == 2
    assert result.flaky and all(f["correct"] == 0.5 for f in result.flaky)


# -- acceptance 3: JUnit XML parsed by a JUnit parser; Markdown in $GITHUB_STEP_SUMMARY ------------

def test_junit_and_markdown_reports(tmp_path: Path) -> None:
    from junitparser import Failure, JUnitXml

    root = toy_project(tmp_path, n=40, thresholds={"max_tokens_per_example": 100})
    assert run_cli("baseline", "bless", "toy", "--no-store", cwd=root).returncode == 0
    write_toy_prompt(root, FLIP_ALL)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    result = run_cli("check", "--no-store", "--junit", "out/junit.xml", "--markdown", "check.md", cwd=root,
                     env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 1, result.stdout + result.stderr
    xml = JUnitXml.fromfile(str(root / "out/junit.xml"))
    suites = list(xml)
    assert [s.name for s in suites] == ["promptkit.toy"]
    cases = {c.name: c for c in suites[0]}
    assert set(cases) == {"max tokens_per_example", "accuracy vs baseline", "f1_macro vs baseline"}
    assert cases["max tokens_per_example"].is_passed
    failure = cases["accuracy vs baseline"].result[0]
    assert isinstance(failure, Failure) and "p=" in failure.message and "dropped 50.0 pt" in failure.message
    assert "flipped #0" in failure.text
    assert suites[0].failures == 2 and suites[0].tests == 3
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "## promptkit check: ❌ fail" in text
    assert "| ❌ | accuracy vs baseline | 100.0% | 50.0% |" in text and "exact McNemar" in text
    assert (root / "check.md").read_text() in text


def test_markdown_not_written_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = toy_project(tmp_path, n=10)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert run_cli_in_process(root, "check", "--no-store").exit_code == 0
    assert not list(root.rglob("*.md"))


# -- --changed-since -------------------------------------------------------------------------

def test_changed_since_selects_suites_whose_inputs_changed(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=10)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    code, report = _check(root, "--changed-since", "HEAD")
    assert code == 0 and report["suites"] == [] and report["skipped"] == ["toy"]
    write_toy_prompt(root, FLIP_TWO)
    code, report = _check(root, "--changed-since", "HEAD")
    assert [s["suite"] for s in report["suites"]] == ["toy"]
    result = run_cli_in_process(root, "check", "--changed-since", "nosuchref")
    assert result.exit_code == 2 and "nosuchref" in result.stderr


def test_baseline_show_and_checking_a_published_version(tmp_path: Path) -> None:
    root = toy_project(tmp_path, n=20)  # 10 of 20 flipped: significant after Holm over accuracy and F1
    assert "toy: no baseline" in run_cli_in_process(root, "baseline", "show").stdout
    assert run_cli_in_process(root, "prompt", "new-version", "toy", "-m", "v1").exit_code == 0
    assert run_cli_in_process(root, "baseline", "bless", "toy@v1", "--no-store").exit_code == 0
    assert "toy: toy@v1" in run_cli_in_process(root, "baseline", "show").stdout
    write_toy_prompt(root, FLIP_ALL)
    code, report = _check(root, "toy@v1")  # checks v1 itself, not the bad working copy
    assert code == 0 and report["suites"][0]["prompt"] == "toy@v1"
    assert _check(root, "toy")[0] == 1
