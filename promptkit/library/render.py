"""Render a prompt version for one example: sandboxed Jinja, undefined variables are errors."""

from __future__ import annotations

import functools
import math
import operator
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

import jinja2
from jinja2 import meta, nodes
from jinja2.nodes import EvalContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from promptkit.config import line_of
from promptkit.errors import ConfigError
from promptkit.library.fewshot import select_examples
from promptkit.library.spec import OUTPUT_KEY, SLOT_ORDER, PromptSpec

MAX_RESULT = 1_000_000  # longest string or list one template expression may build, and one slot's output
MAX_POWER_BITS = 1_000_000  # largest integer `**` may build (about 300,000 digits)
MAX_STEPS = 250_000  # loop iterations, calls and operators one slot's rendering may take
MAX_SECONDS = 2.0  # wall-clock time one slot's rendering may take
_GUARD = "__promptkit_loop__"  # every {% for %} iterates through this global (see _Guards)
_CONCAT = "__promptkit_concat__"  # every `~` joins through this global
_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format spec


class _Budget(threading.local):
    steps = 0
    deadline = float("inf")


_budget = _Budget()


def _refuse(message: str) -> NoReturn:
    raise jinja2.exceptions.SecurityError(message)


def _step(count: int = 1) -> None:
    """Spend render steps; refuse when a slot's step or time budget runs out."""
    _budget.steps += count
    if _budget.steps > MAX_STEPS:
        _refuse(f"rendering takes more than {MAX_STEPS:,} steps (loops or calls)")
    if _budget.steps % 64 == 0 and time.monotonic() > _budget.deadline:
        _refuse(f"rendering takes longer than {MAX_SECONDS:g} s")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def _check_result(value: Any, what: str) -> Any:
    if _size(value) > MAX_RESULT:
        _refuse(f"{what} builds more than {MAX_RESULT:,} characters or items")
    return value


