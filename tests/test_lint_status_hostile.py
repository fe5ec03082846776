"""Hostile inputs to `promptkit lint`, `status`, `check` output and the `prompt` subcommands: special files
where prompt.yaml should be, labels naming missing versions, file and model names holding rich markup,
terminal escapes or bytes that are not UTF-8, NaN metrics and damaged records in the run store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from promptkit.data import file_hash
from promptkit.models import resolve_model
from promptkit.project import Project
from promptkit.results import ExampleResult, MetricValue
from promptkit.runs import RunStore
from tests.helpers.cli import cli_env, run_cli, run_cli_in_process
from tests.helpers.projects import tune_project, write_jsonl

ESC = "\x1b]52;c;SGk=\x07\x1b[2J"  # OSC 52 (write the clipboard), then clear the screen


def _project(root: Path, text: str = "good item") -> Path:
    """prompts/a (published as v1) and evals/a.yaml scored by the fake model's keyword hints."""
    (root / "prompts" / "a").mkdir(parents=True)
    (root / "evals" / "data").mkdir(parents=True)
    (root / "prompts" / "a" / "prompt.yaml").write_text(
        'slots:\n  instruction: "pos words: good"\n  task: "Review: {{ text }}"\nlabels: [neg, pos]\n'
        'settings: {stop: ["\\n"]}\n')
    write_jsonl(root / "evals" / "data" / "d.jsonl", [{"text": f"{text} {i}", "label": "pos"} for i in range(12)])
    (root / "evals" / "a.yaml").write_text(
        "prompt: a\ndataset: {path: data/d.jsonl, target: label}\nmodel: fake:x\nprovider_options: {hints: true}\n")
    return root


def _suite(root: Path, name: str, model: str = "fake:x") -> None:
    (root / "evals" / name).write_text(f"prompt: a\ndataset: {{path: data/d.jsonl, target: label}}\nmodel: {json.dumps(model)}\n")


# ------------------------------------------------------------------ lint

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_lint_reports_a_special_file_in_place_of_prompt_yaml(tmp_path: Path) -> None:
    """A FIFO, a folder, a symlink loop or a dangling symlink as prompts/X/prompt.yaml was skipped
    silently (lint: clean, exit 0) while every command said 'unknown prompt X'."""
    root = _project(tmp_path)
    for name in ("fifo", "folder", "loop", "dangling"):
        (root / "prompts" / name).mkdir()
    os.mkfifo(root / "prompts" / "fifo" / "prompt.yaml")
    (root / "prompts" / "folder" / "prompt.yaml").mkdir()
    (root / "prompts" / "loop" / "prompt.yaml").symlink_to("prompt.yaml")
    (root / "prompts" / "dangling" / "prompt.yaml").symlink_to("nowhere.yaml")
    result = run_cli("--project", str(root), "lint", env=cli_env(), timeout=60)  # a FIFO is never opened for reading
    assert result.returncode == 1, result.stderr
    for name in ("fifo", "folder", "loop", "dangling"):
        assert f"{root / 'prompts' / name / 'prompt.yaml'}: schema: " in result.stdout, result.stdout


def test_lint_reports_labels_naming_missing_versions(tmp_path: Path) -> None:
    """versions/labels.yaml pointing 'production' at a version that was never published passed lint,
    though 'promptkit eval a' (production first) then failed."""
    root = _project(tmp_path)
    labels = root / "prompts" / "a" / "versions" / "labels.yaml"
    labels.parent.mkdir()
    labels.write_text("staging: v1\nproduction: v7\n")
    result = run_cli_in_process(root, "lint")
    assert result.exit_code == 1
    assert f"{labels}:1: schema: label 'staging' points at 'v1'" in result.stdout
    assert f"{labels}:2: schema: label 'production' points at 'v7'" in result.stdout


def test_lint_names_the_suite_line_of_a_missing_or_special_dataset(tmp_path: Path) -> None:
    """A missing dataset (or /dev/zero) was reported at the data path alone, with no suite and the
    hint 'relative to where you run', though suite paths are relative to the suite file."""
    root = _project(tmp_path)
    (root / "evals" / "a.yaml").write_text("prompt: a\ndataset:\n  path: data/nosuch.jsonl\nmodel: fake:x\n")
    (root / "evals" / "z.yaml").write_text("prompt: a\ndataset:\n  path: /dev/zero\nmodel: fake:x\n")
    result = run_cli_in_process(root, "lint")
    assert result.exit_code == 1
    assert f"{root / 'evals' / 'a.yaml'}:3: dataset: {root / 'evals' / 'data' / 'nosuch.jsonl'}: " in result.stdout
    assert f"{root / 'evals' / 'z.yaml'}:3: dataset: /dev/zero: " in result.stdout
    assert "relative to the suite file" in result.stdout and "where you run" not in result.stdout


