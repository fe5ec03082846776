"""The built-in deterministic assertion types (promptfoo's names where they overlap)."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urldefrag, urljoin

import regex

from promptkit.assertions.base import AssertionType, Context, Outcome
from promptkit.config import load_yaml, read_text
from promptkit.errors import PromptkitError
from promptkit.library.render import environment, render_limited
from promptkit.registry import load_project_object
from promptkit.strict_json import loads_strict, unfence

SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
REGEX_SECONDS = 2.0  # one pattern search on one output: catastrophic backtracking fails that output, never hangs the run


@lru_cache(maxsize=256)
def _template(text: str) -> Any:
    # the prompts' sandbox, with its step, size and time budgets: a dataset row's `assert` is a template too
    return environment().from_string(text)


def render(value: str, row: dict[str, Any]) -> str:
    """A string value with {{ field }} of the dataset row filled in (plain strings pass through)."""
    if "{{" not in value and "{%" not in value:
        return value
    return render_limited(_template(value), row)


def _check_template(value: str) -> None:
    if "{{" in value or "{%" in value:
        from jinja2 import TemplateSyntaxError

        try:
            _template(value)
        except TemplateSyntaxError as e:
            raise ValueError(f"template error in {value!r}: {e.message}") from None


def _nfc(text: str) -> str:
    """Canonically equivalent text compares equal: 'é' typed as one code point or as 'e' + accent."""
    return unicodedata.normalize("NFC", text)


def _finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Strings(AssertionType):
    """Types whose value is one string or a list of strings."""

    def setup(self) -> None:
        value = self.spec.value
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{self.spec.type} needs a string or a list of strings as 'value'")
        self.values = [str(v) for v in values]
        for v in self.values:
            _check_template(v)

    def templates(self) -> list[str]:
        return self.values

    def wanted(self, ctx: Context) -> list[str]:
        return [_nfc(render(v, ctx.row)) for v in self.values]

    def found_and_missing(self, output: str, ctx: Context, fold: bool) -> tuple[list[str], list[str]]:
        """The wanted values the output contains and those it does not (ignoring case when `fold`)."""
        text = _nfc(output).casefold() if fold else _nfc(output)  # casefold: 'STRASSE' matches 'straße'
        found: list[str] = []
        missing: list[str] = []
        for v in self.wanted(ctx):
            (found if (v.casefold() if fold else v) in text else missing).append(v)
        return found, missing


_Kind = TypeVar("_Kind", bound=AssertionType)


def _variant(base: type[_Kind], class_name: str, name: str, description: str, **attributes: Any) -> type[_Kind]:
    """An assertion type that differs from `base` only in its name, its wording and class attributes
    (a flag, a unit, what it measures)."""
    namespace = {"name": name, "description": description, "__module__": __name__, "__qualname__": class_name}
    return type(class_name, (base,), {**namespace, **attributes})


class Contains(_Strings):
    name = "contains"
    description = "output contains the value (every value of a list)"
    fold = False

    def check(self, output: str, ctx: Context) -> Outcome:
        missing = self.found_and_missing(output, ctx, self.fold)[1]
        if missing:
            return Outcome(False, f"does not contain {missing[0]!r}")
        return Outcome(True, "contains " + ", ".join(repr(v) for v in self.wanted(ctx)))


IContains = _variant(Contains, "IContains", "icontains", "as contains, ignoring case", fold=True)


class ContainsAny(_Strings):
    name = "contains-any"
    description = "output contains at least one of the values"
    fold = False
    negate = False  # not-contains: passes when none is there

    def check(self, output: str, ctx: Context) -> Outcome:
        found = self.found_and_missing(output, ctx, self.fold)[0]
        return Outcome(bool(found) != self.negate, f"contains {found[0]!r}" if found else "contains none of the values")


NotContains = _variant(ContainsAny, "NotContains", "not-contains", "output contains none of the values", negate=True)


NotIContains = _variant(NotContains, "NotIContains", "not-icontains", "as not-contains, ignoring case", fold=True)


class Equals(_Strings):
    name = "equals"
    description = "output equals the value (surrounding whitespace ignored)"

    def check(self, output: str, ctx: Context) -> Outcome:
        wanted = self.wanted(ctx)
        if _nfc(output).strip() in (v.strip() for v in wanted):
            return Outcome(True, "equal")
        return Outcome(False, f"{_short(output)!r} is not {wanted[0]!r}")


class StartsWith(_Strings):
    name = "starts-with"
    description = "output (leading whitespace ignored) starts with the value"

    def check(self, output: str, ctx: Context) -> Outcome:
        wanted = self.wanted(ctx)
        if any(_nfc(output).lstrip().startswith(v) for v in wanted):
            return Outcome(True, "starts as expected")
        return Outcome(False, f"starts {_short(output, 20)!r}, not {wanted[0]!r}")


class Regex(AssertionType):
    name = "regex"
    description = "output matches the regular expression (Python syntax, searched anywhere)"
    negate = False

    def setup(self) -> None:
        if not isinstance(self.spec.value, str) or not self.spec.value:
            raise ValueError(f"{self.spec.type} needs a pattern string as 'value'")
        try:
            re.compile(self.spec.value)  # the documented syntax, and its error messages
            self.pattern = _compiled(self.spec.value)
        except (re.error, regex.error, OverflowError, RecursionError) as e:  # a{99999999999}, ((((...)))) nested too deeply
            raise ValueError(f"bad regular expression {_short(self.spec.value)!r}: {e}") from None

    def check(self, output: str, ctx: Context) -> Outcome:
        try:
            match = self.pattern.search(output, timeout=REGEX_SECONDS)
        except TimeoutError:
            return Outcome(False, _too_slow(f"the pattern {_short(self.spec.value, 40)!r}"))
        if self.negate:
            return Outcome(False, f"matches at {match.group(0)!r}") if match else Outcome(True, "no match")
        return Outcome(True, f"matches {match.group(0)!r}") if match else Outcome(False, "no match")


NotRegex = _variant(Regex, "NotRegex", "not-regex", "output does not match the regular expression", negate=True)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    """A pattern for the `regex` module (re's syntax, version 0), whose searches take a timeout."""
    return regex.compile(pattern)


def _too_slow(what: str) -> str:
    return f"{what} took over {REGEX_SECONDS:g} s on this output (catastrophic backtracking, e.g. (a+)+); simplify it"


class _NotJson(ValueError):
    pass


def parse_json(output: str) -> tuple[Any, str | None]:
    """The output as JSON (a ```json fence around it is allowed); (None, why) when it is not.
    Strict: NaN/Infinity are not JSON, and a key written twice leaves its value ambiguous."""
    try:
        return loads_strict(unfence(output), _NotJson, "key {key!r} appears twice in one object",
                            "{name} is not a JSON value"), None
    except json.JSONDecodeError as e:
        return None, f"not JSON: {e.msg} at column {e.colno}"
    except _NotJson as e:
        return None, f"not JSON: {e}"
    except RecursionError:
        return None, "not JSON: nested too deeply"


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """JSON schema's `pattern`, searched with the timeout of the regex assertion (jsonschema's own uses `re`)."""
    import jsonschema  # slow to import: only suites with a json-schema assertion pay for it

    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance, timeout=REGEX_SECONDS):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _external_ref(schema: Any) -> str | None:
    """The first `$ref` naming another document than this schema (a URL or a file), which is never
    fetched: a schema, or a dataset row's, must not make promptkit read URLs or local files."""
    ids: set[str] = set()
    refs: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$id", "id") and isinstance(value, str):
                    ids.add(urldefrag(value).url)
                elif key == "$ref" and isinstance(value, str):
                    refs.append(value)
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    for ref in refs:
        target = urldefrag(ref).url
        if target and target not in ids and not any(urljoin(i, target) in ids for i in ids) \
                and not target.startswith(("https://json-schema.org/", "http://json-schema.org/")):
            return ref
    return None