def _check_args(args: Any, what: str) -> None:
    """Refuse arguments that ask for a huge width, count or format: any integer over MAX_RESULT, or a
    format string with a width or precision of a million or more."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_RESULT:
            _refuse(f"{what} with {arg} would build too much")
        if isinstance(arg, str) and ("%" in arg or "{" in arg) and _WIDTH.search(arg):
            _refuse(f"{what}: a format width or precision of a million or more")
        if isinstance(arg, (tuple, list)) and len(arg) <= 64:
            _check_args(arg, what)
        if isinstance(arg, dict) and len(arg) <= 64:
            _check_args(arg.values(), what)


def _bounded_items(iterable: Any, separator: int) -> list[Any]:
    """The items of something being joined, refused as soon as the joined text would pass MAX_RESULT."""
    items, total = [], 0
    for item in iterable:
        _step()
        total += (len(item) if isinstance(item, str) else 1) + separator
        if total > MAX_RESULT:
            _refuse(f"joining builds more than {MAX_RESULT:,} characters")
        items.append(item)
    return items


def _estimate(name: str, target: Any, args: tuple[Any, ...]) -> int:
    """Rough size of what a string-building function returns, computed before calling it."""
    if name == "replace" and isinstance(target, str) and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = target.count(args[0]) if args[0] else len(target) + 1
        return len(target) + count * max(0, len(args[1]) - len(args[0]))
    if name == "join":
        items = args[0] if target is None and args else args[0] if args else None
        sep = args[1] if target is None and len(args) > 1 else (target if isinstance(target, str) else "")
        if isinstance(items, (list, tuple)):
            return sum(_size(i) if isinstance(i, str) else 1 for i in items) + len(items) * _size(sep)
    if name == "indent" and isinstance(target, str) and args and isinstance(args[0], str):
        return len(target) + (target.count("\n") + 1) * len(args[0])
    if name == "expandtabs" and isinstance(target, str):
        width = args[0] if args and isinstance(args[0], int) else 8
        return len(target) + target.count("\t") * width
    return 0


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with budgets that hold whatever the construct: every loop iteration
    and call spends a step (a million per slot, 5 s of wall-clock); every operator, method, filter
    and format that builds a string or list is checked before (what it asks for) and after (what it
    built) against MAX_RESULT; powers are capped; a slot's output is counted as it streams."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//", "<<"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        parsed = super()._parse(source, name, filename)
        for node in parsed.find_all((nodes.Name, nodes.Macro)):  # `{% set __promptkit_loop__ = range %}` ...
            bound = getattr(node, "name", None)
            if bound in (_GUARD, _CONCAT):  # ... would swap the guards out: loops and '~' unbudgeted
                raise jinja2.TemplateSyntaxError(f"the name {bound!r} is reserved", node.lineno, name, filename)
        tree = _Guards().visit(parsed)
        assert isinstance(tree, nodes.Template)
        return tree

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _step()
        if operator_ == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1 \
                    and (right > 1_000_000 or abs(left).bit_length() * right > MAX_POWER_BITS):
                digits = abs(left).bit_length() * right * 0.30103
                _refuse(f"a power of about {digits:.3g} digits is too large a number")
            return operator.pow(left, right)
        if operator_ == "<<" and isinstance(right, int) and right > MAX_POWER_BITS:
            _refuse(f"shifting by {right} bits is too large a number")
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_RESULT:
                    _refuse(f"repeating a sequence {times} times builds more than {MAX_RESULT:,} items")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_POWER_BITS:
                _refuse("a product that large is too large a number")
        if operator_ == "%" and isinstance(left, str):
            _check_args((left, right), "'%' formatting")
        if operator_ == "+" and _size(left) + _size(right) > MAX_RESULT:
            _refuse(f"joining these builds more than {MAX_RESULT:,} characters or items")
        result = {"*": operator.mul, "+": operator.add, "%": operator.mod, "//": operator.floordiv,
                  "<<": operator.lshift}[operator_](left, right)
        return _check_result(result, f"'{operator_}'")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        _check_args(args, "a call")
        _check_args(kwargs.values(), "a call")
        inner = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        name = getattr(inner, "__name__", "")
        target = getattr(inner, "__self__", None)
        if isinstance(target, str) and name == "join" and args and not isinstance(args[0], str):
            args = (_bounded_items(args[0], len(target)), *args[1:])
        if isinstance(target, str) and _estimate(name, target, args) > MAX_RESULT:
            _refuse(f"'{name}' would build more than {MAX_RESULT:,} characters")
        if isinstance(target, str) and name in ("format", "format_map"):
            values = [*args, *kwargs.values(), *(args[0].values() if args and isinstance(args[0], dict) else ())]
            if _WIDTH.search(target) or any(isinstance(v, str) and v.isdigit() and len(v) >= 7 for v in values):
                _refuse("str.format: a width or precision of a million or more")
        return _check_result(super().call(__context, __obj, *args, **kwargs), f"'{name or 'a call'}'")


class _Guards(NodeTransformer):
    """Rewrites the parsed template so that the constructs the sandbox does not intercept spend
    budget too: `{% for x in ITER %}` iterates `__promptkit_loop__(ITER)`, and `a ~ b` becomes
    `__promptkit_concat__(a, b)`, which checks the joined length before joining."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name(_GUARD, "load"), [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.Name(_CONCAT, "load"), list(node.nodes), [], None, None, lineno=node.lineno)


def _guarded_concat(*parts: Any) -> str:
    texts = [p if isinstance(p, str) else str(p) for p in parts]
    if sum(map(len, texts)) > MAX_RESULT:
        _refuse(f"'~' builds more than {MAX_RESULT:,} characters")
    return "".join(texts)


