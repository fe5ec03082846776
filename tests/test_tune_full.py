"""`--method full`: every weight trained, saved as a plain model folder, registered without an adapter,
resumable, evaluated and exported like the adapters. On a tiny random Llama (default run) and, under
`-m model`, a real step of the embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.projects import tune_job, tune_project
from tests.helpers.tiny_model import make_tiny_model


class Crash(Exception):
    pass


def _tiny_job(tmp_path: Path, **options: object):  # type: ignore[no-untyped-def]
    root = tune_project(tmp_path / "project", style="text")
    from tests.helpers.projects import NEG, POS

    tiny = make_tiny_model(tmp_path / "tiny", POS + NEG)
    settings = {"method": "full", "batch_size": 4, "max_steps": 3, "lr": 1e-3, "threads": 1, "base_model": str(tiny),
                **options}
    return root, tune_job(root, settings, name="review-full", eval_limit=4)


def test_full_fine_tune_resumes_saves_a_model_folder_registers_and_exports(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from promptkit.models import resolve_model
    from promptkit.tune.base import tuners
    from promptkit.tune.lora import has_checkpoint

    root, job = _tiny_job(tmp_path, checkpoint_every=1)
    base_weights = load_file(str(tmp_path / "tiny" / "model.safetensors"))

    def crash_after_first_step(event: object) -> None:
        if getattr(event, "step", 0) == 1 and getattr(event, "phase", "") == "train":
            raise Crash

    job.progress = crash_after_first_step
    with pytest.raises(Crash):
        tuners.get("lora")().run(job)
    assert has_checkpoint(job.out_dir)
    job.progress, job.resume = None, True
    result = tuners.get("lora")().run(job)
    metrics = result.manifest["metrics"]
    assert metrics["resumed_from_step"] == 1 and metrics["steps"] == 3 and metrics["method"] == "full"
    out = job.out_dir
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "adapter_config.json").exists() and not has_checkpoint(out)
    assert metrics["adapter_bytes"] == (out / "model.safetensors").stat().st_size
    trained = load_file(str(out / "model.safetensors"))
    changed = [k for k in base_weights if not (trained[k] == base_weights[k]).all()]
    assert "model.layers.0.mlp.down_proj.weight" in changed and "model.norm.weight" in changed  # every weight

    ref = resolve_model(job.name, job.project.models)  # a model of its own, not an adapter over the base
    assert ref.provider == "hf" and ref.model == str(out.resolve()) and "adapter" not in ref.options
    comparison = result.comparison
    assert comparison is not None and comparison.test.n == 4
    assert all(r.error is None for r in comparison.after.results)
    assert comparison.after.plan.settings().get("model") != comparison.before.plan.settings().get("model")

    exported = tmp_path / "exported"
    done = run_cli("tune", "export", job.name, "--merge", "--out", str(exported), cwd=root)
    assert done.returncode == 0, done.stderr
    assert (exported / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    info = json.loads((exported / "promptkit-export.json").read_text())
    assert info["peft_type"] == "FULL" and info["merged"] is True
    from promptkit.tune.run import evaluate_model

    run = evaluate_model(job.project, job.version, job.suite, f"hf:{exported}", limit=4)
    assert [r.scores for r in run.results] == [r.scores for r in comparison.after.results]


def test_overwrite_replaces_an_adapter_with_a_full_model_and_back(tmp_path: Path) -> None:
    """A folder that held a LoRA adapter and is overwritten by a full model (or the reverse) keeps no
    file of the other: a stale adapter_config.json would make the folder load as an adapter."""
    from promptkit.tune.base import tuners

    _, job = _tiny_job(tmp_path, method="lora", r=2, alpha=4, checkpoint_every=0)
    job.evaluate = False
    tuners.get("lora")().run(job)
    assert (job.out_dir / "adapter_config.json").is_file()
    job.options = {**job.options, "method": "full", "overwrite": True}
    tuners.get("lora")().run(job)
    assert (job.out_dir / "config.json").is_file() and not list(job.out_dir.glob("adapter_*"))
    job.options = {**job.options, "method": "lora"}
    tuners.get("lora")().run(job)
    assert (job.out_dir / "adapter_config.json").is_file() and not (job.out_dir / "model.safetensors").exists()


def test_full_cli_registers_and_reports_size_in_megabytes_for_large_models(tmp_path: Path) -> None:
    from promptkit.cli.tune import _size

    assert _size(45 * 1024) == "45 KB" and _size(540 * 2**20) == "540 MB"
    root = tune_project(tmp_path / "project", style="text")
    result = run_cli("tune", "review", "--force", "--method", "full", "--lr", "2", "--no-eval", cwd=root)
    assert result.returncode == 2 and "learning rate" in result.stderr, result.stderr


@pytest.mark.model
def test_full_fine_tune_step_on_the_embedded_model(tmp_path: Path) -> None:
    from promptkit.tune.base import tuners

    root = tune_project(tmp_path)
    job = tune_job(root, {"method": "full", "batch_size": 2, "max_steps": 2, "threads": 2, "checkpoint_every": 0},
                   name="review-full", eval_limit=2)
    job.trainset.rows = job.trainset.rows[:5]
    result = tuners.get("lora")().run(job)
    assert result.manifest["metrics"]["steps"] == 2 and (job.out_dir / "model.safetensors").is_file()
    comparison = result.comparison
    assert comparison is not None and all(r.error is None for r in comparison.after.results)
    assert [r.scores for r in comparison.before.results] != [r.scores for r in comparison.after.results]


def test_estimate_scales_lora_speed_by_the_methods_measured_ratio(tmp_path: Path) -> None:
    from promptkit.tune.base import tuners

    _, job = _tiny_job(tmp_path)
    full = tuners.get("lora")().estimate(job)
    job.options = {**job.options, "method": "lora"}
    lora = tuners.get("lora")().estimate(job)
    assert full.tokens == lora.tokens and full.seconds == pytest.approx(2 * lora.seconds)
    assert "x0.5 for full" in full.note


def test_a_tuned_models_identity_ignores_tunes_bookkeeping_files(tmp_path: Path) -> None:
    """tune rewrites manifest.json after its own eval: the same weights must keep their cache identity,
    while changed weights or configs must not."""
    from promptkit.providers.hf_convert import files_identity

    folder = tmp_path / "tuned"
    folder.mkdir()
    for name, text in (("config.json", "{}"), ("model.safetensors", "w"), ("adapter_config.json", "{}"),
                       ("adapter_model.safetensors", "a"), ("manifest.json", "{}")):
        (folder / name).write_text(text)
    before = (files_identity(str(folder), None), files_identity(str(tmp_path / "base.gguf"), folder))
    (folder / "manifest.json").write_text('{"comparison": {}}')
    (folder / "training.json").write_text("{}")
    assert (files_identity(str(folder), None), files_identity(str(tmp_path / "base.gguf"), folder)) == before
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "config.json").write_text('{"x": 1}')
    after = (files_identity(str(folder), None), files_identity(str(tmp_path / "base.gguf"), folder))
    assert after[0]["config"] != before[0]["config"] and after[1]["adapter"] != before[1]["adapter"]
