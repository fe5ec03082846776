"""The hf provider's files: GGUF conversion to a plain HF folder (once, cached) and the model's identity
(weights fingerprints, adapter hash), computed from files only, without loading a model."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptkit.device import cache_dir
from promptkit.models import embedded_model_path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def converted_gguf(gguf: Path) -> Path:
    """A GGUF file converted once to a plain HF folder: loading it then takes a fraction of a second
    instead of ~20 s of de-quantizing."""
    stat = gguf.stat()
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # inode and ctime too: a GGUF replaced by another of the same size with its mtime kept (cp -p, rsync -a)
    # must not be served the old file's conversion
    key = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}|{stat.st_ctime_ns}|{transformers.__version__}"
    target = cache_dir() / "models" / f"{gguf.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (target / "config.json").is_file():
        return target
    import contextlib
    import io
    import sys

    from transformers.utils import logging as hf_logging

    print(f"promptkit: converting {gguf.name} once for fast loading (about 20 s)...", file=sys.stderr)
    hf_logging.disable_progress_bar()  # the writer draws a progress bar of its own
    with contextlib.redirect_stderr(io.StringIO()):  # the GGUF reader draws its own progress bar
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The de-quantized weights are plain fp32 tensors; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    _save_atomically(target, model, tokenizer)
    return target


def _save_atomically(target: Path, *parts: Any) -> None:
    """Save `parts` (a model, a tokenizer) into a temporary folder beside `target`, then move it in place."""
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        for part in parts:
            part.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def weights_signature(paths: Sequence[Path]) -> list[list[Any]]:
    """Large weight files by name, size and modification time (hashing 500 MB per run costs seconds)."""
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


# what `promptkit tune` writes beside a tuned model's files about its training: rewritten after the
# tune's own eval, it is not the model, and counting it would miss the cache for the same weights
BOOKKEEPING = frozenset({"manifest.json", "training.json", "compare.json", "promptkit-export.json"})


def _model_files(folder: Path, suffix: str | None = None) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name not in BOOKKEEPING
                  and (suffix is None or p.suffix == suffix))


def files_identity(model: str, adapter: Any) -> dict[str, Any]:
    """The model's weights and config and the adapter's files, as fingerprints (raises OSError)."""
    ident: dict[str, Any] = {}
    if model.startswith("embedded:"):
        ident["weights"] = weights_signature([embedded_model_path(model)])
    else:
        path = Path(model).expanduser()
        if path.is_file():
            ident["weights"] = weights_signature([path])
        elif path.is_dir():
            ident["config"] = digest(_model_files(path, ".json"))
            ident["weights"] = weights_signature(sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES))
    if adapter:
        folder = Path(str(adapter)).expanduser()
        files = _model_files(folder) if folder.is_dir() else []
        ident["adapter"] = {"path": str(folder), "hash": digest(files) if files else None}
    return ident


def in_dtype(folder: Path, dtype: str) -> Path:
    """A converted folder's weights saved once more in `dtype` (bf16: half the bytes to read and to keep in
    memory, as the fp32 file is memory-mapped while it is cast). Only for folders this module converted;
    the tokenizer stays in the original folder."""
    models = cache_dir() / "models"
    if dtype == "float32" or folder.resolve().parent != models.resolve():
        return folder
    target = folder.parent / f"{folder.name}-{dtype}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype))
    _save_atomically(target, model)
    return target
