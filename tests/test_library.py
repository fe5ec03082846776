"""The prompt library: rendering, content hashes, immutable versions, labels and diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.errors import ConfigError, NotFoundError
from promptkit.library import Library
from promptkit.library.diff import diff_versions
from promptkit.library.render import Template
from promptkit.library.spec import PromptSpec
from tests.helpers.projects import write_prompt


def spec(**fields: object) -> PromptSpec:
    base: dict[str, object] = {"slots": {"task": "Review: {{ text }}\nSentiment:"}, "labels": ["negative", "positive"]}
    return PromptSpec.model_validate({**base, **fields})


# --- rendering ---------------------------------------------------------------------------

def test_text_prompt_renders_slots_in_order_with_few_shot_examples() -> None:
    s = spec(
        slots={"instruction": "Classify the review.", "context": "Reviews of {{ place }}.",
               "task": "Review: {{ text }}\nSentiment:"},
        examples=[{"text": "Great!", "place": "cafes", "output": "positive"}],
    )
    rendered = Template(s, "p.yaml").render({"text": "Awful.", "place": "cafes"})
    assert rendered.text == (
        "Reviews of cafes.\n\nClassify the review.\n\nReview: Great!\nSentiment: positive\n\nReview: Awful.\nSentiment:"
    )
    assert [name for name, _ in rendered.parts] == ["context", "instruction", "example 1", "task"]


def test_chat_prompt_renders_messages() -> None:
    s = spec(style="chat", slots={"instruction": "Answer with one word.", "task": "{{ text }}"},
             examples=[{"text": "Great!", "output": "positive"}])
    rendered = Template(s, "p.yaml").render({"text": "Awful."})
    assert rendered.messages == [
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": "Great!"},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "Awful."},
    ]


def test_undefined_variable_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as err:
        Template(spec(), "prompts/x/prompt.yaml").render({"txt": "hello"})
    assert "undefined variable" in str(err.value) and "prompts/x/prompt.yaml" in str(err.value)


def test_sandbox_refuses_attribute_escapes() -> None:
    s = spec(slots={"task": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    with pytest.raises(ConfigError, match="unsafe template"):
        Template(s, "p.yaml").render({})


def test_template_syntax_error_names_slot_and_line() -> None:
    with pytest.raises(ConfigError, match="slot 'task' line 2"):
        Template(spec(slots={"task": "ok\n{{ text "}), "p.yaml")


def test_template_variables_are_found_without_rendering() -> None:
    s = spec(slots={"context": "{{ a }}", "task": "{{ b }} {% if c %}{{ d }}{% endif %}"})
    assert Template(s, "p.yaml").variables() == {"a", "b", "c", "d"}


# --- versions ----------------------------------------------------------------------------

def test_hash_covers_content_not_description() -> None:
    assert spec().content_hash() == spec(description="other words").content_hash()
    assert spec().content_hash() != spec(slots={"task": "Text: {{ text }}\nSentiment:"}).content_hash()
    assert spec().content_hash() != spec(settings={"temperature": 0.7}).content_hash()
    assert len(spec().content_hash()) == 12


def test_publish_label_resolve(tmp_path: Path) -> None:
    folder = write_prompt(tmp_path, "demo", {"slots": {"task": "Q: {{ q }}"}})
    lib = Library(tmp_path / "prompts")
    assert lib.names() == ["demo"]
    assert lib.resolve("demo").number is None  # nothing published: the working copy

    v1, created = lib.folder("demo")[0].publish("first")
    assert created and v1.number == 1
    assert lib.folder("demo")[0].publish()[1] is False  # same content publishes nothing

    write_prompt(tmp_path, "demo", {"slots": {"instruction": "Be brief.", "task": "Q: {{ q }}"}})
    v2, _ = lib.folder("demo")[0].publish("second")
    assert v2.number == 2 and v2.hash != v1.hash
    assert lib.resolve("demo").number == 2  # newest without a production label
    lib.folder("demo")[0].set_label("production", v1)
    assert lib.resolve("demo").number == 1  # production wins
    assert lib.resolve("prompts/demo@v2").hash == v2.hash
    assert lib.resolve(f"demo@{v2.hash[:6]}").number == 2
    assert lib.resolve("demo@production").number == 1
    assert (folder / "versions" / "v1.yaml").is_file()
    with pytest.raises(NotFoundError, match="no version"):
        lib.resolve("demo@v9")


def test_hand_edited_version_is_refused(tmp_path: Path) -> None:
    write_prompt(tmp_path, "demo", {"slots": {"task": "Q: {{ q }}"}})
    lib = Library(tmp_path / "prompts")
    version, _ = lib.folder("demo")[0].publish()
    path = version.source
    path.write_text(path.read_text().replace("Q: {{ q }}", "Question: {{ q }}"))
    with pytest.raises(ConfigError) as err:
        lib.resolve("demo@v1")
    assert str(path) in str(err.value)


def test_diff_names_changed_slots(tmp_path: Path) -> None:
    write_prompt(tmp_path, "demo", {"slots": {"task": "Q: {{ q }}"}, "labels": ["a", "b"]})
    lib = Library(tmp_path / "prompts")
    v1, _ = lib.folder("demo")[0].publish()
    write_prompt(tmp_path, "demo", {"slots": {"instruction": "Be brief.", "task": "Q: {{ q }}"}, "labels": ["a", "b"]})
    v2, _ = lib.folder("demo")[0].publish()
    changed = {d.part: d.status for d in diff_versions(v1, v2) if d.status != "unchanged"}
    assert changed == {"instruction": "added"}
