"""Hostile inputs to local models (hf:DIR, a .gguf, adapters, models.yaml, dtype/device): every one is a
ConfigError line naming the file (exit 2), never an internal error, never a hang. Tiny random models only."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

from promptkit.errors import ConfigError
from promptkit.results import Request
from tests.helpers.cli import cli_env, run_cli
from tests.helpers.tiny_model import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _copy(tiny: Path, where: Path) -> Path:
    shutil.copytree(tiny, where)
    return where


def _load(model: str, **options: Any) -> None:
    from promptkit.providers.hf import HFProvider

    HFProvider(model, dtype="float32", **options).complete([Request(id="1", text="hi", labels=["positive", "negative"])])


def test_a_fifo_or_a_device_as_the_model_is_refused_not_read_forever(tmp_path: Path) -> None:
    """A FIFO or a link to /dev/zero given as the .gguf (or the adapter) was fingerprinted for the cache
    key by reading it to its end: `promptkit eval` hung forever before any error."""
    from promptkit.cache import ResponseCache, provider_identity
    from promptkit.providers.hf import HFProvider

    fifo, zero = tmp_path / "fifo.gguf", tmp_path / "zero.gguf"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    cache = ResponseCache(tmp_path / "cache.sqlite")
    for path in (fifo, zero):
        provider = HFProvider(str(path), dtype="float32", adapter=str(fifo))
        # in a thread, so that the old behaviour fails the test instead of hanging it
        worker = threading.Thread(target=provider_identity, args=(provider, cache), daemon=True)
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the cache key read a FIFO or a device"
        with pytest.raises(ConfigError, match="not a regular file") as info:
            provider.model_source()
        assert info.value.where == str(path)


def test_a_fifo_inside_a_model_folder_is_refused(tiny: Path, tmp_path: Path) -> None:
    """A model folder whose tokenizer.json is a FIFO: the tokenizer loader blocked on it forever."""
    from promptkit.providers.hf import HFProvider

    folder = _copy(tiny, tmp_path / "model")
    (folder / "tokenizer.json").unlink()
    os.mkfifo(folder / "tokenizer.json")
    with pytest.raises(ConfigError, match=r"tokenizer\.json is not a regular file"):
        HFProvider(str(folder), dtype="float32").model_source()


def test_cli_with_a_fifo_as_the_gguf_exits_2(tmp_path: Path, project: Path) -> None:
    """End to end: the CLI hung on a FIFO given as the model; now one line naming it, exit 2."""
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    result = run_cli("eval", "sentiment", "--model", str(fifo), "--limit", "2", "--no-store", cwd=project,
                     env=cli_env(), timeout=90)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and str(fifo) in result.stderr and "not a regular file" in result.stderr


def _gguf_bytes(kind: str) -> bytes:
    header = b"GGUF" + struct.pack("<I", 3)
    if kind == "truncated":
        return header
    # 0 tensors, 1 key-value whose key length claims 2**60 bytes
    return header + struct.pack("<QQQ", 0, 1, 2**60) + b"abc"


@pytest.mark.parametrize("kind", ["truncated", "absurd-length"])
def test_a_damaged_gguf_is_a_config_error(tmp_path: Path, kind: str) -> None:
    """A truncated GGUF header or one with an absurd string length: the GGUF reader's struct.error escaped
    as an internal error (exit 3)."""
    from promptkit.providers.hf import HFProvider

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(_gguf_bytes(kind))
    with pytest.raises(ConfigError, match="cannot load the GGUF model") as info:
        HFProvider(str(gguf), dtype="float32").model_source()
    assert info.value.where == str(gguf)


def test_a_text_file_named_gguf_is_refused_before_the_conversion_notice(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A text file named .gguf announced 'converting ... (about 20 s)' before failing; now refused at once."""
    from promptkit.providers.hf import HFProvider

    gguf = tmp_path / "model.gguf"
    gguf.write_text("hello\n")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        HFProvider(str(gguf), dtype="float32").model_source()
    assert "converting" not in capsys.readouterr().err


