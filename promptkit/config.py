"""Safe YAML loading and schema validation with messages that name file, place and fix."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from promptkit.errors import ConfigError, did_you_mean

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(path)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not valid UTF-8 at byte {e.start}", where=str(path)) from None
    except (IsADirectoryError, PermissionError) as e:
        raise ConfigError(e.strerror or str(e), where=str(path)) from None


def load_yaml(path: Path) -> tuple[Any, str]:
    """Parse a YAML file safely; returns (data, text). Syntax errors name line and column."""
    text = read_text(path)
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"YAML syntax error: {problem}", where=where, hint="fix the YAML syntax there") from None


def line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the key path `loc` in a YAML text, as close as it can be found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def validate(model: type[M], data: Any, path: Path, text: str | None = None) -> M:
    """Validate `data` against `model`; the first problem becomes one clear ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of keys, got {type(data).__name__}", where=str(path))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        line = line_of(text, loc) if text else None
        where = f"{path}:{line}" if line else str(path)
        kind = err["type"]
        hint: str | None
        if kind == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = list(parent.model_fields) if parent else []
            msg, hint = f"unknown key {dotted!r}", did_you_mean(str(loc[-1]), known)
        elif kind == "missing":
            msg, hint = f"missing required key {dotted!r}", f"add '{loc[-1]}:'"
        else:
            msg = f"{dotted}: {err['msg']}"
            got = err.get("input")
            hint = f"got {got!r}" if got is not None and not isinstance(got, dict) else None
        raise ConfigError(msg, where=where, hint=hint) from None


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The nested config model at a key path, to list its known keys."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        annotation = field.annotation
        for arg in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
                break
            for inner in getattr(arg, "__args__", ()):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    current = inner
                    break
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_yaml(data: Any) -> str:
    """YAML that keeps key order and writes multi-line strings as blocks."""

    class Dumper(yaml.SafeDumper):
        pass

    def str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, str_presenter)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
