"""A real (tiny) LoRA run on the embedded model: checkpoint, resume, save, register, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli, start_cli
from tests.helpers.projects import tune_job, tune_project

pytestmark = pytest.mark.model


class Crash(Exception):
    pass


def test_lora_step_resume_register_and_eval(tmp_path: Path) -> None:
    from promptkit.models import resolve_model
    from promptkit.runs import RunStore
    from promptkit.tune.base import tuners
    from promptkit.tune.lora import has_checkpoint

    root = tune_project(tmp_path)
    events: list[object] = []

    def crash_after_first_step(event: object) -> None:
        events.append(event)
        if getattr(event, "step", 0) == 1 and getattr(event, "phase", "") == "train":
            raise Crash  # as if the process were killed right after the step-1 checkpoint

    options = {"batch_size": 2, "max_steps": 2, "checkpoint_every": 1, "r": 4, "alpha": 8, "threads": 2}
    job = tune_job(root, options, eval_limit=2, progress=crash_after_first_step)
    job.trainset.rows = job.trainset.rows[:6]
    tuner = tuners.get("lora")()
    estimate = tuner.estimate(job)
    assert estimate.examples == 6 and estimate.tokens > 6 * 10 and estimate.seconds and estimate.cost == 0
    with pytest.raises(Crash):
        tuner.run(job)
    assert has_checkpoint(job.out_dir)

    job.progress = events.append
    job.resume = True
    result = tuner.run(job)
    metrics = result.manifest["metrics"]
    assert metrics["resumed_from_step"] == 1 and metrics["steps"] == 2
    assert metrics["val_rows"] == 1 and metrics["history"][0]["val_loss"] is not None
    assert not has_checkpoint(job.out_dir)
    assert (job.out_dir / "adapter_config.json").is_file() and (job.out_dir / "adapter_model.safetensors").is_file()
    manifest = json.loads((job.out_dir / "manifest.json").read_text())
    assert manifest["base_model"] == "smollm2" and manifest["prompt_hash"] == job.version.hash
    assert manifest["dataset_hash"] and manifest["hyperparameters"]["r"] == 4 and manifest["duration_s"] > 0
    assert json.loads((job.out_dir / "adapter_config.json").read_text())["r"] == 4

    ref = resolve_model(job.name, job.project.models)
    assert ref.provider == "hf" and ref.options["adapter"] == str(job.out_dir.resolve())

    comparison = result.comparison
    assert comparison is not None and comparison.test.n == 2
    after = RunStore(job.project.runs_path).run(comparison.after.run_id)
    assert after.settings["adapter"] == str(job.out_dir.resolve()) and after.settings["base_model"] == "smollm2"
    shown = run_cli("runs", "show", comparison.after.run_id, cwd=root, env={"COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    for needle in ("prompt: review@working", f"prompt_hash: {job.version.hash}", "dataset_hash:", "base_model: smollm2",
                   f"adapter: {job.out_dir.resolve()}", "model: review-tuned"):
        assert needle in shown.stdout, (needle, shown.stdout)

    _serve_adapter(root, job.name)


def _serve_adapter(root: Path, name: str) -> None:
    """`promptkit serve --model <registered adapter>` answers over real HTTP."""
    import urllib.request

    from tests.helpers.serving import serving

    with serving("--model", name, cwd=root) as served:
        url = served.url
        body = json.dumps({"model": name, "max_tokens": 3,
                           "messages": [{"role": "user", "content": "Great food!"}]}).encode()
        request = urllib.request.Request(url + "/chat/completions" if url.endswith("/v1") else url + "/v1/chat/completions",
                                         data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        assert answer["model"] == name and answer["choices"][0]["message"]["role"] == "assistant"


def test_a_damaged_or_planted_checkpoint_is_one_error_before_any_step(tmp_path: Path) -> None:
    """--resume loads tensors and plain data only: a truncated file, a pickle that would run code
    and a state.json with NaN are each one error naming the checkpoint, and nothing runs."""
    import pickle
    import shutil

    import torch

    from promptkit.errors import ConfigError
    from promptkit.tune.base import tuners
    from promptkit.tune.lora import CHECKPOINT

    root = tune_project(tmp_path)

    def crash_after_first_step(event: object) -> None:
        if getattr(event, "step", 0) == 1 and getattr(event, "phase", "") == "train":
            raise Crash

    options = {"batch_size": 2, "max_steps": 2, "checkpoint_every": 1, "r": 2, "alpha": 4, "threads": 2}
    job = tune_job(root, options, eval_limit=2, progress=crash_after_first_step)
    job.trainset.rows = job.trainset.rows[:4]
    tuner = tuners.get("lora")()
    with pytest.raises(Crash):
        tuner.run(job)
    checkpoint = job.out_dir / CHECKPOINT
    good = tmp_path / "good-checkpoint"
    shutil.copytree(checkpoint, good)
    planted = tmp_path / "planted"

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (planted,))

    def truncate() -> None:
        data = (checkpoint / "state.pt").read_bytes()
        (checkpoint / "state.pt").write_bytes(data[: len(data) // 2])

    def plant() -> None:
        torch.save({"adapter": {}, "optimizer": Payload(), "scheduler": {}, "rng": torch.get_rng_state()},
                   checkpoint / "state.pt", pickle_protocol=pickle.HIGHEST_PROTOCOL)

    def nan_step() -> None:
        state = json.loads((checkpoint / "state.json").read_text())
        (checkpoint / "state.json").write_text(json.dumps({**state, "step": float("nan")}))

    job.progress, job.resume = None, True
    for damage in (truncate, plant, nan_step):
        shutil.rmtree(checkpoint)
        shutil.copytree(good, checkpoint)
        damage()
        with pytest.raises(ConfigError, match="checkpoint cannot be resumed") as caught:
            tuner.run(job)
        assert caught.value.where == str(checkpoint), damage.__name__
    assert not planted.exists()


def test_sigkilled_tune_resumes_from_checkpoint(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    root = tune_project(tmp_path)
    args = ["tune", "review", "--backend", "lora", "--force", "--no-eval", "--limit", "8", "--batch-size", "2",
            "--max-steps", "3", "--checkpoint-every", "1", "--r", "2", "--threads", "1"]
    out = root / ".promptkit" / "adapters" / "review-lora"
    proc = start_cli(*args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (out / "checkpoint" / "state.json").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint" / "state.json").is_file() and not (out / "manifest.json").exists()
    resumed = run_cli(*args, "--resume", cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    assert metrics["resumed_from_step"] >= 1 and metrics["steps"] == 3