def test_damaged_model_files_are_config_errors(tiny: Path, tmp_path: Path) -> None:
    """config.json with a NaN size and truncated safetensors weights: the loaders' own exceptions
    (StrictDataclassFieldValidationError, SafetensorError, RuntimeError) escaped as exit 3."""
    nan = _copy(tiny, tmp_path / "nan")
    config = json.loads((nan / "config.json").read_text())
    (nan / "config.json").write_text(json.dumps({**config, "max_position_embeddings": float("nan")}))
    truncated = _copy(tiny, tmp_path / "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    huge = _copy(tiny, tmp_path / "huge")
    (huge / "config.json").write_text(json.dumps({**config, "hidden_size": 10**6}))  # weights of another shape
    for folder in (nan, truncated, huge):
        with pytest.raises(ConfigError, match="cannot load the model") as info:
            _load(str(folder))
        assert info.value.where == str(folder)


@pytest.fixture(scope="module")
def adapters(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), lora).save_pretrained(root / "good")
    wider = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=32, num_hidden_layers=1,
                        num_attention_heads=2, num_key_value_heads=2)
    other = get_peft_model(LlamaForCausalLM(wider), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    other.peft_config["default"].base_model_name_or_path = "/models/wider-base"
    other.save_pretrained(root / "other")
    shutil.copytree(root / "good", root / "list")
    (root / "list" / "adapter_config.json").write_text("[1]")
    shutil.copytree(root / "good", root / "truncated")
    weights = root / "truncated" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    return {p.name: p for p in root.iterdir()}


def test_damaged_or_foreign_adapters_are_config_errors(tiny: Path, adapters: dict[str, Path]) -> None:
    """An adapter of another base model's shapes (RuntimeError), an adapter_config.json that is a list
    (TypeError) and truncated adapter weights (SafetensorError) were internal errors (exit 3)."""
    _load(str(tiny), adapter=str(adapters["good"]))
    with pytest.raises(ConfigError, match="cannot load the adapter") as info:
        _load(str(tiny), adapter=str(adapters["other"]))
    assert info.value.where == str(adapters["other"]) and "/models/wider-base" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="not a peft adapter config") as info:
        _load(str(tiny), adapter=str(adapters["list"]))
    assert info.value.where == str(adapters["list"] / "adapter_config.json")
    with pytest.raises(ConfigError, match="cannot load the adapter") as info:
        _load(str(tiny), adapter=str(adapters["truncated"]))
    assert info.value.where == str(adapters["truncated"])


def test_an_adapter_folder_given_as_the_model_says_so(adapters: dict[str, Path]) -> None:
    """`--model ADAPTER_DIR` is accepted as a model spec, then failed with 'not a transformers model
    folder': now the error says it is an adapter and how to pair it with its base."""
    from promptkit.models import resolve_model
    from promptkit.providers.hf import HFProvider

    ref = resolve_model(str(adapters["good"]))
    with pytest.raises(ConfigError, match="an adapter folder, not a model") as info:
        HFProvider(ref.model, dtype="float32").model_source()
    assert "adapter:" in (info.value.hint or "")


def test_replaced_weights_with_the_same_size_and_mtime_get_a_new_fingerprint(tmp_path: Path) -> None:
    """The cache's fingerprint memo was keyed by (path, size, mtime): weights replaced by others of the
    same size with the mtime kept (cp -p, rsync -a, touch -r) kept the old digest, so the response cache
    served the old weights' answers."""
    from promptkit.cache import ResponseCache

    cache = ResponseCache(tmp_path / "cache.sqlite")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 64)
    before = weights.stat()
    old = cache.fingerprint(weights)
    replacement = tmp_path / "new"
    replacement.write_bytes(b"b" * 64)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, weights)
    assert weights.stat().st_mtime_ns == before.st_mtime_ns
    assert cache.fingerprint(weights) != old


def test_a_replaced_gguf_with_the_same_size_and_mtime_is_converted_again(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The GGUF conversion was found by (path, size, mtime): a GGUF replaced with another of the same size
    and mtime loaded the old file's converted weights."""
    import transformers

    from promptkit.providers import hf_convert

    monkeypatch.setenv("PROMPTKIT_CACHE_DIR", str(tmp_path / "cache"))
    converted: list[str] = []

    class Saved:  # what the GGUF loader returns, reduced to save_pretrained
        config = object()

        def save_pretrained(self, folder: Path) -> None:
            Path(folder, "config.json").write_text("{}")

    def load(source: str, gguf_file: str, **_: Any) -> Saved:
        converted.append(gguf_file)
        return Saved()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", load)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"a" * 60)
    before = gguf.stat()
    first = hf_convert.converted_gguf(gguf)
    assert hf_convert.converted_gguf(gguf) == first  # unchanged: converted once
    replacement = tmp_path / "new.gguf"
    replacement.write_bytes(b"GGUF" + b"b" * 60)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, gguf)
    assert hf_convert.converted_gguf(gguf) != first and len(converted) == 4  # tokenizer + model, twice


def _registry(tmp_path: Path, text: str) -> Any:
    from promptkit.models import ModelRegistry

    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return ModelRegistry(path)


