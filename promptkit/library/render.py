"""Render a prompt version for one example: sandboxed Jinja, undefined variables are errors."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptkit.errors import ConfigError
from promptkit.library.spec import OUTPUT_KEY, SLOT_ORDER, PromptSpec

MAX_RESULT = 1_000_000  # longest string or list one template expression may build
MAX_POWER_BITS = 1_000_000  # largest integer `**` may build (about 300,000 digits)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus caps on `*` and `**` so that a template cannot build a
    gigabyte string (`'a' * 10**9`) or a number that takes forever (`10**10**9`)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1 \
                    and (right > 1_000_000 or abs(left).bit_length() * right > MAX_POWER_BITS):
                digits = abs(left).bit_length() * right * 0.30103
                raise jinja2.exceptions.SecurityError(f"a power of about {digits:.3g} digits is too large a number")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_RESULT:
                raise jinja2.exceptions.SecurityError(f"repeating a sequence {times} times builds more than {MAX_RESULT} items")
        return operator.mul(left, right)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    return _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


def slot_where(source: str, slot: str, offset: int = 1) -> str:
    """'file:line' of line `offset` of a slot's template in a prompt file, or just the file."""
    from promptkit.config import line_of

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
                names |= meta.find_undeclared_variables(env.parse(text))
        return names

    def _render_slot(self, name: str, variables: dict[str, Any], what: str) -> str:
        try:
            return self.slots[name].render(**variables).strip()
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
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
            raise ConfigError(f"cannot render slot '{name}' for {what}: {e}", where=slot_where(self.source, name)) from None

    def _selected(self, task: str) -> list[dict[str, Any]]:
        """Few-shot examples the version's selection rule picks for this input (see fewshot.py)."""
        if self.spec.fewshot is None:
            return []
        from promptkit.library.fewshot import select_examples

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
            shots.append((f"example {i + 1}", shot_input, spec.answer_of(str(example[OUTPUT_KEY]))))

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
