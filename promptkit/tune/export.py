"""`promptkit tune export NAME --out DIR`: a tuned adapter as a folder other tools load.

With --merge, the adapter is folded into the base weights (peft merge_and_unload) and DIR is a plain
transformers folder (config, safetensors, tokenizer) that AutoModelForCausalLM, `promptkit serve --model
hf:DIR` and OpenAI-compatible engines that read transformers folders load. Without it, DIR holds the
peft adapter files. Soft-prompt adapters (prompt/prefix tuning) add virtual tokens and have no weights
to merge. A full fine-tune (`--method full`) is already a plain transformers folder: it is copied, with or
without --merge. The folder is written next to DIR and renamed into place, so DIR is never half written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from promptkit.config import read_text
from promptkit.errors import ConfigError
from promptkit.models import resolve_model
from promptkit.providers.factory import open_provider
from promptkit.tune.lora import quiet_libraries

EXPORT_INFO = "promptkit-export.json"


def adapter_of(project: Any, name: str) -> tuple[Any, Path, dict[str, Any]]:
    """(ModelRef of the base, adapter folder, adapter_config) of a registered tuned model."""

    ref = resolve_model(name, project.models)
    adapter = ref.options.get("adapter")
    if ref.provider != "hf" or not adapter:
        raise ConfigError(f"{name!r} is not a local adapter (provider {ref.provider})",
                          hint="export a model trained with `promptkit tune --backend lora`")
    folder = Path(str(adapter))
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise ConfigError("the adapter folder has no adapter_config.json", where=str(folder),
                          hint="train it again with `promptkit tune`")
    try:
        config = json.loads(read_text(config_path))
    except (json.JSONDecodeError, RecursionError):
        config = None
    if not isinstance(config, dict):
        raise ConfigError("adapter_config.json is not a JSON object (a damaged adapter)", where=str(config_path),
                          hint="train it again with `promptkit tune ... --overwrite`")
    return ref, folder, config


def full_model_of(project: Any, name: str) -> Path | None:
    """The model folder of NAME when `tune --method full` registered it (no adapter: every weight trained)."""
    entry = project.models.entries().get(name)
    if not (isinstance(entry, dict) and entry.get("method") == "full" and entry.get("provider") == "hf"
            and not entry.get("adapter")):
        return None
    folder = Path(str(entry.get("model")))
    if not (folder / "config.json").is_file():
        raise ConfigError("the tuned model's folder has no config.json", where=str(folder),
                          hint="train it again with `promptkit tune ... --method full --overwrite`")
    return folder


def _check_target(out: Path, folder: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError("the export target exists and is not a folder", where=str(out),
                          hint="choose a folder with --out")
    # the export replaces OUT whole (with --force): OUT must not be, hold or sit inside the adapter it reads
    source, real = folder.resolve(), out.resolve()
    if real == source or source in real.parents or real in source.parents:
        how = "is" if real == source else "is inside" if source in real.parents else "holds"
        raise ConfigError(f"the export folder {how} the adapter folder it exports", where=str(out),
                          hint=f"choose an --out outside {source}")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError("the export folder is not empty", where=str(out), hint="choose another --out, or pass --force")


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace OUT with TMP: the old folder is moved aside first and removed last."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def export_model(project: Any, name: str, out: Path, merge: bool = False, force: bool = False) -> dict[str, Any]:
    """Write NAME's adapter (or the merged model with MERGE) to OUT; returns what was written."""

    full = full_model_of(project, name)
    if full is not None:
        base_model, folder, peft_type = project.models.entries()[name].get("base_model"), full, "FULL"
    else:
        ref, folder, config = adapter_of(project, name)
        base_model, peft_type = ref.model, str(config.get("peft_type", ""))
    if merge and peft_type in ("PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING"):
        raise ConfigError(f"{name!r} is a {peft_type.lower().replace('_', '-')} adapter: its virtual tokens have no "
                          "weights to merge", hint=f"export it without --merge, or serve it with --model {name}")
    out = Path(os.path.abspath(out))  # '.' or 'x/..' have no name to write next to
    _check_target(out, folder, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    info = {"name": name, "base_model": base_model, "adapter": str(folder), "peft_type": peft_type,
            "merged": merge or full is not None}
    try:
        if full is not None:  # already a plain model: its files, not its training data or checkpoint
            for path in folder.iterdir():
                if path.is_file():
                    shutil.copy2(path, tmp / path.name)
        elif merge:
            import torch

            quiet_libraries()
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            base: Any = open_provider(ref, project)
            source = str(base.model_source())
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
            merged = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
            merged.save_pretrained(str(tmp))
            base.tokenizer.save_pretrained(str(tmp))
        else:
            for path in folder.iterdir():
                if path.is_file() and (path.name.startswith("adapter_") or path.name in ("manifest.json", "training.json")):
                    shutil.copy2(path, tmp / path.name)
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**info, "out": str(out)}
