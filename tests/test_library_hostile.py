"""The prompt library against hostile and careless input: characters YAML rewrites, huge numbers,
look-alike keys, stray, copied or special version files, concurrent publishers, odd folder names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from promptkit.errors import ConfigError, PromptkitError
from promptkit.library import Library
from promptkit.library.render import Template
from promptkit.library.spec import PromptSpec
from promptkit.optimize.publish import publish as optimize_publish
from tests.helpers.cli import run_cli_in_process
from tests.helpers.projects import write_prompt


def folder_of(root: Path, name: str = "demo"):  # type: ignore[no-untyped-def]
    return Library(root / "prompts").folder(name)[0]


def test_nel_character_survives_publishing(tmp_path: Path) -> None:
    # U+0085 (NEL, e.g. latin-1 mojibake of '…') is a line break to YAML: written plain or as a block it
    # came back as a space or '\n', so the version was "edited" the moment it was published, for good.
    write_prompt(tmp_path, "demo", {"slots": {"task": "Q: {{ q }}\x85\nA:"}, "examples": [{"q": "a\x85b", "output": "x"}]})
    folder = folder_of(tmp_path)
    version, created = folder.publish()
    assert created and folder.version(1).hash == version.hash == folder.working().hash
    assert folder.version(1).spec.slots.task == "Q: {{ q }}\x85\nA:"
    assert folder.publish() == (folder.version(1), False)


def test_integer_too_long_to_convert_is_a_config_error(tmp_path: Path) -> None:
    folder = write_prompt(tmp_path, "demo", {"slots": {"task": "Q: {{ q }}"}})
    (folder / "prompt.yaml").write_text("slots:\n  task: 'Q: {{ q }}'\nexamples:\n  - {q: " + "9" * 5000 + ", output: a}\n")
    with pytest.raises(ConfigError) as err:  # was ValueError (exit 3): Python refuses over 4300 digits
        folder_of(tmp_path).working()
    assert f"{folder / 'prompt.yaml'}:4" in str(err.value) and "too large" in str(err.value)


@pytest.mark.parametrize("value", [{1: "a", "b": "c"}, {1: "a"}, [{True: "a"}]])
def test_example_mapping_keys_must_be_text(value: object) -> None:
    # {1: a, b: c} crashed the content hash (sorting int and str keys); {1: a} hashed like {'1': a}
    # while rendering differently ({{ q[1] }}), so the hash did not pin the content.
    data = {"slots": {"task": "{{ q }}"}, "examples": [{"q": value, "output": "x"}]}
    with pytest.raises(ValueError, match="keys must be text"):
        PromptSpec.model_validate(data)
    with pytest.raises(ValueError, match="keys must be text"):
        PromptSpec.model_validate({"slots": {"task": "{{ q }}"}, "fewshot": {"pool": data["examples"]}})


def test_publish_never_overwrites_a_version_past_the_largest_number(tmp_path: Path) -> None:
    write_prompt(tmp_path, "demo", {"slots": {"task": "A {{ q }}"}})
    folder = folder_of(tmp_path)
    v1, _ = folder.publish()
    record = yaml.safe_load(v1.source.read_text())
    (folder.versions_dir / "v999999999.yaml").write_text(yaml.safe_dump({**record, "version": 999999999}))
    write_prompt(tmp_path, "demo", {"slots": {"task": "B {{ q }}"}})
    # v1000000000 was written, never listed again, and overwritten by the next publish
    with pytest.raises(ConfigError, match="cannot publish as v1000000000"):
        folder.publish()
    assert sorted(os.listdir(folder.versions_dir)) == ["v1.yaml", "v999999999.yaml"]


def test_version_file_copied_to_another_number_is_refused(tmp_path: Path) -> None:
    write_prompt(tmp_path, "demo", {"slots": {"task": "A {{ q }}"}})
    folder = folder_of(tmp_path)
    folder.publish()
    write_prompt(tmp_path, "demo", {"slots": {"task": "B {{ q }}"}})
    v2, _ = folder.publish()
    folder.set_label("production", folder.version(1))
    shutil.copy(v2.source, folder.versions_dir / "v1.yaml")  # `cp v2.yaml v1.yaml`: hash matches its content
    with pytest.raises(ConfigError) as err:
        Library(tmp_path / "prompts").resolve("demo")  # production -> v1 silently served v2's text
    assert f"{folder.versions_dir / 'v1.yaml'}:2" in str(err.value) and "holds version 2" in str(err.value)


def test_special_version_files_are_named_for_what_they_are(tmp_path: Path) -> None:
    write_prompt(tmp_path, "demo", {"slots": {"task": "A {{ q }}"}})
    folder = folder_of(tmp_path)
    folder.publish()
    path = folder.versions_dir / "v2.yaml"
    os.mkfifo(path)
    with pytest.raises(ConfigError, match=r"a special file \(FIFO"):  # was "a folder where ..."
        folder.version(2)
    path.unlink()
    path.symlink_to("nowhere.yaml")
    with pytest.raises(ConfigError, match="a symlink to nothing") as err:  # was "no version v2 (did you mean 'v2'?)"
        folder.resolve("v2")
    assert str(path) in str(err.value)
    path.unlink()
    (folder.versions_dir / "v1.yaml").rename(folder.versions_dir / "v01.yaml")
    # was: every ref, and new-version, failed with "no version v1 (did you mean 'v1'?)"
    assert folder.version_numbers() == []
    assert folder.publish()[0].number == 1


def test_optimize_publishes_under_the_prompt_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # optimize wrote vN+1 without the lock that new-version takes: run at once, one overwrote the other's version
    write_prompt(tmp_path, "demo", {"slots": {"task": "A {{ q }}"}})
    folder = folder_of(tmp_path)
    base, _ = folder.publish()
    spec = PromptSpec.model_validate({"slots": {"task": "B {{ q }}"}})
    monkeypatch.setenv("PROMPTKIT_LOCK_TIMEOUT", "0.2")
    with folder.lock(), pytest.raises(PromptkitError, match="locked by another process"):
        optimize_publish(base, spec, {"winner": "b"})
    published = optimize_publish(base, spec, {"winner": "b"})
    assert published.number == 2 and published.hash == spec.content_hash()
    assert yaml.safe_load(published.source.read_text())["optimized"] == {"winner": "b"}


@pytest.mark.parametrize("name", ["café", "-x", "two words"])
def test_prompt_folder_with_an_invalid_name(tmp_path: Path, name: str) -> None:
    write_prompt(tmp_path, "demo", {"slots": {"task": "A {{ q }}"}})
    write_prompt(tmp_path, name, {"slots": {"task": "A {{ q }}"}})
    result = run_cli_in_process(tmp_path, "prompt", "list")
    # was: the whole listing failed with "unknown prompt '-x' (did you mean '-x'?)"
    assert result.exit_code == 2 and "demo" in result.stdout
    assert f"{tmp_path / 'prompts' / name}: prompt folder {name!r} does not have a valid prompt name" in result.stderr
    assert "did you mean" not in result.stderr


@pytest.mark.parametrize("template", [
    "{% set __promptkit_loop__ = range %}{% for a in 99999 %}{% for b in 99999 %}{% endfor %}{% endfor %}",
    "{% macro __promptkit_loop__(x) %}{{ x }}{% endmacro %}{% for a in 'ab' %}{% endfor %}",
    "{% for __promptkit_concat__ in [1] %}{{ 'a' ~ 'b' }}{% endfor %}",
])
def test_template_cannot_replace_the_render_budget_guards(template: str) -> None:
    # every {% for %} runs through __promptkit_loop__ to spend the step budget; a template that rebound
    # it to `range` looped 10^10 times unbudgeted (only the SIGALRM backstop, which threads lack, stopped it)
    spec = PromptSpec.model_validate({"slots": {"task": "Q: {{ q }}\n" + template}})
    with pytest.raises(ConfigError, match=r"slot 'task' line 2: the name '__promptkit_\w+__' is reserved"):
        Template(spec, "p.yaml")


@pytest.mark.parametrize(("key", "read_as"), [("yes", "True"), ("1.10", "1.1"), ("017", "15"), ("null", "None")])
def test_hand_written_label_that_yaml_reads_as_a_number_or_boolean(tmp_path: Path, key: str, read_as: str) -> None:
    # `1.10: v2` became the label '1.1' and `017: v2` '15' silently; `yes: v2` was "label 'True' has upper-case letters"
    write_prompt(tmp_path, "demo", {"slots": {"task": "A {{ q }}"}})
    folder = folder_of(tmp_path)
    folder.publish()
    folder.labels_file.write_text(f"production: v1\n{key}: v1\n")
    with pytest.raises(ConfigError) as err:
        folder.labels()
    assert str(err.value).startswith(f"{folder.labels_file}: YAML reads a label name as {read_as}, not as the text")
    assert folder.remove_label(read_as) == "v1" and folder.labels() == {"production": "v1"}  # still removable