class IsJson(AssertionType):
    name = "is-json"
    description = "output is one JSON value (a ```json fence allowed)"

    def check(self, output: str, ctx: Context) -> Outcome:
        _, why = parse_json(output)
        return Outcome(False, why) if why else Outcome(True, "valid JSON")


class JsonSchema(AssertionType):
    name = "json-schema"
    description = "output is JSON valid under the schema (inline, or a .json/.yaml file relative to the suite)"

    def setup(self) -> None:
        import jsonschema  # slow to import: only suites with a json-schema assertion pay for it
        import referencing

        value = self.spec.value
        if isinstance(value, str):
            path = (self.folder / value).resolve()
            if not path.is_file():
                raise ValueError(f"schema file {value!r} not found (looked in {self.folder})")
            try:  # read_text: bounded in size, never a device or FIFO
                value = json.loads(read_text(path)) if path.suffix == ".json" else load_yaml(path)[0]
            except json.JSONDecodeError as e:
                raise ValueError(f"schema file {value!r} is not valid JSON: {e}") from None
            except RecursionError:
                raise ValueError(f"schema file {value!r} is nested too deeply") from None
            except PromptkitError as e:
                raise ValueError(f"schema file: {e}") from None
        if not isinstance(value, dict):
            raise ValueError("json-schema needs a schema mapping or a schema file path as 'value'")
        if not isinstance(value.get("$schema", ""), str):  # jsonschema would fail with a TypeError
            raise ValueError("'$schema' must be the URI of a draft, e.g. "
                             "https://json-schema.org/draft/2020-12/schema")
        external = _external_ref(value)
        if external is not None:
            raise ValueError(f"$ref {external!r} names another document, which is not fetched; "
                             "put the definition under '$defs' and refer to it as '#/$defs/NAME'")
        try:
            cls = jsonschema.validators.validator_for(value)
            cls.check_schema(value)
        except jsonschema.SchemaError as e:
            where = "/".join(str(p) for p in e.path) or "top level"
            raise ValueError(f"invalid JSON schema at {where}: {e.message}") from None
        except RecursionError:
            raise ValueError("the JSON schema is nested too deeply") from None
        cls = jsonschema.validators.extend(cls, {"pattern": _pattern_keyword})
        self.validator = cls(value, registry=referencing.Registry())  # an empty registry: no $ref is ever fetched

    def check(self, output: str, ctx: Context) -> Outcome:
        data, why = parse_json(output)
        if why:
            return Outcome(False, why)
        try:
            errors = list(self.validator.iter_errors(data))
        except TimeoutError:
            return Outcome(False, "schema: " + _too_slow("a 'pattern' of the schema"))
        except RecursionError:
            return Outcome(False, "schema: its $refs loop without end (e.g. {$ref: '#'} at the top); fix the schema")
        error = next(iter(sorted(errors, key=lambda e: list(e.path))), None)
        if error is None:
            return Outcome(True, "matches the schema")
        where = "/".join(str(p) for p in error.path) or "top level"
        return Outcome(False, f"schema: {where}: {_short(error.message, 100)}")


