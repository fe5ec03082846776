"""Tuning methods: config validation (unit) and a real 2-step training per method on the embedded model,
whose adapter is registered and evaluated through the hf provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.errors import ConfigError
from promptkit.tune.lora import LoraSettings
from promptkit.tune.methods import METHODS, qlora_available, validate
from tests.helpers.cli import run_cli
from tests.helpers.projects import tune_job, tune_project


@pytest.mark.parametrize("changes, needle", [
    ({"method": "lorra"}, "did you mean 'lora'"),
    ({"r": 0}, "rank"),
    ({"r": 2.5}, "rank"),
    ({"dropout": 1.0}, "dropout"),
    ({"target_modules": []}, "target modules"),
    ({"method": "prompt-tuning", "virtual_tokens": 0}, "virtual tokens"),
    ({"method": "prefix-tuning", "virtual_tokens": 9999}, "512"),
    ({"lr": 2.0}, "learning rate"),
    ({"batch_size": 0}, "batch size"),
    ({"warmup": 1.5}, "warm-up"),
])
def test_invalid_settings_are_one_config_error(changes: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        validate(LoraSettings(**changes))


def test_each_method_has_a_default_lr_and_valid_defaults() -> None:
    for name, method in METHODS.items():
        settings = LoraSettings(method=name)
        assert validate(settings) is method
        assert settings.learning_rate() == method.default_lr
    assert LoraSettings(lr=1e-3).learning_rate() == 1e-3
    assert {m for m, spec in METHODS.items() if not spec.mergeable} == {"prompt-tuning", "prefix-tuning"}


def test_cli_rejects_unknown_method_in_one_line(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    result = run_cli("tune", "review", "--force", "--method", "lorra", "--no-eval", cwd=root)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "did you mean 'lora'" in result.stderr


@pytest.mark.model
@pytest.mark.parametrize("method", ["lora", "ia3", "prompt-tuning", "prefix-tuning", "qlora"])
def test_method_trains_saves_registers_and_evaluates(tmp_path: Path, method: str) -> None:
    from promptkit.models import resolve_model
    from promptkit.tune.base import tuners

    if method == "qlora" and not qlora_available():
        pytest.skip("qlora needs bitsandbytes")
    root = tune_project(tmp_path)
    options = {"method": method, "batch_size": 2, "max_steps": 2, "r": 2, "alpha": 4, "threads": 1,
               "virtual_tokens": 4, "checkpoint_every": 0}
    job = tune_job(root, options, name=f"review-{method}", eval_limit=2)
    job.trainset.rows = job.trainset.rows[:5]
    result = tuners.get("lora")().run(job)
    manifest = json.loads((job.out_dir / "manifest.json").read_text())
    assert manifest["method"] == method and manifest["metrics"]["steps"] == 2
    assert manifest["metrics"]["adapter_bytes"] > 0 and manifest["metrics"]["peak_rss_mb"] > 0
    config = json.loads((job.out_dir / "adapter_config.json").read_text())
    expected = {"lora": "LORA", "qlora": "LORA", "ia3": "IA3", "prompt-tuning": "PROMPT_TUNING",
                "prefix-tuning": "PREFIX_TUNING"}[method]
    assert config["peft_type"] == expected
    assert resolve_model(job.name, job.project.models).options["adapter"] == str(job.out_dir.resolve())
    comparison = result.comparison
    assert comparison is not None and comparison.test.n == 2
    assert all(r.error is None for r in comparison.after.results), [r.error for r in comparison.after.results]
    # the adapter is applied at eval time (soft prompts too: their virtual tokens bypass the fast path)
    assert [r.scores for r in comparison.before.results] != [r.scores for r in comparison.after.results]