def test_lint_json_and_output_with_hostile_file_names(tmp_path: Path) -> None:
    """A suite file whose name is not UTF-8 crashed 'lint --json' (exit 3, UnicodeEncodeError), an
    escape sequence in a suite's prompt reference reached the terminal raw, and a newline in a file
    name forged a finding line of its own."""
    root = _project(tmp_path)
    (root / "evals" / os.fsdecode(b"\xff.yaml")).write_text("prompt: a\n")
    (root / "evals" / "esc.yaml").write_text(f"prompt: {json.dumps('a' + ESC)}\ndataset: {{path: data/d.jsonl}}\n")
    (root / "evals" / "x\nforged.yaml: ok.yaml").write_text("prompt: a\n")  # one finding, one line
    result = run_cli_in_process(root, "lint", "--json", str(root / "lint.json"))
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.stdout and "\\x1b]52" in result.stdout
    assert not any(line.startswith("forged") for line in result.stdout.splitlines())
    findings = json.loads((root / "lint.json").read_text(encoding="utf-8"))
    assert any(f["where"].endswith("\udcff.yaml") for f in findings)


# ------------------------------------------------------------------ check

def test_check_prints_markup_and_escapes_in_suite_and_model_names_as_text(tmp_path: Path) -> None:
    """A suite model like 'fake:[/x]' made check's summary line crash with a rich MarkupError (exit 3),
    and '[link=...]' or an escape sequence in a suite's file name was obeyed by the terminal."""
    root = _project(tmp_path)
    (root / "evals" / "a.yaml").unlink()
    _suite(root, f"s[link=https:]{ESC}.yaml", model="fake:[/x]")
    result = run_cli_in_process(root, "check", "--no-store", "--no-cache")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    assert "s[link=https:]\\x1b]52" in result.stdout and "on fake:[/x]," in result.stdout


def test_check_reports_with_a_suite_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    """evals/<byte 0xff>.yaml made 'check --json' and '--markdown' crash (exit 3, UnicodeEncodeError)."""
    root = _project(tmp_path)
    (root / "evals" / "a.yaml").unlink()
    _suite(root, os.fsdecode(b"\xff.yaml"))
    result = run_cli_in_process(root, "check", "--no-store", "--json", str(root / "c.json"),
                                "--markdown", str(root / "c.md"))
    assert result.exit_code == 0, result.output
    assert json.loads((root / "c.json").read_text(encoding="utf-8"))["suites"][0]["suite"] == "\udcff"
    assert "\\udcff" in (root / "c.md").read_text(encoding="utf-8")


