"""Hostile datasets and suite files through the real CLI: each is exit 2 with one line naming the file
and place, never a traceback (exit 3), a silent wrong score or a false refusal of good data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import cli_env, run_cli
from tests.helpers.projects import copy_project


def cli(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=project, timeout=120, env=cli_env(PROMPTKIT_CACHE_DIR=str(project / ".cache"), **env))


def refused(proc: subprocess.CompletedProcess[str], where: str) -> str:
    """The one error line of an exit-2 refusal that names `where`."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and where in lines[0], proc.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def edit_suite(project: Path, name: str, **changes: object) -> Path:
    path = project / "evals" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            data[section][sub] = value
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- numbers JSON can write but Python cannot hold

def test_jsonl_integer_over_the_conversion_limit_is_refused_at_its_line(project: Path, tmp_path: Path) -> None:
    # int() of more than 4300 digits raises a plain ValueError, which is no JSONDecodeError
    data = tmp_path / "big.jsonl"
    data.write_text('{"text": "fine", "label": "positive"}\n'
                    '{"text": "odd", "label": "negative", "id": ' + "7" * 5000 + "}\n", encoding="utf-8")
    line = refused(cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store", "--data", str(data)),
                   f"{data}:2")
    assert "too large" in line


def test_jsonl_number_that_overflows_to_infinity_is_refused(project: Path, tmp_path: Path) -> None:
    # 1e999 parses as float('inf'): a generation target of "inf", scored silently before
    data = tmp_path / "headlines.jsonl"
    data.write_text('{"text": "Great food.", "summary": "great"}\n{"text": "Cold soup.", "summary": 1e999}\n',
                    encoding="utf-8")
    refused(cli(project, "eval", "headline@working", "-m", "fake:x", "--no-store", "--data", str(data)), f"{data}:2")


# ---------------------------------------------------------------- suites that would score wrong

def test_classification_suite_without_a_target_is_refused_not_scored_zero(project: Path) -> None:
    # before: every prediction compared with None, accuracy 0% and exit 0
    suite = edit_suite(project, "sentiment", dataset__target=None)
    refused(cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store"), "evals/sentiment.yaml:")
    edit_suite(project, "sentiment", model="fake:x")
    proc = cli(project, "lint")
    assert proc.returncode == 1 and f"{suite.relative_to(project)}:" in proc.stdout + proc.stderr
    assert "target" in proc.stdout + proc.stderr


@pytest.mark.parametrize("odd", ["Test", "test ", "tеst"], ids=["case", "space", "cyrillic-e"])
def test_a_row_whose_split_only_looks_like_the_split_is_refused(project: Path, odd: str) -> None:
    # before: the row silently left the test split, which was scored on fewer rows than the file holds
    data = project / "evals" / "data" / "sentiment.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if '"split": "test"' in line)
    lines[number - 1] = lines[number - 1].replace('"split": "test"', f'"split": "{odd}"')
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = refused(cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store"), f"sentiment.jsonl:{number}")
    assert repr(odd) in line


def test_split_names_that_differ_in_ascii_are_still_separate_splits() -> None:
    from promptkit.data import _looks_alike

    assert not _looks_alike("train", "test") and not _looks_alike("dev", "test") and not _looks_alike("test2", "test")
    assert _looks_alike("TEST", "test") and _looks_alike("ｔｅｓｔ", "test") and _looks_alike("tеst", "test")


# ---------------------------------------------------------------- suite provider_options

@pytest.mark.parametrize("options", [{"fail_every": -1}, {"keywords": {"positive": {"deep": {"er": 1}}}},
                                     {"no_such_option": {"a": [1]}}], ids=["out-of-range", "deep-wrong-type", "unknown"])
def test_a_bad_suite_provider_option_names_the_suite_line(project: Path, options: dict[str, object]) -> None:
    # before: the provider refused it without naming any file, and lint called the suite clean
    edit_suite(project, "sentiment", provider_options=options, model="fake:x")
    refused(cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store"), "evals/sentiment.yaml:")
    proc = cli(project, "lint")
    assert proc.returncode == 1 and "evals/sentiment.yaml:" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_another_providers_suite_option_is_still_left_out(project: Path) -> None:
    edit_suite(project, "sentiment", provider_options={"forward_batch": 3, "hints": True})
    proc = cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store", "--limit", "2")
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- good data, odd environment

def test_a_csv_cell_over_the_csv_modules_field_limit_is_data(project: Path, tmp_path: Path) -> None:
    # csv refuses fields over 128 KiB by default: a long document was refused as a "quoting" error
    data = tmp_path / "long.csv"
    data.write_text("text,label\n" + "a" * 200_000 + ",positive\nshort,negative\n", encoding="utf-8")
    proc = cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store", "--data", str(data))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("value", ["inf", "1e400", "-5", "nan"])
def test_a_nonsense_dataset_size_limit_falls_back_to_the_default(project: Path, value: str) -> None:
    # before: inf raised OverflowError (exit 3); a negative limit refused every file
    proc = cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store", "--limit", "2",
               PROMPTKIT_MAX_DATASET_MB=value)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- spelling and headers

def test_a_json_boolean_target_keeps_json_spelling(project: Path, tmp_path: Path) -> None:
    """A `true` target was the label "True" (Python's spelling): a prompt labelled true/false was
    refused with "targets 'False', 'True' are not in the labels ['false', 'true']"."""
    from promptkit.data import load_examples

    data = tmp_path / "flags.jsonl"
    data.write_text('{"text": "a", "ok": true}\n{"text": "b", "ok": false}\n{"text": "c", "ok": 2.5}\n', encoding="utf-8")
    assert [e.target for e in load_examples(data, {"text": "text"}, "ok")] == ["true", "false", "2.5"]


def test_a_csv_whose_first_line_is_blank_says_the_header_is_missing(project: Path, tmp_path: Path) -> None:
    """A blank first line was taken as an empty header: every row then "has 2 values but the header names 0"."""
    data = tmp_path / "blank.csv"
    data.write_text("\ntext,label\nfine,positive\n", encoding="utf-8")
    line = refused(cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store", "--data", str(data)), f"{data}:1")
    assert "header" in line and "names no column" in line


def test_a_lone_surrogate_escape_is_refused_at_its_line(project: Path, tmp_path: Path) -> None:
    r"""`"\ud800"` parses to half a character that no file can hold: exit 3 (UnicodeEncodeError) when the
    example was hashed. A proper pair (an emoji written as two escapes) is text."""
    data = tmp_path / "half.jsonl"
    data.write_text('{"text": "pair \\ud83d\\ude00", "label": "positive"}\n'
                    '{"text": "half \\ud800 here", "label": "negative"}\n', encoding="utf-8")
    line = refused(cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store", "--data", str(data)), f"{data}:2")
    assert "lone surrogate" in line
    data.write_text('{"text": "pair \\ud83d\\ude00", "label": "positive"}\n', encoding="utf-8")
    assert cli(project, "eval", "sentiment@v1", "-m", "fake:x", "--no-store", "--data", str(data)).returncode == 0
