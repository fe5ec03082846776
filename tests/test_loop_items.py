"""Issue 11's smaller items around the loop: which runs `status` judges, tune's progress lines and
alpha, baseline staleness and display, the Ctrl-C hint, `prompt list` with a broken version, and
`runs compare` across datasets. Each test fails on the code before the fix."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

from tests.helpers.cli import run_cli, start_cli
from tests.helpers.projects import NEG, POS, tune_project
from tests.helpers.tiny_model import make_tiny_model

ENV = {"COLUMNS": "200"}


def _fake_suite(root: Path, model: str = "fake:x") -> None:
    suite = root / "evals" / "review.yaml"
    suite.write_text(suite.read_text().replace("model: smollm2", f"model: {model}"))


def _publish(root: Path, *instructions: str) -> None:
    prompt = root / "prompts" / "review" / "prompt.yaml"
    original = re.sub(r"  instruction: .*\n", "", prompt.read_text())
    for text in instructions:
        prompt.write_text(original.replace("slots:\n", f"slots:\n  instruction: {text}\n"))
        result = run_cli("prompt", "new-version", "review", "-m", text, cwd=root)
        assert result.returncode == 0, result.stderr


# -- the hinge: status sees the runs `eval` records -------------------------------------------------

def test_status_sees_runs_recorded_by_eval(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    _fake_suite(root)
    _publish(root, "Classify the sentiment of the review.", "Say whether the review is positive or negative.")
    result = run_cli("eval", "review@v1", "review@v2", cwd=root, env=ENV)
    assert result.returncode == 0, result.stderr
    out = run_cli("status", "review", cwd=root, env=ENV).stdout
    assert "no finished runs" not in out, out
    assert re.search(r"^\s*v1 .*%", out, re.M) and re.search(r"^\s*v2 .*%", out, re.M), out
    assert "needs 4" in out and "model fake:x" in out


def test_status_judges_the_suites_model_and_points_at_others(tmp_path: Path) -> None:
    root = tune_project(tmp_path)  # the suite's model is smollm2
    _publish(root, "Classify the sentiment of the review.")
    result = run_cli("eval", "review@v1", "-m", "fake:x", cwd=root, env=ENV)
    assert result.returncode == 0, result.stderr
    out = run_cli("status", "review", "--no-estimate", cwd=root, env=ENV).stdout
    assert "no finished runs" in out and "model smollm2" in out and "fake:x (1 version)" in out, out
    out = run_cli("status", "review", "--model", "fake:x", "--no-estimate", cwd=root, env=ENV).stdout
    assert re.search(r"^\s*v1 .*%", out, re.M), out


def test_same_model_resolves_aliases_and_keeps_tuned_runs_out(tmp_path: Path) -> None:
    from promptkit.models import ModelRegistry, resolve_model
    from promptkit.tune.plateau import same_model

    registry = ModelRegistry(tmp_path / "models.yaml")
    registry.add("review-lora", "hf", "/models/base", adapter="/adapters/review", backend="lora")
    registry.add("plain", "fake", "x")
    target = resolve_model("smollm2")
    embedded = target.model
    assert same_model({"model": "smollm2", "provider": "hf", "base_model": embedded}, target, registry)
    assert same_model({"model": "smollm2-135m-instruct", "provider": "hf", "base_model": embedded}, target, registry)
    assert same_model({"model": "smollm2", "base_model": "smollm2"}, target, registry)  # an older run's settings
    assert not same_model({"model": "smollm2", "provider": "hf", "base_model": embedded,
                           "adapter": "/adapters/review"}, target, registry)
    assert not same_model({"model": "fake:x", "provider": "fake", "base_model": "x"}, target, registry)
    fake = resolve_model("fake:x")
    assert same_model({"model": "plain", "provider": "fake", "base_model": "x"}, fake, registry)
    assert not same_model({"model": "review-lora", "provider": "hf", "base_model": "/models/base"},
                          resolve_model("hf:/models/base"), registry)


# -- tune ---------------------------------------------------------------------------------------

def test_tune_reports_one_epoch_for_max_steps(tmp_path: Path) -> None:
    root = tune_project(tmp_path, style="text")
    tiny = make_tiny_model(tmp_path / "tiny", POS + NEG)
    result = run_cli("tune", "review", "--force", "--backend", "lora", "--base-model", str(tiny), "--max-steps", "3",
                     "--batch-size", "2", "--limit", "12", "--no-eval", "--threads", "1", cwd=root, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "epoch 1 step 3/3" in result.stderr and "epoch 2" not in result.stderr, result.stderr
    assert "trained 3 step(s) in 1 epoch(s)" in result.stderr
    assert "Warning" not in result.stderr, result.stderr


def test_one_significance_level_everywhere() -> None:
    from types import SimpleNamespace

    from promptkit.cli.tune import comparison_table
    from promptkit.gate.thresholds import Thresholds
    from promptkit.stats import ALPHA, McNemar

    assert ALPHA == 0.05 == Thresholds().alpha
    test = McNemar(100, 2, 9, 0.03)  # significant at 0.05, not at 0.01
    assert test.significant()
    run = SimpleNamespace(plan=SimpleNamespace(version=SimpleNamespace(ref="review@v1")), results=[None] * 100)
    comparison = SimpleNamespace(test=test, before=run, after=run, metric="accuracy", rows=lambda: [])
    caption = str(comparison_table(comparison).caption)
    assert "(significant at 0.05)" in caption, caption


# -- baselines ----------------------------------------------------------------------------------

def test_working_copy_baseline_goes_stale_when_a_version_is_published(tmp_path: Path) -> None:
    root = tune_project(tmp_path, style="text")
    _fake_suite(root)
    result = run_cli("baseline", "bless", "review@working", cwd=root, env=ENV)
    assert result.returncode == 0, result.stderr
    assert run_cli("check", cwd=root, env=ENV).returncode == 0
    # publishing the blessed working copy unchanged keeps the baseline valid
    assert run_cli("prompt", "new-version", "review", "-m", "as blessed", cwd=root).returncode == 0
    assert run_cli("check", cwd=root, env=ENV).returncode == 0
    time.sleep(1.1)  # the next version is published in a later second than the blessing
    _publish(root, "Tell whether this review is positive or negative.")
    result = run_cli("check", cwd=root, env=ENV)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "STALE" in result.stdout and "review@v2" in result.stdout and "published" in result.stdout
    assert "promptkit baseline bless review" in result.stdout, result.stdout


def test_stale_published_baseline_says_how_to_rebless(tmp_path: Path) -> None:
    root = tune_project(tmp_path, style="text")
    _fake_suite(root)
    _publish(root, "Classify the sentiment of the review.")
    assert run_cli("baseline", "bless", "review", cwd=root).returncode == 0
    _publish(root, "Tell whether this review is positive or negative.")
    result = run_cli("check", cwd=root, env=ENV)
    assert result.returncode == 2 and "STALE" in result.stdout
    assert "re-bless the baseline: 'promptkit baseline bless review'" in result.stdout, result.stdout


def test_baseline_show_never_prints_an_empty_field(tmp_path: Path) -> None:
    root = tune_project(tmp_path, style="text")
    baseline = {"format": 1, "suite": "review", "prompt": "review@v1", "prompt_hash": "abc", "model": "fake:x",
                "dataset": "evals/data/reviews.jsonl", "dataset_hash": "d", "split": "test", "suite_hash": "s",
                "repeat": 1, "blessed": "2026-12-02T10:00:00+00:00", "metrics": {"exact_match": 0.8, "rouge_l": 0.75},
                "outcomes": {"a": {"correct": 1}}}
    (root / "evals" / "baselines").mkdir()
    (root / "evals" / "baselines" / "review.json").write_text(json.dumps(baseline))
    out = run_cli("baseline", "show", cwd=root, env=ENV).stdout
    assert ", ," not in out and "exact_match 0.8" in out and "1 examples, exact_match" in out, out


# -- eval, prompt list, runs compare -----------------------------------------------------------------

def test_ctrl_c_names_the_run_to_resume(tmp_path: Path) -> None:
    from tests.helpers.projects import register_model, write_reviews
    from tests.helpers.run_store import db_rows

    root = tune_project(tmp_path / "p", style="text")
    data = write_reviews(tmp_path / "reviews.jsonl", 400)
    register_model(root, "slowfake", delay=0.01, batch_size=5)
    proc = start_cli("eval", "review", "-m", "slowfake", "--data", str(data), cwd=root)
    db = root / ".promptkit" / "runs.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if db.is_file() and db_rows(db, "SELECT COUNT(*) FROM results")[0][0] >= 10:
                break
        except Exception:  # noqa: BLE001 - the schema may not exist yet
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    (run_id,) = [row[0] for row in db_rows(db, "SELECT id FROM runs")]
    assert proc.returncode == 130, err
    assert f"rerun with --resume {run_id}" in err, err


def test_prompt_list_survives_a_hand_edited_version(tmp_path: Path) -> None:
    root = tune_project(tmp_path, style="text")
    _publish(root, "Classify the sentiment of the review.", "Tell whether this review is positive or negative.")
    other = root / "prompts" / "other"
    other.mkdir()
    (other / "prompt.yaml").write_text((root / "prompts" / "review" / "prompt.yaml").read_text())
    assert run_cli("prompt", "new-version", "other", "-m", "first", cwd=root).returncode == 0
    v1 = root / "prompts" / "review" / "versions" / "v1.yaml"
    v1.write_text(v1.read_text().replace("Classify the sentiment", "Classify the mood"))
    result = run_cli("prompt", "list", cwd=root, env=ENV)
    assert result.returncode == 2, result.stderr  # a broken input file, named on one error line
    assert "other" in result.stdout and "v1:BROKEN" in result.stdout and "v2:" in result.stdout, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "v1.yaml" in line and "was edited" in line, result.stderr


def test_runs_compare_warns_across_datasets(tmp_path: Path) -> None:
    from tests.helpers.projects import write_reviews
    from tests.helpers.run_store import db_rows

    root = tune_project(tmp_path / "p", style="text")
    for name, n in (("a.jsonl", 10), ("b.jsonl", 12)):
        data = write_reviews(tmp_path / name, n)
        data.write_text(data.read_text().replace("Review number", f"In {name}, review"))
        result = run_cli("eval", "review", "-m", "fake:x", "--data", str(tmp_path / name), cwd=root)
        assert result.returncode == 0, result.stderr
    ids = [row[0] for row in db_rows(root / ".promptkit" / "runs.db", "SELECT id FROM runs ORDER BY created")]
    result = run_cli("runs", "compare", *ids, cwd=root, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "warning: the runs scored different data" in result.stderr, result.stderr
    assert "no example is shared" in result.stderr