@pytest.mark.parametrize("value", ["fp32", "gpu"])
def test_a_bad_dtype_or_device_in_models_yaml_names_the_file_and_line(tmp_path: Path, value: str) -> None:
    """`options: {dtype: fp32}` in models.yaml passed the registry check and failed only when the model
    ran, as "provider option 'dtype'" without the file or line."""
    key = "dtype" if value == "fp32" else "device"
    registry = _registry(tmp_path, f"other: {{provider: fake, model: x}}\nmine:\n  provider: hf\n  model: m\n"
                                   f"  options: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError, match=f"unknown {key} '{value}'") as info:
        registry.entries()
    assert info.value.where == f"{registry.path}:5"


@pytest.mark.parametrize("name", ["review-lora ", "SmolLM2", "sm\u043ellm2"])
def test_a_model_name_that_can_never_be_selected_is_refused(tmp_path: Path, name: str) -> None:
    """A registered name with a trailing space (`--model` strips it), one that is a built-in alias in
    another case (`--model SmolLM2` ran the embedded model, not the entry) or a look-alike with a Cyrillic
    'о' (`--model smollm2` typed in Latin runs the embedded model) was accepted silently."""
    from promptkit.models import resolve_model

    registry = _registry(tmp_path, f"'{name}': {{provider: fake, model: x}}\n")
    with pytest.raises(ConfigError, match="model name") as info:
        resolve_model(name, registry)
    assert info.value.where == f"{registry.path}:1"


def test_a_damaged_remembered_bf16_measurement_is_measured_again(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16.json holding an entry without a usable 'speedup' (damaged, hand-edited) was returned as is:
    KeyError/ValueError from dtype `auto`, an internal error on every run of a bf16-capable CPU."""
    from promptkit import device

    monkeypatch.setenv("PROMPTKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(device, "gpu_possible", lambda: False)
    monkeypatch.setattr(device, "cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.setattr(device, "measure_bf16_speedup", lambda threads, seconds=0.3: {"speedup": 3.0})
    from importlib.metadata import version

    key = f"{device.cpu_name()}|{version('torch')}|2"
    (tmp_path / "machine").mkdir()
    for damaged in ({}, {"speedup": "fast"}, {"speedup": None}):
        (tmp_path / "machine" / "bf16.json").write_text(json.dumps({key: damaged}))
        assert device.select_precision("auto", "auto", threads=2).dtype == "bfloat16"



def test_relative_paths_in_models_yaml_are_the_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`model: models/ft` and `adapter: adapters/a` in models.yaml were resolved against the working folder:
    `promptkit --project P` run elsewhere loaded a folder of the same name there (another model) or none."""
    from promptkit.models import ModelRegistry, resolve_model

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / ".promptkit").mkdir(parents=True)
    (elsewhere / "models" / "ft").mkdir(parents=True)  # a look-alike folder where the command runs
    (project / ".promptkit" / "models.yaml").write_text(
        "ft: {provider: hf, model: models/ft, adapter: adapters/a}\n"
        "abs: {provider: hf, model: /models/base, adapter: ~/a}\n"
        "api: {provider: openai, model: models/gpt}\n")
    monkeypatch.chdir(elsewhere)
    registry = ModelRegistry(project / ".promptkit" / "models.yaml")
    ref = resolve_model("ft", registry)
    assert ref.model == str(project / "models" / "ft") and ref.options["adapter"] == str(project / "adapters" / "a")
    ref = resolve_model("abs", registry)
    assert ref.model == "/models/base" and ref.options["adapter"] == "~/a"
    assert resolve_model("api", registry).model == "models/gpt"  # a name, not a path


def test_a_tokenizer_without_pad_or_eos_token_is_a_config_error(tiny: Path, tmp_path: Path) -> None:
    """A tokenizer with neither a pad nor an eos token: every example failed alone with
    "TypeError: full(): argument 'fill_value' ... not NoneType"; now one error naming the folder."""
    folder = _copy(tiny, tmp_path / "noeos")
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings.pop("eos_token", None)
    settings.pop("pad_token", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match="neither a pad nor an end-of-sequence token") as info:
        _load(str(folder))
    assert info.value.where == str(folder)


def test_an_absurd_thread_count_is_refused_as_an_option(tmp_path: Path) -> None:
    """`threads: 2147483648` passed the option check and failed when the model loaded with torch's
    "ValueError: Overflow when unpacking long", an internal error (exit 3); a count in the hundreds of
    thousands had OpenMP start that many threads."""
    from promptkit.providers.hf import HFProvider

    for threads in (2**31, 100_000):
        with pytest.raises(ConfigError, match="option 'threads'"):
            HFProvider(str(tmp_path), threads=threads)
    assert HFProvider(str(tmp_path), threads=8).threads == 8


def test_a_missing_or_empty_model_folder_says_so(tmp_path: Path) -> None:
    """`--model ./models/ft` for a folder that is missing or holds no config.json was "unknown model
    ... (known: smollm2, ...)", as if a name were misspelt; now the path and what is wrong with it."""
    from promptkit.errors import NotFoundError
    from promptkit.models import resolve_model

    (tmp_path / "empty").mkdir()
    for name, problem in (("missing", "does not exist"), ("empty", "is not a model (no config.json)"),
                          ("gone.gguf", "does not exist")):
        with pytest.raises(NotFoundError, match=re.escape(f"model path '{tmp_path / name}' {problem}")):
            resolve_model(str(tmp_path / name))


@pytest.mark.parametrize("key", ["adapter", "model"])
def test_an_empty_model_or_adapter_in_models_yaml_is_refused(tmp_path: Path, key: str) -> None:
    """`adapter: ""` was taken as no adapter (the base model ran under the tuned model's name), and
    `model: ""` as the working folder."""
    entry = {"model": "/models/base", "adapter": "/adapters/a", key: " "}
    registry = _registry(tmp_path, f"tuned:\n  provider: hf\n  model: '{entry['model']}'\n  adapter: '{entry['adapter']}'\n")
    with pytest.raises(ConfigError, match=f"'{key}' is empty") as info:
        registry.entries()
    assert info.value.where == f"{registry.path}:{3 if key == 'model' else 4}"