def test_check_shows_escapes_in_flipped_examples(tmp_path: Path) -> None:
    """The inputs of examples that got worse were printed raw: a dataset row could write the user's
    clipboard (OSC 52) or clear the screen of whoever reads the CI log in a terminal."""
    root = _project(tmp_path, text=f"good {ESC} [/b]")
    assert run_cli_in_process(root, "baseline", "bless", "a").exit_code == 0
    prompt = root / "prompts" / "a" / "prompt.yaml"
    prompt.write_text(prompt.read_text().replace("pos words", "neg words"))
    result = run_cli_in_process(root, "check", "--no-store")
    assert result.exit_code == 1, result.output
    assert "flipped #0" in result.stdout and "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "good \\x1b]52;c;SGk=\\x07\\x1b[2J [/b]" in result.stdout


# ------------------------------------------------------------------ prompt subcommands

def test_prompt_show_and_diff_with_markup_and_escapes(tmp_path: Path) -> None:
    """'prompt show --model fake:[/x]' crashed (exit 3, MarkupError); show and diff sent escape
    sequences in slot text to the terminal."""
    root = _project(tmp_path)
    prompt = root / "prompts" / "a" / "prompt.yaml"
    prompt.write_text(prompt.read_text().replace("Review:", f"Review{json.dumps(ESC)[1:-1]}:"))
    assert run_cli_in_process(root, "prompt", "new-version", "a").exit_code == 0
    prompt.write_text(prompt.read_text().replace("Review", "Text"))
    assert run_cli_in_process(root, "prompt", "new-version", "a").exit_code == 0
    show = run_cli_in_process(root, "prompt", "show", "a@v1", "--var", "text=hi", "--model", "fake:[/x]")
    assert show.exit_code == 0, show.output
    assert "tokens with fake:[/x]:" in show.stdout and "\x1b" not in show.stdout and "Review\\x1b]52" in show.stdout
    diff = run_cli_in_process(root, "prompt", "diff", "a@v1", "a@v2")
    assert diff.exit_code == 0 and "\x1b" not in diff.stdout and "-Review\\x1b]52" in diff.stdout


def test_prompt_unlabel_a_label_holding_markup(tmp_path: Path) -> None:
    """Removing a hand-written label such as '[/x]' (refused by the label rules, so it is removed) crashed
    with a MarkupError (exit 3) after the label file had already been changed."""
    root = _project(tmp_path)
    assert run_cli_in_process(root, "prompt", "new-version", "a").exit_code == 0
    labels = root / "prompts" / "a" / "versions" / "labels.yaml"
    labels.write_text('"[/x]\\e[2J": v1\nproduction: v1\n')
    result = run_cli_in_process(root, "prompt", "unlabel", "a", "[/x]\x1b[2J")
    assert result.exit_code == 0, result.output
    assert "removed a@[/x]\\x1b[2J (it pointed at v1)" in result.stdout and "\x1b" not in result.stdout
    assert labels.read_text() == "production: v1\n"


def test_prompt_list_shows_a_folder_name_with_markup_as_text(tmp_path: Path) -> None:
    """A prompt folder named 'z[b]<ESC>[2J' was listed as 'z' plus a raw escape: rich read '[b]' as markup."""
    root = _project(tmp_path)
    odd = root / "prompts" / "z[b]\x1b[2J"
    odd.mkdir()
    (odd / "prompt.yaml").write_text((root / "prompts" / "a" / "prompt.yaml").read_text())
    result = run_cli_in_process(root, "prompt", "list", env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "z[b]\\x1b[2J" in result.stdout and "\x1b" not in result.output


# ------------------------------------------------------------------ status

def _record(project: Project, version: int, correct: list[bool]) -> str:
    with RunStore(project.runs_path) as store:
        path = project.suite("review").dataset_path()
        run_id = store.create_run({"prompt": f"review@v{version}", "prompt_hash": f"h{version}", "suite": "review",
                                   "split": "test", "dataset_hash": file_hash(path), "examples": len(correct),
                                   "model": "smollm2", "provider": "hf", "base_model": resolve_model("smollm2").model})
        store.add_results(run_id, [ExampleResult(id=f"e{i}", index=i, input={}, expected="positive", output="",
                                                 prediction=None, correct=ok) for i, ok in enumerate(correct)])
        store.finish_run(run_id, [MetricValue("accuracy", sum(correct) / len(correct))])
    return run_id


def _history(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tune_project(tmp_path)
    assert run_cli_in_process(root, "prompt", "new-version", "review").exit_code == 0
    project = Project(root)
    runs = [_record(project, v, [True] * (10 + v) + [False] * (10 - v)) for v in range(1, 6)]
    return root, runs


def test_status_skips_a_nan_metric(tmp_path: Path) -> None:
    """A run whose stored accuracy is NaN (a hand-edited or damaged record) crashed status (exit 3,
    'cannot convert float NaN to integer' while drawing the chart)."""
    root, runs = _history(tmp_path)
    with sqlite3.connect(root / ".promptkit" / "runs.db") as db:
        db.execute("UPDATE runs SET metrics = ? WHERE id = ?",
                   (json.dumps([{"name": "accuracy", "value": float("nan"), "low": float("nan")}]), runs[-1]))
    db.close()
    result = run_cli_in_process(root, "status", "review", "--no-estimate", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert " v4 " in result.stdout and " v5 " not in result.stdout and "nan" not in result.stdout


def test_status_judges_without_the_paired_test_when_a_result_is_damaged(tmp_path: Path) -> None:
    """One damaged example record in a judged run made status refuse the whole history (exit 2, 'move the
    run store aside'); now the verdict is given by the scores and says why the paired test is missing."""
    root, runs = _history(tmp_path)
    with sqlite3.connect(root / ".promptkit" / "runs.db") as db:
        db.execute("UPDATE results SET data = '{broken' WHERE run_id = ? AND idx = 3", (runs[1],))
    db.close()
    result = run_cli_in_process(root, "status", "review", "--no-estimate", env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "no paired test: run " in result.stdout and "is damaged" in result.stdout


def test_status_model_with_markup_and_alpha_out_of_range(tmp_path: Path) -> None:
    """'status --model fake:[/x]' crashed with a MarkupError (exit 3); '--alpha 7' was accepted and
    called every gain significant ('significant at 7')."""
    root, _ = _history(tmp_path)
    result = run_cli_in_process(root, "status", "review", "--model", "fake:[/x]", "--no-estimate")
    assert result.exit_code == 0, result.output
    assert "model fake:[/x]" in result.stdout
    for option, value in (("--alpha", "7"), ("--alpha", "0"), ("--margin", "-1")):
        refused = run_cli_in_process(root, "status", "review", option, value)
        assert refused.exit_code == 2 and f"'{option}'" in refused.output, refused.output


def test_lint_reports_suites_lint_passed_but_eval_never_finds(tmp_path: Path) -> None:
    """evals/gate.yml (not .yaml) and a suite naming 'a@v2' or 'prompts/a' passed lint, yet eval and status
    never found the suite ('no eval suite names prompt a') and check scored the working copy, not v2."""
    root = _project(tmp_path)
    (root / "evals" / "gate.yml").write_text((root / "evals" / "a.yaml").read_text())
    (root / "evals" / "a.yaml").write_text("prompt: a@v2\ndataset: {path: data/d.jsonl, target: label}\nmodel: fake:x\n")
    (root / "evals" / "b.yaml").write_text("prompt: prompts/a\ndataset: {path: data/d.jsonl, target: label}\nmodel: fake:x\n")
    result = run_cli_in_process(root, "lint")
    assert result.exit_code == 1
    assert f"{root / 'evals' / 'gate.yml'}: ignored-file: " in result.stdout
    assert f"{root / 'evals' / 'a.yaml'}:1: schema: suite names prompt 'a@v2', not its name" in result.stdout
    assert f"{root / 'evals' / 'b.yaml'}:1: schema: suite names prompt 'prompts/a', not its name" in result.stdout


def test_prompt_show_index_past_the_dataset_is_refused(tmp_path: Path) -> None:
    """'prompt show a --index 25' on a 12-row dataset silently rendered row 11 instead."""
    root = _project(tmp_path)
    shown = run_cli_in_process(root, "prompt", "show", "a", "--index", "11", "--model", "fake:x")
    assert shown.exit_code == 0 and "good item 11" in shown.stdout
    for index in ("12", "99999999999999999999999"):
        result = run_cli_in_process(root, "prompt", "show", "a", "--index", index, "--model", "fake:x")
        assert result.exit_code == 2 and f"--index {index} is past the last example" in result.output, result.output


@pytest.mark.parametrize("tokenizer, config", [("garbage{", None), (None, '{"max_position_embeddings": 1e999}'),
                                               (None, "[1]")])
def test_lint_with_a_damaged_model_folder(tmp_path: Path, tokenizer: str | None, config: str | None) -> None:
    """A model folder (hf:PATH) with a damaged tokenizer.json, or a config.json holding a list or
    1e999, crashed lint (exit 3: tokenizers' bare Exception, AttributeError, OverflowError)."""
    root = _project(tmp_path / "project")
    model = tmp_path / "model"
    model.mkdir()
    if tokenizer is not None:
        (model / "tokenizer.json").write_text(tokenizer)
    if config is not None:
        (model / "config.json").write_text(config)
    suite = root / "evals" / "a.yaml"
    suite.write_text(suite.read_text().replace("model: fake:x", f"model: hf:{model}"))
    result = run_cli_in_process(root, "lint")
    if tokenizer is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1
        assert f"{model / 'tokenizer.json'}: model: cannot read the tokenizer" in result.stdout


def test_prompt_list_flags_labels_naming_missing_versions(tmp_path: Path) -> None:
    """'prompt list' showed 'production → v9' for a version never published, exit 0, though every ref
    through that label (and the bare name 'a') then failed."""
    root = _project(tmp_path)
    assert run_cli_in_process(root, "prompt", "new-version", "a").exit_code == 0
    (root / "prompts" / "a" / "versions" / "labels.yaml").write_text("production: v9\nstaging: v1\n")
    result = run_cli_in_process(root, "prompt", "list", env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "production → v9 (missing), staging → v1" in result.stdout
    assert "production point(s) at v9, which is not a published version" in result.output


def test_status_refuses_to_mix_datasets_when_the_suite_dataset_is_gone(tmp_path: Path) -> None:
    """With the suite's dataset missing (moved, deleted), status dropped its dataset check and judged the
    runs of every dataset the suite had ever scored as one history."""
    root, _ = _history(tmp_path)
    with RunStore(Project(root).runs_path) as store:  # a run of v6 on another dataset of the same suite
        run_id = store.create_run({"prompt": "review@v6", "prompt_hash": "h6", "suite": "review", "split": "test",
                                   "dataset_hash": "0" * 16, "examples": 4, "model": "smollm2", "provider": "hf",
                                   "base_model": resolve_model("smollm2").model})
        store.finish_run(run_id, [MetricValue("accuracy", 0.25)])
    assert " v6 " not in run_cli_in_process(root, "status", "review", "--no-estimate", env={"COLUMNS": "200"}).stdout
    (root / "evals" / "data" / "reviews.jsonl").rename(root / "evals" / "data" / "moved.jsonl")
    result = run_cli_in_process(root, "status", "review", "--no-estimate", env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert f"{root / 'evals' / 'review.yaml'}:4: suite review's dataset" in result.output and " v6 " not in result.output


# ------------------------------------------------------------------ check --changed-since

def _git_project(root: Path, dataset: str) -> Path:
    _project(root)
    (root / "evals" / "data" / "d.jsonl").rename(root / "evals" / "data" / dataset)
    suite = root / "evals" / "a.yaml"
    suite.write_text(suite.read_text().replace("data/d.jsonl", f"data/{dataset}"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    return root


def test_changed_since_sees_a_changed_dataset_with_a_non_ascii_name(tmp_path: Path) -> None:
    """git quotes non-ASCII names in --name-only output ("donn\\303\\251es.jsonl"), so an edited
    données.jsonl matched no suite input: 'no suite to check (unchanged ...)', exit 0, the gate skipped."""
    root = _git_project(tmp_path, "données.jsonl")
    with (root / "evals" / "data" / "données.jsonl").open("a") as f:
        f.write(json.dumps({"text": "good new", "label": "pos"}) + "\n")
    result = run_cli_in_process(root, "check", "--no-store", "--changed-since", "HEAD")
    assert result.exit_code == 0, result.output
    assert "NO BASELINE a:" in result.stdout and "no suite to check" not in result.output


def test_changed_since_refuses_a_ref_git_would_read_as_an_option(tmp_path: Path) -> None:
    """'--changed-since=--output=FILE' went to 'git diff' as an option: FILE was created or truncated,
    and check then passed with 'no suite to check'."""
    root = _git_project(tmp_path, "d.jsonl")
    victim = root / "README.md"
    victim.write_text("keep me\n")
    result = run_cli_in_process(root, "check", "--no-store", f"--changed-since=--output={victim}")
    assert result.exit_code == 2 and "is not a git ref" in result.output, result.output
    assert victim.read_text() == "keep me\n"


def test_lint_json_to_an_unwritable_path_is_a_usage_error(tmp_path: Path) -> None:
    """'lint --json FILE/x.json' (a file as the folder) or '--json /proc/version' crashed after the
    findings with exit 3 (FileExistsError, FileNotFoundError on the temporary file)."""
    root = _project(tmp_path)
    for target in (root / "evals" / "a.yaml" / "x.json", Path("/proc/version")):
        result = run_cli_in_process(root, "lint", "--json", str(target))
        assert result.exit_code == 2 and "--json" in result.output, result.output


def test_no_emoji_codes_and_no_raw_escapes_in_cli_text(tmp_path: Path) -> None:
    """rich read `:x:` in a model named `fake:x:` as an emoji code (the header said "fake❌"), and the
    global error line printed a message's escapes raw (a hint quoting a label from a file)."""
    from tests.helpers.projects import copy_project

    project = copy_project(tmp_path / "p")
    done = run_cli("eval", "sentiment@v1", "-m", "fake:x:", "--limit", "2", "--no-store", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "❌" not in done.stdout + done.stderr and "fake:x:" in done.stdout
    refused = run_cli("eval", "sentiment@v1", "--data", str(tmp_path / "a\x1b[2Jb.jsonl"), cwd=project)
    assert refused.returncode == 2 and "\x1b" not in refused.stderr and "\\x1b" in refused.stderr, refused.stderr