class _Bounds(AssertionType):
    """Types whose value is {min: N, max: M} (either may be left out) or a number (the maximum)."""

    unit = ""
    measure: Callable[[str], float]  # the output's size in `unit`

    def setup(self) -> None:
        value = self.spec.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = {"max": value}
        if not isinstance(value, dict) or not value or set(value) - {"min", "max"} or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
            raise ValueError(f"{self.spec.type} needs 'value: {{min: N, max: M}}' (either bound may be left out)")
        for key, bound in value.items():  # .nan would pass every output, .inf or a negative one fail or pass them all
            number = _finite(bound)
            if number is None or number < 0:
                raise ValueError(f"{self.spec.type}: {key} {bound} is not a finite number >= 0")
        self.low, self.high = value.get("min"), value.get("max")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{self.spec.type}: min {self.low} is above max {self.high}")

    def check(self, output: str, ctx: Context) -> Outcome:
        n = self.measure(output)
        if self.low is not None and n < self.low:
            return Outcome(False, f"{n:g} {self.unit}, under the minimum {self.low:g}")
        if self.high is not None and n > self.high:
            return Outcome(False, f"{n:g} {self.unit}, over the maximum {self.high:g}")
        return Outcome(True, f"{n:g} {self.unit}")


class _Limit(AssertionType):
    uses_threshold = True
    unit = ""
    measure: Callable[[Context], float]  # what the model call spent, in `unit`

    def setup(self) -> None:
        limit = _finite(self.spec.threshold if self.spec.threshold is not None else self.spec.value)
        if limit is None or limit < 0:  # `value: .nan` would fail every output
            raise ValueError(f"{self.spec.type} needs a finite non-negative number as 'threshold'")
        self.limit = limit

    def check(self, output: str, ctx: Context) -> Outcome:
        value = self.measure(ctx)
        ok = value <= self.limit
        return Outcome(ok, f"{value:.4g} {self.unit} {'within' if ok else 'over'} the limit {self.limit:g}")


