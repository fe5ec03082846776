"""Property tests: any input to the template renderer, the ref parser, the model resolver, the
YAML loader and the dataset loaders gives a result or a PromptkitError, never anything else."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit.config import load_yaml, validate
from promptkit.data import load_examples, read_rows
from promptkit.errors import PromptkitError
from promptkit.library import Library, PromptSpec, Template
from promptkit.models import resolve_model
from tests.helpers.projects import ROOT

EXAMPLES = int(os.environ.get("PROMPTKIT_PROPERTY_EXAMPLES", "120"))
CHECK = settings(max_examples=EXAMPLES, deadline=None, database=None,
                 derandomize=os.environ.get("PROMPTKIT_PROPERTY_RANDOM") != "1",
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TRIED: dict[str, int] = {}  # property -> inputs tried (read by scripts/reliability.py)
CLEAR: dict[str, int] = {}  # property -> inputs answered with a PromptkitError

_WORK = Path(tempfile.mkdtemp(prefix="promptkit-props-"))
shutil.copytree(ROOT / "prompts", _WORK / "prompts")
LIBRARY = Library(_WORK / "prompts")


def _count(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


def _clear(name: str, error: PromptkitError) -> None:
    assert str(error) and "\n" not in str(error)
    CLEAR[name] = CLEAR.get(name, 0) + 1


def teardown_module() -> None:
    shutil.rmtree(_WORK, ignore_errors=True)


# Pieces of Jinja, so that generated templates reach the parser and the sandbox, not only plain text.
JINJA_BITS = ["{{", "}}", "{%", "%}", "{#", "#}", " ", "text", "x", "'", '"', ".", "(", ")", "[", "]", "|", "*", "**",
              "9", "10", "-", "__class__", "__mro__", "__globals__", "__init__", "cycler", "range", "for ", " in ",
              "endfor", "if ", "endif", "else", "set ", "=", "upper", "join", "e", "macro", "endmacro", "call",
              "include", "import", "lipsum", "namespace", "loop", "self", "\n", ",", ":", "~", "%", "/", "//"]
jinja_text = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(JINJA_BITS), max_size=25).map("".join))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@CHECK
@given(template=jinja_text, variables=st.dictionaries(st.sampled_from(["text", "x", "label", "loop"]), json_values,
                                                     max_size=3))
def test_template_renders_or_config_error(template: str, variables: dict[str, Any]) -> None:
    _count("template")
    try:
        spec = PromptSpec.model_validate({"slots": {"task": template, "instruction": "Classify."}})
        rendered = Template(spec, "prompt.yaml").render(variables)
    except PromptkitError as e:
        _clear("template", e)
        return
    assert isinstance(rendered.as_text(), str)


@CHECK
@given(ref=st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, b: f"{a}@{b}", st.sampled_from(["sentiment", "prompts/sentiment", "../..", "", "/", "a/b"]),
              st.text(max_size=20)),
    st.lists(st.sampled_from(["..", "/", "sentiment", "@", "v1", "v0", "working", "etc", "passwd", ".", "~"]),
             max_size=8).map("".join)))
def test_ref_parser_resolves_or_not_found(ref: str) -> None:
    _count("ref")
    try:
        version = LIBRARY.resolve(ref)
    except PromptkitError as e:
        _clear("ref", e)
        return
    assert version.name == "sentiment"


@CHECK
@given(spec=st.one_of(st.text(max_size=30), st.builds(lambda p, m: f"{p}:{m}", st.sampled_from(["fake", "hf", "openai", "x"]),
                                                      st.text(max_size=10))))
def test_model_specs_resolve_or_error(spec: str) -> None:
    _count("model")
    try:
        ref = resolve_model(spec)
    except PromptkitError as e:
        _clear("model", e)
        return
    assert ref.provider and ref.model


YAML_BITS = ["a:", " b", "- ", "[", "]", "{", "}", "&x ", "*x", "\n", "  ", "!!python/", "'", '"', "---", ":", "? ",
             "<<: *x", "#", "\t", "|", ">", "slots:", "task:", "labels:"]


@CHECK
@given(text=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(YAML_BITS), max_size=30).map("".join)))
def test_yaml_and_prompt_schema_load_or_config_error(text: str) -> None:
    _count("yaml")
    path = _WORK / "case.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        data, source = load_yaml(path)
        validate(PromptSpec, data, path, source)
    except PromptkitError as e:
        _clear("yaml", e)


@CHECK
@given(data=st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(json_values.map(json.dumps), st.text(max_size=30)), max_size=6).map(lambda rows: "\n".join(rows).encode()),
    st.lists(st.lists(st.sampled_from(["text", "label", "a", '"', '""', ",", "x y", "\t", "\r", "\n", ""]), max_size=4)
             .map(",".join), max_size=5).map(lambda rows: "\n".join(rows).encode())),
    suffix=st.sampled_from([".jsonl", ".csv", ".tsv"]))
def test_dataset_loaders_give_rows_or_config_error(data: bytes, suffix: str) -> None:
    _count("dataset")
    path = _WORK / f"data{suffix}"
    path.write_bytes(data)
    try:
        rows = read_rows(path)
    except PromptkitError as e:
        _clear("dataset", e)
        return
    assert rows and all(isinstance(row, dict) for _, row in rows)
    try:
        examples = load_examples(path, {"text": "text"}, "label", "split")
    except PromptkitError as e:
        _clear("dataset", e)
        return
    assert len(examples) == len(rows)
    assert len({e.id for e in examples}) == len(examples)


@pytest.mark.parametrize("ref", ["sentiment", "sentiment@v1", "sentiment@working", "prompts/sentiment@v1"])
def test_good_refs_resolve(ref: str) -> None:
    assert LIBRARY.resolve(ref).name == "sentiment"
