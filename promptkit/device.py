"""Where and in what precision a local model runs, chosen per machine, never assumed.

device `auto`: cuda, then mps, then cpu. dtype `auto`: bfloat16 where the hardware multiplies bf16
natively (a GPU that supports it; a CPU with AMX-BF16 or AVX512-BF16 whose bf16 matmul is measured at
least 1.5x its fp32 one, measured once and remembered per machine), else float32.

Nothing here imports torch unless it has to: on a machine without a GPU driver the device is cpu
without asking torch, and the CPU's flags come from /proc/cpuinfo, so a cache look-up stays cheap."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptkit.errors import ConfigError

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float32", "bfloat16", "float16")
BF16_MIN_SPEEDUP = 1.5  # a CPU's bf16 matmul must beat fp32 by this much for `auto` to pick it
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Precision:
    device: str
    dtype: str
    reason: str  # why `auto` chose it (shown once, recorded with the run)


def cache_dir() -> Path:
    base = os.environ.get("PROMPTKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "promptkit"
    )
    return Path(base)


def check_option(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    text = str(value or "auto").strip().lower()
    if text not in allowed:
        raise ConfigError(f"unknown {name} {value!r}", where=f"provider option '{name}'",
                          hint=f"use one of: {', '.join(allowed)}")
    return text


# -- device -------------------------------------------------------------------------------------
def gpu_possible() -> bool:
    """Could torch see a GPU here? Answered without importing torch when it clearly cannot."""
    if "torch" in sys.modules:
        return True
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/dxg"))


def available(torch: Any) -> tuple[bool, bool]:
    """(cuda, mps) as torch reports them."""
    cuda = bool(torch.cuda.is_available())
    mps_backend = getattr(getattr(torch, "backends", None), "mps", None)
    mps = bool(mps_backend is not None and mps_backend.is_available())
    return cuda, mps


def pick_device(requested: str, cuda: bool, mps: bool) -> str:
    """The device for a requested one: `auto` is cuda, then mps, then cpu; an explicit one must exist."""
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        raise ConfigError(f"device {requested!r} is not available on this machine", where="provider option 'device'",
                          hint="use device: auto (cuda, then mps, then cpu) or device: cpu")
    return requested


def select_device(requested: str = "auto") -> str:
    requested = check_option("device", requested, DEVICES)
    if requested == "cpu" or (requested == "auto" and not gpu_possible()):
        return "cpu"
    import torch

    return pick_device(requested, *available(torch))


# -- dtype --------------------------------------------------------------------------------------
def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_bf16_speedup(threads: int, seconds: float = 0.3) -> dict[str, float]:
    """bf16 vs fp32 matmul rate at the model's MLP shape, alternating rounds, best of each."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        m, k, n = 512, 576, 1536
        rates: dict[str, float] = {"float32": 0.0, "bfloat16": 0.0}
        mats = {name: (torch.randn(m, k, dtype=getattr(torch, name)), torch.randn(k, n, dtype=getattr(torch, name)))
                for name in rates}
        for a, b in mats.values():
            a @ b  # warm-up
        for _ in range(3):
            for name, (a, b) in mats.items():
                reps, start = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - start) < seconds / 6 or reps < 2:
                    a @ b
                    reps += 1
                rates[name] = max(rates[name], 2 * m * k * n * reps / elapsed / 1e9)
    finally:
        torch.set_num_threads(previous)
    return {"fp32_gflops": rates["float32"], "bf16_gflops": rates["bfloat16"],
            "speedup": rates["bfloat16"] / rates["float32"]}


def bf16_speedup(threads: int) -> dict[str, Any]:
    """The measured bf16/fp32 matmul ratio of this CPU, measured once per CPU, torch version and
    thread count, and remembered under the promptkit cache dir."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")  # read without importing torch: a remembered answer costs nothing
    except PackageNotFoundError:
        torch_version = "?"
    key = f"{cpu_name()}|{torch_version}|{threads}"
    path = cache_dir() / "machine" / "bf16.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(key) if isinstance(known, dict) else None
    if isinstance(entry, dict) and _ratio(entry.get("speedup")) is not None:  # a damaged entry is measured again
        return dict(entry)
    measured: dict[str, Any] = {**measure_bf16_speedup(threads), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**(known if isinstance(known, dict) else {}), key: measured}, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs a re-measure next time
    return measured


def _ratio(value: Any) -> float | None:
    """A remembered speedup as a positive finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def cpu_dtype(flags: set[str], speedup: Any) -> tuple[str, str]:
    """(dtype, reason) for a CPU: bf16 needs native bf16 instructions AND a measured gain;
    `speedup` is called only when the flags allow bf16."""
    native = [f for f in NATIVE_BF16_FLAGS if f in flags]
    if not native:
        return "float32", "no native bf16 on this CPU (no amx_bf16/avx512_bf16)"
    ratio = float(speedup()["speedup"])
    if ratio >= BF16_MIN_SPEEDUP:
        return "bfloat16", f"CPU has {'+'.join(native)}; bf16 matmul measured {ratio:.1f}x fp32"
    return "float32", f"CPU has {'+'.join(native)} but bf16 matmul measured only {ratio:.1f}x fp32"


def gpu_dtype(torch: Any, device: str) -> tuple[str, str]:
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return "bfloat16", "GPU supports bf16"
    if device == "mps":
        try:
            torch.ones(1, dtype=torch.bfloat16, device="mps")
            return "bfloat16", "MPS supports bf16"
        except (RuntimeError, TypeError):
            pass
    return "float32", f"{device} without bf16"


def select_precision(device: str = "auto", dtype: str = "auto", threads: int | None = None) -> Precision:
    """The device and dtype a local model runs with (see the module docstring)."""
    requested = check_option("dtype", dtype, DTYPES)
    chosen_device = select_device(device)
    if requested != "auto":
        if requested == "float16" and chosen_device == "cpu":
            raise ConfigError("float16 is not supported on the CPU", where="provider option 'dtype'",
                              hint="use dtype: bfloat16, float32 or auto on a CPU")
        return Precision(chosen_device, requested, "as configured")
    if chosen_device == "cpu":
        n = threads or os.cpu_count() or 1
        chosen, reason = cpu_dtype(cpu_flags(), lambda: bf16_speedup(n))
    else:
        import torch

        chosen, reason = gpu_dtype(torch, chosen_device)
    return Precision(chosen_device, chosen, reason)