def _sentences(output: str) -> float:
    text = output.strip()
    if not text:
        return 0
    ends = len(SENTENCE_END.findall(text))
    return ends + (0 if SENTENCE_END.search(text[-1] + " ") else 1)


Length = _variant(_Bounds, "Length", "length", "characters of the output (stripped) within {min, max}",
                  unit="characters", measure=staticmethod(lambda output: len(output.strip())))
WordCount = _variant(_Bounds, "WordCount", "word-count", "words of the output within {min, max}",
                     unit="words", measure=staticmethod(lambda output: len(output.split())))
SentenceCount = _variant(_Bounds, "SentenceCount", "sentence-count",
                         "sentences (ending in . ! or ?, a last unterminated one counts) within {min, max}",
                         unit="sentences", measure=staticmethod(_sentences))
Latency = _variant(_Limit, "Latency", "latency", "the model call took at most `threshold` seconds",
                   unit="s", measure=staticmethod(lambda ctx: ctx.result.latency))
Cost = _variant(_Limit, "Cost", "cost", "the model call cost at most `threshold` dollars",
                unit="$", measure=staticmethod(lambda ctx: ctx.result.cost))


class Python(AssertionType):
    uses_threshold = True
    name = "python"
    description = "module:function from the project folder gets (output, row) and returns pass/score/reason"

    def setup(self) -> None:
        if not isinstance(self.spec.value, str):
            raise ValueError("python needs 'value: module:function' (a .py file in the project folder)")
        try:
            self.function = load_project_object(self.root, self.spec.value, "", "python assertion")
        except PromptkitError as e:
            raise ValueError(e.message + (f" ({e.hint})" if e.hint else "")) from None
        if not callable(self.function):
            raise ValueError(f"{self.spec.value} is not a function")

    def check(self, output: str, ctx: Context) -> Outcome:
        try:
            answer = self.function(output, ctx.row)
        except Exception as e:  # noqa: BLE001 - the user's code failing on one output is that output's failure
            return Outcome(False, f"{self.spec.value} raised {type(e).__name__}: {_short(str(e), 80)}")
        return self.outcome(answer)

    def outcome(self, answer: Any) -> Outcome:
        """bool; a number (a score, passing at `threshold`, default 0.5); or {pass, score, reason}."""
        pass_mark = self.spec.threshold if self.spec.threshold is not None else 0.5
        if isinstance(answer, bool):
            return Outcome(answer, f"{self.spec.value} returned {answer}")
        # a NaN or infinite score would poison assert_score; a string 'pass' ("false") is truthy
        if isinstance(answer, (int, float)):
            score = _finite(answer)
            if score is None:
                return Outcome(False, f"{self.spec.value} returned {_short(repr(answer), 40)}, not a finite score", 0.0)
            return Outcome(score >= pass_mark, f"score {score:g} (pass at {pass_mark:g})", score)
        if isinstance(answer, dict) and ("pass" in answer or "score" in answer):
            score = _finite(answer.get("score"))
            if answer.get("score") is not None and score is None:
                return Outcome(False, f"{self.spec.value} returned score={_short(repr(answer['score']), 40)}, "
                                      "not a finite number", 0.0)
            if "pass" in answer and not isinstance(answer["pass"], bool):
                return Outcome(False, f"{self.spec.value} returned pass={_short(repr(answer['pass']), 40)}, "
                                      "not True or False", 0.0)
            passed = answer["pass"] if "pass" in answer else (score is not None and score >= pass_mark)
            return Outcome(passed, str(answer.get("reason") or f"{self.spec.value} returned pass={passed}"), score)
        return Outcome(False, f"{self.spec.value} returned {type(answer).__name__}; "
                              "expected bool, a number or {pass, score, reason}")
