"""Safe YAML loading and schema validation with messages that name file, place and fix."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from promptkit.errors import ConfigError, did_you_mean
from promptkit.fileio import atomic_write, read_regular, writable_target

__all__ = ["atomic_write", "check_not_input", "check_writable", "dump_yaml", "line_of", "load_yaml", "read_text", "validate"]

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


MAX_CONFIG_BYTES = 2 << 20  # prompt, suite and settings files: 2 MB is far beyond any real one
MAX_YAML_NODES = 100_000  # after expanding aliases: refuses "billion laughs" alias bombs
MAX_YAML_DEPTH = 200


def read_text(path: Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """A UTF-8 text file, refused with a clear message when missing, too big, binary, unreadable or
    not a regular file (a device or FIFO is never read)."""
    return decode_text(read_regular(path, limit), path, "utf-8")


def decode_text(data: bytes, path: Path, encoding: str = "utf-8") -> str:
    """Bytes as text, refused with file:line when they are not UTF-8 or hold NUL bytes (a binary file)."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 (byte {e.start}); binary file?", where=f"{path}:{line}",
                          hint="re-save the file as UTF-8 text") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError("contains NUL bytes: a binary file, not text", where=f"{path}:{line}") from None
    return text


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (silently dropping one is a classic config bug), keeps
    dates as the text written (a date object cannot be written to JSON or rendered as typed) and
    refuses binary, set and ordered-map values, which no promptkit file can use."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's own class attribute, replaced whole
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def _refuse_tag(self, node: yaml.Node) -> Any:
        raise yaml.constructor.ConstructorError(
            None, None, f"a {node.tag.rsplit(':', 1)[-1]} value ({node.tag}) is not supported here; write plain text",
            node.start_mark)

    def _timestamp_as_text(self, node: yaml.Node) -> Any:
        return self.construct_scalar(node)  # type: ignore[arg-type]

    def _bounded_int(self, node: yaml.Node) -> Any:
        try:
            return self.construct_yaml_int(node)  # type: ignore[arg-type]
        except ValueError:  # more digits than Python converts (4300): a ValueError, not a YAMLError
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(str(node.value))} characters is too large a number", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: let the base class report it
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first defined on line {first.line + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader._refuse_tag)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader._timestamp_as_text)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader._bounded_int)


def _check_size(node: yaml.Node, path: Path) -> None:
    """Refuse YAML whose aliases expand to a huge document, or nesting too deep to handle."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 0, False)]
    while stack:
        current, depth, expanded = stack.pop()
        if id(current) in sizes:
            continue
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels", where=f"{path}:{current.start_mark.line + 1}")
        children: list[yaml.Node] = []
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [n for pair in current.value for n in pair]
        if expanded or not children:
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            sizes[id(current)] = total
            if total > MAX_YAML_NODES:
                raise ConfigError(
                    f"YAML expands to more than {MAX_YAML_NODES} values (an alias bomb?)",
                    where=f"{path}:{current.start_mark.line + 1}", hint="remove the repeated '*alias' references",
                )
            continue
        stack.append((current, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)


def load_yaml(path: Path) -> tuple[Any, str]:
    """Parse a YAML file safely; returns (data, text). Syntax errors name line and column."""
    text = read_text(path)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_Loader):  # the parser is iterative: cheap to check depth first
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    mark = event.start_mark
                    place = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
                    raise ConfigError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels", where=f"{path}{place}")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, text
            _check_size(node, path)
            return loader.construct_document(node), text
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        if mark is not None:
            where = f"{path}:{mark.line + 1}:{mark.column + 1}"
        elif isinstance(e, yaml.reader.ReaderError):
            where = f"{path}:{text[: e.position].count(chr(10)) + 1}"
        else:
            where = str(path)
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        if context and getattr(e, "problem", None):
            problem = f"{context}, {problem}"
        raise ConfigError(f"YAML syntax error: {problem}", where=where, hint="fix the YAML syntax there") from None
    except RecursionError:
        raise ConfigError("YAML nested too deeply", where=str(path)) from None


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
        # an unknown key first: it is usually a typo of the key reported missing
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
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
        fields = getattr(current, "model_fields", {})
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)  # `assert` is assert_
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


def check_writable(path: Path, option: str = "--output") -> None:
    """Refuse an output path that cannot be written, before any work is done."""

    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    # os.path, not Path: Path.exists/is_dir raise on a name too long for the file system
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    if os.path.isdir(path):
        raise ConfigError(f"{option} names a folder, not a file", where=str(path), hint="give a file name")
    try:
        target = writable_target(path)
    except ConfigError as e:
        raise ConfigError(f"{option}: {e.message}", where=e.where, hint=e.hint) from None
    # the atomic rename would replace a file its owner made read-only (and leave it writable)
    if os.path.isfile(target) and (not os.stat(target).st_mode & 0o222 or not os.access(target, os.W_OK)):
        raise ConfigError(f"{option} names a read-only file", where=str(path),
                          hint="make it writable (chmod u+w) or give another path")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {option} here: {existing} is not a writable folder", where=str(path),
                          hint=f"choose a writable path with {option}")


def check_not_input(path: Path, inputs: dict[str, Path | None], option: str = "--output") -> None:
    """Refuse an output path that is one of the command's inputs (by name, symlink or hard link):
    `--data d.jsonl -o d.jsonl` would replace the data with the report."""
    for what, source in inputs.items():
        if source is not None and os.path.isfile(path) and os.path.isfile(source) and os.path.samefile(path, source):
            raise ConfigError(f"{option} names {what}", where=str(path), hint="write to another file")


def dump_yaml(data: Any) -> str:
    """YAML that keeps key order and writes multi-line strings as blocks."""

    class Dumper(yaml.SafeDumper):
        pass

    def str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        # NEL (U+0085) is a line break to YAML readers: outside double quotes it comes back as '\n' or a space
        style = '"' if "\x85" in value else "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, str_presenter)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


def read_json_object(path: Path, hint: str, what: str = "a JSON object") -> dict[str, Any]:
    """A JSON object from a file promptkit wrote but anyone may have edited or damaged: anything else
    is one ConfigError naming the file (and line), never a traceback."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ConfigError(f"not JSON: {e.msg}", where=f"{path}:{e.lineno}", hint=hint) from None
    except RecursionError:
        raise ConfigError("not JSON: nested too deeply", where=str(path), hint=hint) from None
    if not isinstance(data, dict):
        raise ConfigError(f"expected {what}, got {type(data).__name__}", where=str(path), hint=hint)
    return data