def _guarded_loop(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks what it is asked to build (before) and what it built (after)."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _step()
        if name == "join":  # join(value, d='', attribute=None) after an eval context
            at = next(i for i, a in enumerate(args) if not isinstance(a, EvalContext))
            separator = args[at + 1] if len(args) > at + 1 else kwargs.get("d", "")
            if not isinstance(args[at], str):
                items = _bounded_items(args[at], len(separator) if isinstance(separator, str) else 0)
                args = (*args[:at], items, *args[at + 1:])
        plain = [a for a in args if not isinstance(a, (jinja2.runtime.Context, jinja2.Environment, EvalContext))]
        _check_args(plain[1:], f"filter '{name}'")
        _check_args(kwargs.values(), f"filter '{name}'")
        if plain and _estimate(name, plain[0] if name != "join" else None, tuple(plain) if name == "join" else
                               tuple(plain[1:])) > MAX_RESULT:
            _refuse(f"filter '{name}' would build more than {MAX_RESULT:,} characters")
        if name == "format" and plain and isinstance(plain[0], str) and _WIDTH.search(plain[0]):
            _refuse("filter 'format': a format width or precision of a million or more")
        return _check_result(function(*args, **kwargs), f"filter '{name}'")

    return guarded


def _finalize(value: Any) -> Any:
    """What `{{ value }}` prints: text and numbers, never a null or a Python repr of a list,
    mapping or object (which would reach the model as 'None' or "['a', 'b']")."""
    if value is None:
        raise ValueError("a value is null (None): give the field a value, or use {{ x or '' }}")
    if isinstance(value, (list, tuple, dict, set)):
        kind = "list" if isinstance(value, (list, tuple, set)) else "mapping"
        raise ValueError(f"printing a {kind} would show its Python form; use a loop, '|join(\", \")' or '|tojson'")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a value is {value}, not a number a prompt can show")
    if isinstance(value, bytes):
        raise ValueError("a value is binary data, not text")
    return value


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_finalize)
    env.globals.pop("lipsum", None)  # builds text of any size from one call
    env.globals[_GUARD] = _guarded_loop
    env.globals[_CONCAT] = _guarded_concat
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    return env


def render_limited(template: jinja2.Template, variables: dict[str, Any]) -> str:
    """Render within the step, time and output budgets, stopping as soon as one runs out."""
    _budget.steps = 0
    _budget.deadline = time.monotonic() + MAX_SECONDS
    pieces: list[str] = []
    total = 0
    with _alarm(MAX_SECONDS + 0.5):
        for piece in template.generate(**variables):
            total += len(piece)
            if total > MAX_RESULT:
                _refuse(f"the rendered text is longer than {MAX_RESULT:,} characters")
            if time.monotonic() > _budget.deadline:
                _refuse(f"rendering takes longer than {MAX_SECONDS:g} s")
            pieces.append(piece)
    return "".join(pieces)


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """A wall-clock backstop for work inside one filter or method (a slow pure-Python filter on a
    large text) that the step counter cannot see: SIGALRM, in the main thread only. An alarm that
    was already set (a test runner's) is put back, less the time spent."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        _refuse(f"rendering takes longer than {MAX_SECONDS:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, old_delay - (time.monotonic() - start)), old_interval)


def slot_where(source: str, slot: str, offset: int = 1) -> str:
    """'file:line' of line `offset` of a slot's template in a prompt file, or just the file."""

    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return source
    for loc in (("slots", slot), ("prompt", "slots", slot)):
        line = line_of(text, loc)
        if line is not None and loc[-1] == slot:
            # a block scalar (task: |) starts on the next line; an inline one on the key's line
            key_line = text.splitlines()[line - 1] if line - 1 < len(text.splitlines()) else ""
            block = key_line.rstrip().endswith(("|", "|-", "|+", ">", ">-", ">+"))
            return f"{source}:{line + (offset if block else 0)}"
    return source


@dataclass
class Rendered:
    """A prompt rendered for one example: plain text or chat messages, plus each part's text."""

    style: str
    text: str | None = None
    messages: list[dict[str, str]] | None = None
    parts: list[tuple[str, str]] = field(default_factory=list)  # (slot or "example N", text)

    def as_text(self) -> str:
        """A readable form of either style (chat as 'role: content' lines)."""
        if self.text is not None:
            return self.text
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages or [])


