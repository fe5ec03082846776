"""tune compare: methods trained on one split with one seed and budget, one table, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.projects import tune_project


def test_unknown_method_in_list_is_one_line(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    result = run_cli("tune", "compare", "review", "--methods", "lora,iaa3", cwd=root)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "did you mean 'ia3'" in result.stderr


@pytest.mark.model
def test_compare_two_methods_table_json_and_resume(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    args = ["tune", "compare", "review", "--methods", "lora,prompt-tuning", "--max-steps", "2", "--batch-size", "2",
            "--limit", "8", "--eval-limit", "4", "--threads", "1"]
    first = run_cli(*args, "--json", cwd=root)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["baseline"]["test_n"] == 4 and data["baseline"]["val_n"] >= 1
    assert [m["method"] for m in data["methods"]] == ["lora", "prompt-tuning"]
    for m in data["methods"]:
        assert m["steps"] == 2 and m["test_n"] == 4 and m["val_n"] == data["baseline"]["val_n"]
        assert 0 <= m["test_accuracy"] <= 1 and m["test_interval"][0] <= m["test_accuracy"] <= m["test_interval"][1]
        assert m["adapter_bytes"] > 0 and m["peak_rss_mb"] > 0 and m["tokens_per_s"] > 0 and not m["reused"]
        assert m["model"] == f"review-compare-{m['method']}"
        assert (root / ".promptkit" / "adapters" / m["model"] / "adapter_config.json").is_file()
    # same split, seed and budget: nothing retrains, the table shows the stored figures
    second = run_cli(*args, cwd=root, env={"COLUMNS": "200"})
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("reusing") == 2 and "training into" not in second.stderr
    for needle in ("prompt alone", "lora (reused)", "prompt-tuning (reused)", "McNemar"):
        assert needle in second.stdout, second.stdout
