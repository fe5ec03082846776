"""`promptkit lint`: check every prompt and suite without running a model, in seconds.

Schema, template variables against the suite's dataset fields (and the dataset's columns),
few-shot examples against the template, the context window, label sets whose labels share
their first token, and generation prompts without a stop sequence. Each finding names the file
and the line."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2 import nodes

from promptkit.config import line_of, read_text
from promptkit.data import read_rows
from promptkit.errors import ConfigError, NotFoundError, PromptkitError
from promptkit.evaluate import check_suite_options
from promptkit.library import PromptFolder, PromptVersion
from promptkit.library.render import environment
from promptkit.library.spec import OUTPUT_KEY, SLOT_ORDER
from promptkit.metrics import metrics
from promptkit.models import DEFAULT_MODEL, embedded_model_path, resolve_model
from promptkit.project import Project, Suite

# Context windows of models whose config cannot be read without converting them first.
KNOWN_WINDOWS = {"SmolLM2-135M-Instruct": 8192}
SCORING_MARGIN = 8  # tokens a scored label needs after the prompt


@dataclass
class Finding:
    where: str  # file or file:line
    code: str  # schema, undefined-variable, missing-field, context-window, label-prefix, no-stop, ...
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.code}: {self.message}" + (f" ({self.hint})" if self.hint else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _at(path: Path, text: str | None, *loc: str | int) -> str:
    line = line_of(text, tuple(loc)) if text else None
    return f"{path}:{line}" if line else str(path)


def _from_error(e: PromptkitError, code: str = "schema") -> Finding:
    return Finding(e.where or "", code, e.message, e.hint)


# -- tokens and windows without loading a model -----------------------------------------------

class TokenCounter:
    """The model's tokenizer when it is on disk (tokenizer.json, read by `tokenizers`, no torch),
    else an estimate of 4 characters a token; the context window from config.json or KNOWN_WINDOWS."""

    def __init__(self, folder: Path | None, window: int | None):
        self.tokenizer: Any = None
        self.window = window
        if folder is not None and (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            try:
                self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception for a damaged file
                raise ConfigError(f"cannot read the tokenizer: {e}", where=str(folder / "tokenizer.json"),
                                  hint="restore the model folder, or point the suite at another model") from None
        if folder is not None and (folder / "config.json").is_file():
            try:
                config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                config = None
            window = config.get("max_position_embeddings") if isinstance(config, dict) else None
            if isinstance(window, int) and not isinstance(window, bool) and window > 0:  # not "lots", 1e999, -1
                self.window = window

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def ids(self, text: str) -> list[Any]:
        if self.tokenizer is not None:
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        return text.split()  # a word stands in for a token

    def count(self, text: str) -> int:
        return len(self.ids(text)) if self.tokenizer is not None else max(1, len(text) // 4)


def _cache_dir() -> Path:
    base = os.environ.get("PROMPTKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "promptkit")
    return Path(base)


@lru_cache(maxsize=16)
def token_counter(provider: str, model: str) -> TokenCounter:
    if provider != "hf":
        return TokenCounter(None, None)
    gguf: Path | None = None
    if model.startswith("embedded:"):
        try:
            gguf = embedded_model_path(model)
        except PromptkitError:
            return TokenCounter(None, None)
    elif model.endswith(".gguf"):
        gguf = Path(model).expanduser()
    if gguf is None:
        return TokenCounter(Path(model).expanduser(), None)
    window = next((w for name, w in KNOWN_WINDOWS.items() if gguf.name.startswith(name)), None)
    converted = sorted((_cache_dir() / "models").glob(f"{gguf.stem}-*/tokenizer.json"))
    return TokenCounter(converted[0].parent if converted else None, window)


# -- checks --------------------------------------------------------------------------------

def _first_line(text: str | None, *loc: str) -> int | None:
    """1-based line where the string value at key path `loc` starts (its first content line for a block)."""
    if not text:
        return None
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((value for key, value in node.value if key.value == part), None)
        if node is None:
            return None
    return int(node.start_mark.line) + (2 if getattr(node, "style", None) in ("|", ">") else 1)


def _variable_lines(version: PromptVersion, text: str | None) -> dict[str, str]:
    """variable -> file:line of its first use in a slot."""
    env = environment()
    where: dict[str, str] = {}
    for slot in SLOT_ORDER:
        source = getattr(version.spec.slots, slot)
        if source is None:
            continue
        first = _first_line(text, "slots", slot)
        base = first - 1 if first else None
        try:
            tree = env.parse(source)
        except jinja2.TemplateSyntaxError:
            continue
        for name in tree.find_all(nodes.Name):
            if name.ctx == "load" and name.name not in where:
                line = (base + name.lineno) if base else None
                where[name.name] = f"{version.source}:{line}" if line else str(version.source)
    return where


def lint_prompt(version: PromptVersion, counter: TokenCounter | None = None) -> list[Finding]:
    """Checks that need only the prompt: few-shot examples against the template, labels, stop."""
    findings: list[Finding] = []
    text = read_text(version.source)
    spec = version.spec
    variables = version.template.variables()
    for i, example in enumerate(spec.examples):
        missing = sorted(variables - set(example) - {OUTPUT_KEY})
        if missing:
            findings.append(Finding(_at(version.source, text, "examples", i), "undefined-variable",
                                    f"few-shot example {i} has no value for template variable {missing[0]!r}",
                                    f"add '{missing[0]}:' to the example"))
    if spec.labels and counter is not None:
        firsts: dict[Any, str] = {}
        for label in spec.labels:
            ids = counter.ids(spec.prefix + label)
            if not ids:
                continue
            first = ids[0]
            if first in firsts:
                how = "token" if counter.exact else "word"
                findings.append(Finding(
                    _at(version.source, text, "labels"), "label-prefix",
                    f"labels {firsts[first]!r} and {label!r} share their first {how}",
                    "a model that answers by generating cannot tell them apart from the first token; "
                    "rename one, or score by log-likelihood"))
            else:
                firsts[first] = label
    if not spec.labels and not spec.settings.stop:
        findings.append(Finding(_at(version.source, text, "settings") if "settings" in (text or "") else str(version.source),
                                "no-stop", "generation prompt without a stop sequence: answers run to max_tokens",
                                "add settings.stop, e.g. [\"\\n\"]"))
    return findings


def _longest_rows(rows: list[dict[str, Any]], fields: dict[str, str], k: int = 3) -> list[dict[str, Any]]:
    def size(row: dict[str, Any]) -> int:
        return sum(len(str(row.get(column, ""))) for column in fields.values())

    return sorted(rows, key=size, reverse=True)[:k]


def lint_suite(project: Project, suite: Suite) -> list[Finding]:

    findings: list[Finding] = []
    cfg = suite.config
    text = read_text(suite.path)
    try:
        folder, _ = project.library.folder(cfg.prompt)
        version = folder.working() if folder.working_file.is_file() else folder.resolve(None)
    except NotFoundError as e:
        return [Finding(_at(suite.path, text, "prompt"), "unknown-prompt", e.message, e.hint)]
    except PromptkitError as e:
        return [_from_error(e)]
    if cfg.prompt != folder.name:  # 'a@v2' or 'prompts/a': suite_for matches names only, check ignores '@v2'
        findings.append(Finding(_at(suite.path, text, "prompt"), "schema",
                                f"suite names prompt {cfg.prompt!r}, not its name: eval and status find a prompt's "
                                "suite by name" + (", and check ignores the '@...' part" if "@" in cfg.prompt else ""),
                                f"write 'prompt: {folder.name}'"))
    prompt_text = read_text(version.source)
    task = cfg.task or ("classification" if version.spec.labels else "generation")
    if task == "classification" and not version.spec.labels:
        findings.append(Finding(_at(suite.path, text, "task"), "schema", "classification suite but the prompt has no labels",
                                f"add labels to {version.source}"))
    if task == "classification" and cfg.dataset.target is None:
        findings.append(Finding(_at(suite.path, text, "dataset", "target"), "schema",
                                "classification suite without a target column: every prediction would count as wrong",
                                "set dataset.target to the column holding each row's label"))
    for name in cfg.metrics or []:
        if isinstance(name, str) and name not in metrics:  # custom {name, class} entries load at eval time
            findings.append(Finding(_at(suite.path, text, "metrics"), "unknown-metric", f"unknown metric {name!r}",
                                    f"known: {', '.join(metrics.names())}"))
    model = None
    try:
        model = resolve_model(cfg.model or version.spec.settings.model or DEFAULT_MODEL, project.models)
    except PromptkitError as e:
        findings.append(Finding(_at(suite.path, text, "model"), "unknown-model", e.message, e.hint))
    if model is not None:
        try:
            check_suite_options(suite, model)
        except PromptkitError as e:
            findings.append(_from_error(e))

    # template variables against the suite's field mapping
    variables = version.template.variables()
    var_where = _variable_lines(version, prompt_text)
    fields = cfg.dataset.fields if cfg.dataset.fields is not None else {v: v for v in sorted(variables)}
    for var in sorted(variables - set(fields)):
        findings.append(Finding(var_where.get(var, str(version.source)), "undefined-variable",
                                f"template variable {var!r} is not defined by suite {suite.name}'s dataset.fields",
                                f"map it in {suite.path} or fix the template; defined: {', '.join(fields) or 'none'}"))

    # the dataset's columns
    data_path = suite.dataset_path()
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        numbered = read_rows(data_path)
        rows, lines = [row for _, row in numbered], [line for line, _ in numbered]
    except PromptkitError as e:
        if data_path.is_file():  # a problem inside the data: its own file:line
            findings.append(Finding(e.where or _at(suite.path, text, "dataset", "path"), "dataset", e.message, e.hint))
        else:  # missing, a FIFO, a device: the suite line naming it is what to fix
            findings.append(Finding(_at(suite.path, text, "dataset", "path"), "dataset", f"{data_path}: {e.message}",
                                    "fix dataset.path (relative to the suite file)"))
    if rows:
        for var, column in fields.items():
            lacking = [i for i, row in enumerate(rows) if column not in row]
            if lacking:
                place = (_at(suite.path, text, "dataset", "fields", var) if cfg.dataset.fields is not None
                         else var_where.get(var, str(version.source)))
                findings.append(Finding(place, "missing-field",
                                        f"dataset field {column!r} (variable {var!r}) is missing from {len(lacking)} of "
                                        f"{len(rows)} rows of {data_path}, first at line {lines[lacking[0]]}",
                                        f"columns there: {', '.join(map(str, rows[lacking[0]])) or 'none'}"))
        for key, col in (("target", cfg.dataset.target), ("split_field", cfg.dataset.split_field)):
            if col and not any(col in row for row in rows):
                findings.append(Finding(_at(suite.path, text, "dataset", key), "missing-field",
                                        f"dataset {data_path.name} has no column {col!r} ({key})"))
        target = cfg.dataset.target
        if task == "classification" and version.spec.labels and target:
            unknown = sorted({str(r[target]) for r in rows if r.get(target) is not None} - set(version.spec.labels))
            if unknown:
                first = next(lines[i] for i, r in enumerate(rows) if r.get(target) is not None
                             and str(r[target]) in unknown)
                shown = ", ".join(repr(t) for t in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
                findings.append(Finding(_at(version.source, prompt_text, "labels"), "unknown-target",
                                        f"dataset targets {shown} of {data_path} (first at line {first}) are not in "
                                        f"the labels {version.spec.labels}",
                                        "make the labels match the dataset's target values"))
        if cfg.split and cfg.dataset.split_field and any(cfg.dataset.split_field in r for r in rows) \
                and not any(str(r.get(cfg.dataset.split_field)) == cfg.split for r in rows):
            findings.append(Finding(_at(suite.path, text, "split"), "missing-split", f"no rows in split {cfg.split!r}"))

    counter = None
    if model is not None:
        try:
            counter = token_counter(model.provider, model.model)
        except PromptkitError as e:
            findings.append(_from_error(e, "model"))
    findings += lint_prompt(version, counter)
    if task == "classification" and cfg.scoring == "generate" and not version.spec.settings.stop:
        findings.append(Finding(_at(suite.path, text, "scoring"), "no-stop",
                                "classification by generated text without a stop sequence", "add settings.stop"))

    # context window: the longest rows rendered with every few-shot example
    if counter is not None and counter.window and rows and not (variables - set(fields)):
        needed_out = version.spec.settings.max_tokens if task == "generation" else SCORING_MARGIN
        for row in _longest_rows(rows, fields):
            if any(column not in row for column in fields.values()):
                continue
            try:
                rendered = version.template.render({v: row[c] for v, c in fields.items()})
            except PromptkitError as e:
                findings.append(_from_error(e, "render"))
                break
            body = rendered.as_text()
            tokens = counter.count(body) + needed_out
            if tokens > counter.window:
                how = "" if counter.exact else "about "
                findings.append(Finding(_at(version.source, prompt_text, "slots"), "context-window",
                                        f"the prompt with its longest example needs {how}{tokens} tokens; "
                                        f"{model.spec if model else 'the model'} holds {counter.window}",
                                        "shorten the slots or few-shot examples, or use a longer-context model"))
                break
    return findings


def lint_project(project: Project) -> list[Finding]:
    """Every prompt folder and every suite of a project."""
    findings: list[Finding] = []
    suite_prompts: set[str] = set()
    suites: list[Suite] = []
    if project.evals_dir.is_dir():
        for path in sorted(project.evals_dir.glob("*.yaml")):
            try:
                suites.append(Suite.load(path))
            except PromptkitError as e:
                findings.append(_from_error(e))
        for path in sorted(project.evals_dir.glob("*.yml")):  # a suite eval and check would never run
            findings.append(Finding(str(path), "ignored-file", "suite files end in .yaml: eval, check and lint skip this one",
                                    f"rename it to {path.stem}.yaml"))
    for suite in suites:
        suite_prompts.add(suite.config.prompt)
        try:
            findings += lint_suite(project, suite)
        except PromptkitError as e:
            findings.append(_from_error(e))
    root = project.library.root
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for path in folders:
        folder = PromptFolder(path)
        if os.path.lexists(folder.working_file) and not folder.working_file.is_file():
            # a FIFO, device, folder or broken symlink as prompt.yaml: every command says "unknown prompt"
            try:
                read_text(folder.working_file)
            except PromptkitError as e:
                findings.append(_from_error(e))
                continue
        if not folder.exists():
            continue
        try:
            working = folder.working() if folder.working_file.is_file() else None
            folder.versions()
            labels = folder.labels()
        except PromptkitError as e:
            findings.append(_from_error(e))
            continue
        for label in labels:  # a label naming a version that is not published fails every ref using it
            try:
                folder.resolve(label)
            except PromptkitError as e:
                findings.append(_from_error(e))
        if working is not None and folder.name not in suite_prompts:
            model = working.spec.settings.model
            counter = None
            if model:
                try:
                    ref = resolve_model(model, project.models)
                except PromptkitError as e:
                    findings.append(Finding(_at(working.source, read_text(working.source), "settings", "model"),
                                            "unknown-model", e.message, e.hint))
                else:
                    try:
                        counter = token_counter(ref.provider, ref.model)
                    except PromptkitError as e:
                        findings.append(_from_error(e, "model"))
            findings += lint_prompt(working, counter)
    unique = list(dict.fromkeys((f.where, f.code, f.message, f.hint) for f in findings))
    return [Finding(*u) for u in unique]