class Template:
    """One prompt's compiled slots. Compiling reports syntax errors with file, slot and line."""

    def __init__(self, spec: PromptSpec, source: str):
        self.spec = spec
        self.source = source
        self.slots: dict[str, jinja2.Template] = {}
        env = environment()
        for name in SLOT_ORDER:
            text = getattr(spec.slots, name)
            if text is None:
                continue
            try:
                self.slots[name] = env.from_string(text)
            except jinja2.TemplateSyntaxError as e:
                raise ConfigError(
                    f"template syntax error in slot '{name}' line {e.lineno}: {e.message}",
                    where=slot_where(source, name, e.lineno or 1),
                    hint="fix the Jinja syntax",
                ) from None
            except RecursionError:
                raise ConfigError(f"template in slot '{name}' is nested too deeply", where=slot_where(source, name)) from None

    def variables(self) -> set[str]:
        """Names the templates read from an example (the dataset fields they need)."""
        env = environment()
        names: set[str] = set()
        for name in SLOT_ORDER:
            text = getattr(self.spec.slots, name)
            if text is not None and name in self.slots:
                names |= meta.find_undeclared_variables(env.parse(text)) - {_GUARD, _CONCAT}
        return names

    def _render_slot(self, name: str, variables: dict[str, Any], what: str) -> str:
        try:
            return render_limited(self.slots[name], variables).strip()
        except jinja2.exceptions.SecurityError as e:
            raise ConfigError(f"unsafe template in slot '{name}': {e}", where=slot_where(self.source, name),
                              hint="templates may only read variables and use filters") from None
        except jinja2.UndefinedError as e:
            known = ", ".join(sorted(variables)) or "none"
            raise ConfigError(
                f"undefined variable in slot '{name}' rendering {what}: {e.message}",
                where=slot_where(self.source, name),
                hint=f"variables available: {known}",
            ) from None
        except RecursionError:
            raise ConfigError(f"template in slot '{name}' recurses without end", where=slot_where(self.source, name)) from None
        except MemoryError:
            raise ConfigError(f"template in slot '{name}' builds too much", where=slot_where(self.source, name)) from None
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
            raise ConfigError(f"cannot render slot '{name}' for {what}: {e}", where=slot_where(self.source, name)) from None

    def _selected(self, task: str) -> list[dict[str, Any]]:
        """Few-shot examples the version's selection rule picks for this input (see fewshot.py)."""
        if self.spec.fewshot is None:
            return []

        return select_examples(self.spec, lambda ex, what: self._render_slot("task", ex, what), task)

    def render(self, variables: dict[str, Any], what: str = "the example") -> Rendered:
        spec = self.spec
        head = [
            (name, self._render_slot(name, variables, what))
            for name in ("context", "instruction", "format")
            if name in self.slots
        ]
        head = [(n, t) for n, t in head if t]
        task = self._render_slot("task", variables, what)
        shots = []
        for i, example in enumerate(self._selected(task) + spec.examples):
            shot_input = self._render_slot("task", example, f"few-shot example {i}")
            shots.append((f"example {i + 1}", shot_input, spec.answer_of(_shot_output(example[OUTPUT_KEY], i, self.source))))

        if spec.style == "text":
            parts = head + [(name, f"{inp}{spec.prefix}{out}") for name, inp, out in shots] + [("task", task)]
            return Rendered("text", text="\n\n".join(t for _, t in parts), parts=parts)

        messages: list[dict[str, str]] = []
        if head:
            messages.append({"role": "system", "content": "\n\n".join(t for _, t in head)})
        parts = list(head)
        for name, inp, out in shots:
            messages += [{"role": "user", "content": inp}, {"role": "assistant", "content": out}]
            parts.append((name, f"{inp}\n{out}"))
        messages.append({"role": "user", "content": task})
        parts.append(("task", task))
        return Rendered("chat", messages=messages, parts=parts)


def _shot_output(value: Any, index: int, source: str) -> str:
    """A few-shot example's answer as text; refuses values that have no faithful text form."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict, bytes)) \
            or (isinstance(value, float) and not math.isfinite(value)):
        shown = "null" if value is None else type(value).__name__
        raise ConfigError(f"few-shot example {index}: its output is {shown}, not text or a number",
                          where=source, hint="write the answer as text")
    return str(value)
