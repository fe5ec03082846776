"""Device and dtype selection (promptkit.device): the rules with torch's answers mocked, the per-machine
bf16 measurement remembered, and the hf provider recording the choice in its identity."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from promptkit import device
from promptkit.errors import ConfigError
from tests.helpers.projects import ROOT


def fake_torch(cuda: bool = False, mps: bool = False, cuda_bf16: bool = True) -> Any:
    mps_backend = types.SimpleNamespace(is_available=lambda: mps)
    return types.SimpleNamespace(
        cuda=types.SimpleNamespace(is_available=lambda: cuda, is_bf16_supported=lambda: cuda_bf16),
        backends=types.SimpleNamespace(mps=mps_backend),
    )


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_device_prefers_cuda_then_mps_then_cpu(cuda: bool, mps: bool, expected: str) -> None:
    assert device.pick_device("auto", *device.available(fake_torch(cuda, mps))) == expected


def test_explicit_device_must_exist() -> None:
    assert device.pick_device("cpu", False, False) == "cpu"
    assert device.pick_device("mps", False, True) == "mps"
    with pytest.raises(ConfigError, match="not available"):
        device.pick_device("cuda", False, True)
    with pytest.raises(ConfigError, match="unknown device"):
        device.select_device("tpu")


def test_select_device_asks_torch_only_where_a_gpu_is_possible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "gpu_possible", lambda: False)
    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch would fail
    assert device.select_device("auto") == "cpu"
    monkeypatch.setattr(device, "gpu_possible", lambda: True)
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=True))
    assert device.select_device("auto") == "cuda"
    monkeypatch.setitem(sys.modules, "torch", fake_torch(mps=True))
    assert device.select_device("auto") == "mps"


def test_cpu_dtype_needs_native_flags_and_a_measured_gain() -> None:
    def never() -> dict[str, float]:
        raise AssertionError("no measurement without native bf16 flags")

    assert device.cpu_dtype({"avx2", "fma"}, never)[0] == "float32"
    assert device.cpu_dtype({"avx512_bf16"}, lambda: {"speedup": 4.5}) == (
        "bfloat16", "CPU has avx512_bf16; bf16 matmul measured 4.5x fp32")
    assert device.cpu_dtype({"amx_bf16", "avx512_bf16"}, lambda: {"speedup": 1.2})[0] == "float32"
    assert device.cpu_dtype({"amx_bf16"}, lambda: {"speedup": 1.5})[0] == "bfloat16"


def test_gpu_dtype() -> None:
    assert device.gpu_dtype(fake_torch(cuda=True), "cuda")[0] == "bfloat16"
    assert device.gpu_dtype(fake_torch(cuda=True, cuda_bf16=False), "cuda")[0] == "float32"


def test_explicit_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "gpu_possible", lambda: False)
    assert device.select_precision("auto", "float32").dtype == "float32"
    assert device.select_precision("cpu", "bfloat16") == device.Precision("cpu", "bfloat16", "as configured")
    with pytest.raises(ConfigError, match="float16 is not supported on the CPU"):
        device.select_precision("cpu", "float16")
    with pytest.raises(ConfigError, match="unknown dtype"):
        device.select_precision("cpu", "fp8")


def test_auto_dtype_on_cpu_uses_flags_and_the_remembered_measurement(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(device, "gpu_possible", lambda: False)
    calls: list[int] = []

    def measure(threads: int, seconds: float = 0.3) -> dict[str, float]:
        calls.append(threads)
        return {"fp32_gflops": 100.0, "bf16_gflops": 400.0, "speedup": 4.0}

    monkeypatch.setattr(device, "measure_bf16_speedup", measure)
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx512_bf16"})
    first = device.select_precision("auto", "auto", threads=2)
    second = device.select_precision("auto", "auto", threads=2)
    assert first.dtype == second.dtype == "bfloat16" and calls == [2]  # measured once, then remembered
    assert "4.0x" in first.reason
    saved = json.loads((tmp_path / "machine" / "bf16.json").read_text())
    assert [v["speedup"] for v in saved.values()] == [4.0]
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2"})
    assert device.select_precision("auto", "auto", threads=2).dtype == "float32"


def test_hf_identity_and_cache_key_carry_the_dtype(tmp_path: Path) -> None:
    from promptkit.cache import provider_identity, request_key
    from promptkit.providers.hf import HFProvider
    from promptkit.results import Request

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    fp32, bf16 = HFProvider(str(model), dtype="float32"), HFProvider(str(model), dtype="bfloat16")
    assert fp32.identity["precision"] == "cpu/float32" and bf16.identity["precision"] == "cpu/bfloat16"
    assert bf16.run_settings == {"device": "cpu", "dtype": "bfloat16", "dtype_reason": "as configured"}
    request = Request(id="1", text="hi", labels=["a", "b"])
    assert request_key(provider_identity(fp32), request) != request_key(provider_identity(bf16), request)


def test_auto_identity_imports_no_torch_once_the_machine_is_measured(tmp_path: Path) -> None:
    """A cached eval computes the identity (dtype included) without importing torch."""
    code = (
        "import sys, json, os\n"
        "from importlib.metadata import version\n"
        "from promptkit import device\n"
        "from promptkit.providers.hf import HFProvider\n"
        "key = f'{device.cpu_name()}|{version(\"torch\")}|2'\n"
        "os.makedirs(sys.argv[1] + '/machine', exist_ok=True)\n"
        "open(sys.argv[1] + '/machine/bf16.json', 'w').write(json.dumps({key: {'speedup': 3.0}}))\n"
        "p = HFProvider(sys.argv[2], threads=2)\n"
        "print(p.identity['precision'], 'torch' in sys.modules)\n"
    )
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache"), str(model)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PROMPTKIT_CACHE_DIR": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr
    flags = device.cpu_flags()
    expected = "cpu/bfloat16" if any(f in flags for f in device.NATIVE_BF16_FLAGS) else "cpu/float32"
    assert out.stdout.split() == [expected, "False"]


def test_cli_rejects_an_unknown_dtype_in_one_line(project: Path) -> None:
    from tests.helpers.cli import run_cli

    suite = project / "evals" / "sentiment.yaml"
    suite.write_text(suite.read_text().replace("provider_options: {", "provider_options: {dtype: fp8, "))
    result = run_cli("eval", "sentiment", "--limit", "2", "--no-store", "--no-cache", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "unknown dtype 'fp8'" in result.stderr
    assert "float32" in result.stderr  # the fix: the allowed values


def test_bf16_token_logprobs_come_from_an_fp32_output_head(tmp_path: Path) -> None:
    """serve's echo/logprobs on a bf16 model: the decoder runs in bf16, the head and softmax in fp32,
    so the figures stay as close to fp32 as the scoring path's (rounded bf16 logits moved them by 0.06)."""
    import torch

    from promptkit.providers.hf import HFProvider
    from tests.helpers.tiny_model import make_tiny_model

    folder = make_tiny_model(tmp_path / "tiny", ["great food", "awful service"])
    bf16, fp32 = HFProvider(str(folder), dtype="bfloat16"), HFProvider(str(folder), dtype="float32")
    text = "Review: great food Sentiment: positive"
    got = bf16.token_logprobs([text], 0)[0]["token_logprobs"]
    model = bf16.hf_model
    ids = torch.tensor([bf16.tokenizer(text)["input_ids"]])
    with torch.inference_mode():
        hidden = model.get_decoder()(input_ids=ids).last_hidden_state[0].float()
        expected = torch.log_softmax(hidden @ model.get_output_embeddings().weight.float().T, dim=-1)
    want = [None] + [float(expected[j - 1, ids[0, j]]) for j in range(1, ids.shape[1])]
    assert got[0] is None and got[1:] == pytest.approx(want[1:], abs=1e-5)
    reference = fp32.token_logprobs([text], 0)[0]["token_logprobs"]
    assert got[1:] == pytest.approx(reference[1:], abs=0.05)
