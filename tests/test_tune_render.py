"""Training rows go through the version's render path: verbalizers are the targets learned, and a
calibration fitted for the base model is dropped (and said so) for the tuned model's eval."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.projects import tune_project


def _with_verbalizers_and_calibration(root: Path) -> None:
    prompt = root / "prompts" / "review" / "prompt.yaml"
    text = prompt.read_text().replace("labels: [negative, positive]\n", "labels: {negative: bad, positive: good}\n"
                                      "calibration: {positive: -0.5}\n")
    prompt.write_text(text)


def test_targets_are_the_verbalized_answers(tmp_path: Path) -> None:
    from promptkit.project import Project
    from promptkit.tune.trainset import build_trainset

    root = tune_project(tmp_path)
    _with_verbalizers_and_calibration(root)
    project = Project(root)
    version = project.library.resolve("review@working")
    trainset = build_trainset(project, version, project.suite("review"))
    assert {r.target for r in trainset.rows} == {"good", "bad"}
    assert trainset.rows[0].record()["messages"][-1]["content"] in ("good", "bad")


def test_calibration_is_dropped_for_the_adapter_with_a_note(tmp_path: Path) -> None:
    from promptkit.project import Project
    from promptkit.tune.run import adapter_version

    root = tune_project(tmp_path)
    project = Project(root)
    plain = project.library.resolve("review@working")
    assert adapter_version(plain) == (plain, None)
    _with_verbalizers_and_calibration(root)
    calibrated = Project(root).library.resolve("review@working")
    tuned, note = adapter_version(calibrated)
    assert tuned.spec.calibration is None and tuned.spec.verbalizers == calibrated.spec.verbalizers
    assert note and "positive -0.5" in note and "dropped" in note
    assert tuned.hash == calibrated.hash and calibrated.spec.calibration == {"positive": -0.5}
