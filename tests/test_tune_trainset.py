"""Training rows are the eval's rendered prompts plus the target; overlaps with the eval split are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.errors import ConfigError
from promptkit.evaluate import build_request, plan_eval
from promptkit.project import Project
from tests.helpers.projects import ROOT, tune_project


@pytest.mark.parametrize("style", ["chat", "text"])
def test_training_row_equals_eval_render_up_to_target(tmp_path: Path, style: str) -> None:
    from promptkit.tune.trainset import build_trainset

    project = Project(tune_project(tmp_path, style=style))
    version = project.library.resolve("review@working")
    suite = project.suite("review")
    trainset = build_trainset(project, version, suite)
    assert len(trainset.rows) == 16 and trainset.manifest["split"] == "train"
    train_plan = plan_eval(project, version, suite, split="train")
    for example, row in zip(train_plan.examples, trainset.rows, strict=True):
        rendered = build_request(train_plan, example)  # exactly what an eval of this row sends
        record = row.record()
        if style == "chat":
            assert record["messages"][:-1] == rendered.messages
            assert record["messages"][-1] == {"role": "assistant", "content": example.target}
        else:
            assert record["prompt"] == rendered.text
            assert record["completion"] == version.spec.prefix + str(example.target)
    manifest_keys = {"prompt_hash", "dataset_hash", "rows", "targets", "eval_dataset_hash"}
    assert manifest_keys <= set(trainset.manifest)
    jsonl = trainset.write(tmp_path / "out")
    assert len(jsonl.read_text().splitlines()) == 16
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["prompt_hash"] == version.hash and manifest["targets"] == {"positive": 8, "negative": 8}
    assert manifest["trainset_hash"]


def test_overlap_with_eval_split_is_refused(tmp_path: Path) -> None:
    from promptkit.tune.trainset import build_trainset

    project = Project(tune_project(tmp_path, overlap=True))
    version = project.library.resolve("review@working")
    with pytest.raises(ConfigError, match=r"1 training row.*also appear in the eval split"):
        build_trainset(project, version, project.suite("review"))


def test_training_on_the_eval_split_is_refused(tmp_path: Path) -> None:
    from promptkit.tune.trainset import build_trainset

    project = Project(tune_project(tmp_path))
    version = project.library.resolve("review@working")
    with pytest.raises(ConfigError, match="training rows are the eval rows"):
        build_trainset(project, version, project.suite("review"), train_split="test")


def test_prepared_file_overlap_refused(tmp_path: Path) -> None:
    from promptkit.tune.trainset import build_trainset, check_prepared_overlap, eval_plan, load_trainset

    project = Project(tune_project(tmp_path))
    version = project.library.resolve("review@working")
    suite = project.suite("review")
    plan = eval_plan(project, version, suite)
    rows = build_trainset(project, version, suite).jsonl()
    leaked = build_request(plan, plan.examples[0]).messages
    rows += json.dumps({"messages": [*leaked, {"role": "assistant", "content": "positive"}]}) + "\n"
    path = tmp_path / "prepared.jsonl"
    path.write_text(rows)
    trainset = load_trainset(path)
    assert len(trainset.rows) == 17
    with pytest.raises(ConfigError, match="is eval example 1"):
        check_prepared_overlap(trainset, plan)
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(ConfigError, match="assistant"):
        load_trainset(path)


def test_shipped_chat_prompt_renders_messages() -> None:
    from promptkit.tune.trainset import build_trainset

    project = Project(ROOT)
    version = project.library.resolve("sentiment-chat@v1")
    trainset = build_trainset(project, version, project.suite("sentiment-chat"))
    messages = trainset.rows[0].record()["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[-1]["content"] in ("positive", "negative")


def test_holdout_and_order_are_seeded(tmp_path: Path) -> None:
    from promptkit.tune.lora import _order
    from promptkit.tune.trainset import build_trainset

    project = Project(tune_project(tmp_path))
    version = project.library.resolve("review@working")
    trainset = build_trainset(project, version, project.suite("review"))
    a, b = trainset.split(0.25, seed=1), trainset.split(0.25, seed=1)
    assert [r.id for r in a[1]] == [r.id for r in b[1]] and len(a[1]) == 4 and len(a[0]) == 12
    assert not {r.id for r in a[0]} & {r.id for r in a[1]}
    assert _order(10, 0, 0) == _order(10, 0, 0) and _order(10, 0, 0) != _order(10, 0, 1)


def test_epoch_batches_group_lengths_cover_every_row_once_and_are_seeded() -> None:
    import math

    from promptkit.tune.lora import epoch_batches

    lengths = [(i * 37) % 61 + 5 for i in range(1003)]
    batches = epoch_batches(lengths, 8, seed=0, epoch=0)
    assert len(batches) == math.ceil(1003 / 8)
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert batches == epoch_batches(lengths, 8, seed=0, epoch=0) != epoch_batches(lengths, 8, seed=0, epoch=1)
    padded = sum(8 * max(lengths[i] for i in b) for b in batches)
    shuffled = [list(range(1003))[i: i + 8] for i in range(0, 1003, 8)]
    assert padded < 0.8 * sum(8 * max(lengths[i] for i in b) for b in shuffled)  # much less padding
