"""Preference training: file checks (no model) and a real DPO run whose held-out preferences move."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.projects import NEG, POS, tune_project


def preference_file(path: Path) -> Path:
    """Pairs written by the pairwise judge's writer (`promptkit eval A B --judge`): run A answered with the
    right label, run B with the wrong one, and the judge preferred A on every example."""
    from promptkit.judges.pairwise import Pair, PairwiseResult, write_preferences

    pairs = []
    for i, (p, n) in enumerate(zip(POS, NEG, strict=True)):
        for j, (text, good, bad) in enumerate(((p, "positive", "negative"), (n, "negative", "positive"))):
            prompt = f"Classify the sentiment of the review. Answer positive or negative.\n{text}"
            pairs.append(Pair(f"e{i}-{j}", 2 * i + j, prompt, good, bad, "a"))
    write_preferences(PairwiseResult("right", "wrong", "judge", pairs), path)
    return path


@pytest.mark.parametrize("line, needle", [
    ("not json", "not JSON"),
    ('{"prompt": "p", "chosen": "a"}', "'rejected'"),
    ('{"prompt": "p", "chosen": "a", "rejected": "a"}', "same text"),
])
def test_bad_preference_file_is_one_line_naming_the_line(tmp_path: Path, line: str, needle: str) -> None:
    root = tune_project(tmp_path)
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n' + line + "\n")
    result = run_cli("tune", "review", "--force", "--method", "dpo", "--data", str(prefs), "--no-eval", cwd=root)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{prefs}:2" in result.stderr and needle in result.stderr


def test_dpo_without_preference_file_is_refused(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    result = run_cli("tune", "review", "--force", "--method", "dpo", "--no-eval", cwd=root)
    assert result.returncode == 2 and "--data" in result.stderr


def test_dpo_loss_rewards_the_chosen_answer() -> None:
    import torch

    from promptkit.tune.dpo import dpo_loss

    zero = torch.zeros(1)
    assert float(dpo_loss(zero, zero, zero, zero, 0.1)) == pytest.approx(0.6931, abs=1e-4)  # log 2: no preference
    assert float(dpo_loss(torch.tensor([1.0]), torch.tensor([-1.0]), zero, zero, 0.5)) < 0.6931


@pytest.mark.model
def test_dpo_moves_held_out_preferences_the_expected_way(tmp_path: Path) -> None:
    from promptkit.models import resolve_model

    root = tune_project(tmp_path)
    prefs = preference_file(tmp_path / "prefs.jsonl")
    result = run_cli("tune", "review", "--force", "--method", "dpo", "--data", str(prefs), "--no-eval",
                     "--max-steps", "5", "--batch-size", "4", "--lr", "5e-3", "--r", "4", "--threads", "1", cwd=root)
    assert result.returncode == 0, result.stderr
    out = root / ".promptkit" / "adapters" / "review-dpo"
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    assert metrics["steps"] == 5 and metrics["held_out_pairs"] == 5
    assert metrics["held_out_margin_after"] > metrics["held_out_margin_before"], metrics
    assert "held-out pairs: mean log-ratio" in result.stderr
    from promptkit.project import Project

    assert resolve_model("review-dpo", Project(root).models).options["adapter"] == str(out.resolve())


def test_hosted_dpo_uploads_api_format_and_registers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.models import resolve_model
    from promptkit.tune.hosted import OpenAITuner
    from tests.helpers.finetune_server import FineTuneServer
    from tests.helpers.projects import tune_job

    prefs = preference_file(tmp_path / "prefs.jsonl")
    with FineTuneServer() as double:
        monkeypatch.setenv("OPENAI_BASE_URL", double.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        job = tune_job(tune_project(tmp_path / "p"), {"method": "dpo", "preferences": str(prefs), "beta": 0.2,
                                                       "poll_interval": 0.01}, name="review-dpo", evaluate=False)
        estimate = OpenAITuner().estimate(job)
        assert estimate.examples == 24 and estimate.tokens > 24 * 10 and estimate.cost
        result = OpenAITuner().run(job)
        posted = next(iter(double.state.jobs.values()))
        assert posted["method"]["type"] == "dpo" and posted["hyperparameters"]["beta"] == 0.2
        assert posted["validation_file"]  # 24 pairs: a few held out
        first = json.loads(double.state.contents[posted["training_file"]].decode().splitlines()[0])
        assert first["input"]["messages"][-1]["role"] == "user"
        assert first["preferred_output"][0]["content"] != first["non_preferred_output"][0]["content"]
    assert result.manifest["method"] == "dpo"
    assert resolve_model("review-dpo", job.project.models).model == result.manifest["fine_tuned_model"]


def test_hosted_dpo_rules_refuse_a_small_file_in_one_line(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"prompt": f"p{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(3)))
    result = run_cli("tune", "review", "--force", "--backend", "openai", "--method", "dpo", "--data", str(prefs),
                     "--yes", "--no-eval", cwd=root, env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9"})
    assert result.returncode == 2, result.stderr
    assert "at least 10" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr


def test_preference_rules() -> None:
    from promptkit.tune.openai_rules import preference_record, validate_preferences

    good = [preference_record(f"p{i}", "yes", "no") for i in range(10)]
    assert validate_preferences(good, count=len) == []
    bad = [*good, {"input": {"messages": [{"role": "assistant", "content": "x"}]},
                   "preferred_output": [{"role": "assistant", "content": "a"}],
                   "non_preferred_output": [{"role": "user", "content": "b"}]}]
    messages = [str(p) for p in validate_preferences(bad, count=len)]
    assert any("end with a user message" in m for m in messages)
    assert any("non_preferred_output must hold exactly one assistant message" in m for m in messages)
