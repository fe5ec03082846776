"""promptkit performance benchmark: every figure measured in this one run, printed beside its goal,
written to benchmarks/results.json.

    python benchmarks/run.py            # ~10-15 min on 2 cores; --quick for a smoke run
    benchmarks/setup_lmeval.sh          # once, for the lm-evaluation-harness comparison

Figures: label-scoring throughput vs the naive loop (one example at a time, one forward per label),
generation vs sequential greedy generate, the compute ceiling in fp32 and bf16 (matmul FLOP rate vs
model FLOPs per token) and the share of it reached in each dtype, bf16 vs fp32 scoring, generation and
LoRA training, cached re-run, `promptkit --help` and eval start-up time, peak memory of the default eval,
and whole processes of promptkit (default dtype and fp32) against lm-evaluation-harness (hf backend,
dtype=float32 and dtype=bfloat16) on the same 1000-review two-choice task, run in alternation
(A B A B ..., median of 3). Every row records the dtype it ran in."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
YELP = ROOT.parent / "shared" / "data" / "sentiment" / "yelp.jsonl"
LMEVAL_PY = ROOT / "benchmarks" / ".lmeval-venv" / "bin" / "python"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the same for every process of the run (see hf.py)
sys.path.insert(0, str(ROOT))

results: dict[str, Any] = {}


def report(name: str, value: Any, goal: str, unit: str = "", note: str = "", dtype: str = "") -> None:
    results[name] = {"value": value, "unit": unit, "goal": goal, **({"note": note} if note else {}),
                     **({"dtype": dtype} if dtype else {})}
    shown = f"{value:.3g}" if isinstance(value, float) else str(value)
    tag = f"[{dtype}]" if dtype else ""
    print(f"  {name:<34} {shown:>10} {unit:<12} {tag:<11} goal: {goal}{'  (' + note + ')' if note else ''}",
          flush=True)


# A small launcher runs each measured process: a child forked straight from this (large) benchmark
# process would report this process's memory as its own peak.
LAUNCHER = ("import json, resource, subprocess, sys; rc = subprocess.run(sys.argv[2:]).returncode; "
            "open(sys.argv[1], 'w').write(json.dumps([rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")


def timed_process(cmd: list[str], cwd: Path, env: dict[str, str] | None = None
                  ) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(seconds, peak RSS in MB, result) of one child process."""
    with tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage.json"
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", LAUNCHER, str(usage_file), *cmd], cwd=cwd,
                             env={**os.environ, **(env or {})}, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        rc, maxrss = json.loads(usage_file.read_text()) if usage_file.is_file() else (res.returncode, 0)
    return elapsed, maxrss / 1024, subprocess.CompletedProcess(cmd, rc, res.stdout, res.stderr)


def interleaved(fast: Any, naive: Any, fast_items: list[Any], naive_items: list[Any], rounds: int = 4
                ) -> tuple[list[Any], float, list[Any], float]:
    """Both ways in alternating slices, so that a shared machine's changing load hits both alike."""
    fast_out: list[Any] = []
    naive_out: list[Any] = []
    t_fast = t_naive = 0.0
    for k in range(rounds):
        f = fast_items[k * len(fast_items) // rounds:(k + 1) * len(fast_items) // rounds]
        n = naive_items[k * len(naive_items) // rounds:(k + 1) * len(naive_items) // rounds]
        start = time.perf_counter()
        fast_out += fast(f)
        t_fast += time.perf_counter() - start
        start = time.perf_counter()
        naive_out += naive(n)
        t_naive += time.perf_counter() - start
    return fast_out, t_fast, naive_out, t_naive


def load_yelp(n: int | None = None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in YELP.read_text().splitlines() if line.strip()]
    return rows[:n] if n else rows


def scoring_requests(rows: list[dict[str, str]]) -> list[Any]:
    from promptkit.providers import Request

    return [Request(id=str(i), text=f"Review: {r['text']}\nSentiment:", labels=["negative", "positive"], label_prefix=" ")
            for i, r in enumerate(rows)]


def generation_requests(rows: list[dict[str, str]]) -> list[Any]:
    from promptkit.providers import Request

    return [Request(id=str(i), messages=[{"role": "user", "content": f"Summarize this review in a few words: {r['text']}"}],
                    max_tokens=24, stop=["\n"]) for i, r in enumerate(rows)]


def bench_cached_rerun(limit: int) -> None:
    """An identical second `promptkit eval`, served from the response cache (benchmarks/cache_rerun.py
    when present, else two whole processes here)."""
    import re

    print("cached re-run:")
    cache_bench = ROOT / "benchmarks" / "cache_rerun.py"
    if cache_bench.is_file():
        res = subprocess.run([sys.executable, str(cache_bench), "--examples", str(limit), "--data", str(YELP)], cwd=ROOT,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        found = re.search(r"speedup: ([\d.]+)x", res.stdout)
        if found:
            report("cached_rerun_speedup", float(found.group(1)), ">= 20x (cache_rerun.py)", "x",
                   f"whole process, {limit} yelp examples")
        else:
            report("cached_rerun_speedup", "failed", "", note=(res.stderr or res.stdout).strip()[-200:])
        return
    if not (ROOT / "promptkit" / "cache.py").is_file():
        report("cached_rerun_speedup", "skipped", "", note="no response cache (promptkit/cache.py) in this build")
        return
    project = eval_project()
    cmd = [sys.executable, "-m", "promptkit", "eval", "sentiment", "--data", str(YELP), "--limit", str(limit)]
    first, _, r1 = timed_process(cmd, project, {"PYTHONPATH": str(ROOT)})
    second, _, r2 = timed_process(cmd, project, {"PYTHONPATH": str(ROOT)})
    if r1.returncode or r2.returncode:
        report("cached_rerun_speedup", "failed", "", note=(r1.stderr or r2.stderr).strip()[-200:])
    else:
        report("cached_rerun_speedup", first / second, "as high as possible", "x",
               f"whole process, {limit} examples, {first:.1f} s then {second:.1f} s")
    shutil.rmtree(project, ignore_errors=True)



def bench_scoring(provider: Any, n: int, n_naive: int) -> None:
    from promptkit.providers.hf_reference import score_naive

    rows = load_yelp(n)
    requests = scoring_requests(rows)
    provider.complete(requests[:4])  # warm-up: load
    naive_fn = lambda items: score_naive(provider, items)  # noqa: E731
    fast, t_fast, naive, t_naive = interleaved(provider.complete, naive_fn, requests, requests[:n_naive])
    diff = max(abs(f.scores[k] - s.scores[k]) for f, s in zip(fast, naive, strict=False) for k in s.scores)
    acc = sum(r.output == row["label"] for r, row in zip(fast, rows, strict=True)) / len(rows)
    acc_naive = sum(r.output == row["label"] for r, row in zip(naive, rows, strict=False)) / len(naive)
    acc_fast_same = sum(r.output == row["label"] for r, row in zip(fast[:n_naive], rows, strict=False)) / len(naive)
    rate, naive_rate = len(requests) / t_fast, len(naive) / t_naive
    print(f"label scoring: {len(requests)} yelp reviews fast, {len(naive)} naive")
    report("scoring_examples_per_s", rate, "", "ex/s", dtype="float32")
    report("scoring_naive_examples_per_s", naive_rate, "", "ex/s", dtype="float32")
    report("scoring_speedup_vs_naive", rate / naive_rate, ">= 4x", "x", dtype="float32")
    report("scoring_max_loglik_diff", diff, "< 1e-4", "nats", dtype="float32")
    report("scoring_accuracy", acc, "unchanged (~0.874 on 1000)", "", f"naive on its {len(naive)}: {acc_naive:.3f}, "
           f"fast on the same: {acc_fast_same:.3f}", dtype="float32")


def bench_generation(provider: Any, n: int, n_naive: int) -> None:
    from promptkit.providers.hf_reference import generate_naive

    requests = generation_requests(load_yelp(n))
    provider.complete(requests[:2])
    naive_fn = lambda items: generate_naive(provider, items)  # noqa: E731
    fast, t_fast, naive, t_naive = interleaved(provider.complete, naive_fn, requests, requests[:n_naive])
    same = sum(f.output == s.output for f, s in zip(fast, naive, strict=False))
    rate, naive_rate = len(requests) / t_fast, len(naive) / t_naive
    print(f"generation: {len(requests)} yelp reviews batched, {len(naive)} sequential (greedy, <= 24 tokens, stop \\n)")
    report("generation_examples_per_s", rate, "", "ex/s", dtype="float32")
    report("generation_naive_examples_per_s", naive_rate, "", "ex/s", dtype="float32")
    report("generation_speedup_vs_naive", rate / naive_rate, ">= 5x", "x", dtype="float32")
    report("generation_identical_outputs", f"{same}/{len(naive)}", "all identical", dtype="float32")


def matmul_gflops(dtype: Any, seconds: float = 3.0) -> float:
    """The compute ceiling: a 1024x1024 matmul's FLOP rate in `dtype` with all threads."""
    import torch

    n = 1024
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start)


def model_flops(provider: Any, tokens_per_example: float) -> tuple[float, float]:
    """(FLOPs per token of the decoder body, FLOPs per scored example)."""
    cfg = provider.hf_model.config
    embed = cfg.vocab_size * cfg.hidden_size
    body = sum(p.numel() for p in provider.hf_model.parameters()) - embed * (1 if cfg.tie_word_embeddings else 2)
    per_token = 2 * body  # the vocabulary projection runs only where a score is read: once per example
    return per_token, per_token * tokens_per_example + 2 * embed


def bench_dtypes(n_score: int, n_gen: int) -> None:
    """bf16 against fp32 in one process, alternating slices: scoring speed and decisions, the share of each
    dtype's compute ceiling, generation speed and identical greedy outputs (differing rows listed)."""
    import torch

    from promptkit.device import select_precision
    from promptkit.models import resolve_model
    from promptkit.providers.factory import open_provider

    ref = resolve_model("smollm2")
    auto = select_precision("auto", "auto")
    report("auto_dtype", auto.dtype, "bf16 where native, else fp32", note=auto.reason, dtype=auto.dtype)
    p32 = open_provider(ref, forward_batch=64, dtype="float32")
    p16 = open_provider(ref, forward_batch=64, dtype="bfloat16")
    rows = load_yelp(n_score)
    requests = scoring_requests(rows)
    p32.complete(requests[:4])
    p16.complete(requests[:4])
    b16, t16, f32, t32 = interleaved(p16.complete, p32.complete, requests, requests)
    same = sum(a.output == b.output for a, b in zip(b16, f32, strict=True))
    acc16 = sum(r.output == row["label"] for r, row in zip(b16, rows, strict=True)) / len(rows)
    acc32 = sum(r.output == row["label"] for r, row in zip(f32, rows, strict=True)) / len(rows)
    tokens = sum(r.tokens_in + 1 for r in f32) / len(f32)
    per_token, per_example = model_flops(p32, tokens)
    ceil32, ceil16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"bf16 vs fp32 in-process scoring ({len(requests)} yelp reviews, alternating slices) and compute ceilings:")
    report("scoring_fp32_examples_per_s", len(requests) / t32, "", "ex/s", dtype="float32")
    report("scoring_bf16_examples_per_s", len(requests) / t16, "", "ex/s", dtype="bfloat16")
    report("scoring_bf16_speedup", t32 / t16, "", "x", "fp32 seconds / bf16 seconds", dtype="bfloat16")
    report("scoring_bf16_identical_decisions", 100 * same / len(requests), ">= 99%", "%", dtype="bfloat16")
    report("scoring_bf16_accuracy_delta_pt", 100 * (acc16 - acc32), "within +-0.5 pt", "pt",
           f"bf16 {acc16:.3f}, fp32 {acc32:.3f}", dtype="bfloat16")
    report("matmul_gflops", ceil32 / 1e9, "", "GFLOP/s", "1024x1024, all threads", dtype="float32")
    report("matmul_bf16_gflops", ceil16 / 1e9, "", "GFLOP/s", "1024x1024, all threads", dtype="bfloat16")
    report("model_gflop_per_token", per_token / 1e9, "", "GFLOP")
    for name, t, ceiling in (("fp32", t32, ceil32), ("bf16", t16, ceil16)):
        achieved = per_example * len(requests) / t
        dt = "float32" if name == "fp32" else "bfloat16"
        report(f"scoring_{name}_gflops", achieved / 1e9, "", "GFLOP/s", dtype=dt)
        report(f"scoring_{name}_pct_of_ceiling", 100 * achieved / ceiling, "as high as possible", "%",
               f"of the {name} matmul ceiling", dtype=dt)

    gen = generation_requests(load_yelp(n_gen))
    p32.complete(gen[:2])
    p16.complete(gen[:2])
    g16, t16, g32, t32 = interleaved(p16.complete, p32.complete, gen, gen)
    differing = [{"row": i, "fp32": a.output, "bf16": b.output} for i, (a, b) in enumerate(zip(g32, g16, strict=True))
                 if a.output != b.output]
    print(f"generation bf16 vs fp32 ({len(gen)} yelp reviews, greedy, <= 24 tokens, alternating slices):")
    report("generation_fp32_examples_per_s", len(gen) / t32, "", "ex/s", dtype="float32")
    report("generation_bf16_examples_per_s", len(gen) / t16, "", "ex/s", dtype="bfloat16")
    report("generation_bf16_speedup", t32 / t16, ">= 2x on a native-bf16 machine", "x", dtype="bfloat16")
    report("generation_bf16_identical_outputs", 100 * (len(gen) - len(differing)) / len(gen), ">= 95%", "%",
           f"{len(differing)} differing rows listed in results.json", dtype="bfloat16")
    results["generation_bf16_differing_rows"] = differing
    for d in differing[:10]:
        print(f"    row {d['row']}: fp32 {d['fp32']!r}  bf16 {d['bf16']!r}")
    p32.close()
    p16.close()


def bench_lora(steps: int, rounds: int) -> None:
    """LoRA training through promptkit's own loop (tune/lora.py) in fp32 and in bf16 autocast, alternating."""
    from promptkit.models import resolve_model
    from promptkit.providers import Request
    from promptkit.providers.factory import open_provider
    from promptkit.tune.lora import LoraSettings, train_lora
    from promptkit.tune.trainset import TrainRow

    ref = resolve_model("smollm2")
    provider = open_provider(ref)
    rows = load_yelp(8 * steps + 32)
    train_rows = [TrainRow(str(i), Request(id=str(i), text=f"Review: {r['text']}\nSentiment:",
                                           labels=["negative", "positive"], label_prefix=" "), r["label"])
                  for i, r in enumerate(rows)]
    train, val = train_rows[:8 * steps], train_rows[8 * steps:]
    speeds: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    losses: dict[str, float] = {}
    for _ in range(rounds):
        for dtype in ("float32", "bfloat16"):
            with tempfile.TemporaryDirectory() as out:
                settings = LoraSettings(dtype=dtype, max_steps=steps, batch_size=8, checkpoint_every=0, seed=0)
                metrics = train_lora(provider, train, val, Path(out), settings)
            speeds[dtype].append(float(metrics["tokens"]) / float(metrics["seconds"]))
            losses[dtype] = float(metrics["best_val_loss"])
    fp32, bf16 = median(speeds["float32"]), median(speeds["bfloat16"])
    print(f"LoRA training (tune/lora.py, r=8 on q/v, batch 8, {steps} steps, {rounds} alternating rounds):")
    report("lora_train_tokens_per_s", fp32, "", "tok/s", dtype="float32")
    report("lora_bf16_train_tokens_per_s", bf16, "", "tok/s", "bf16 autocast, fp32 adapter weights", dtype="bfloat16")
    report("lora_bf16_speedup", bf16 / fp32, ">= 1.8x on a native-bf16 machine", "x", dtype="bfloat16")
    report("lora_bf16_val_loss_delta_pct", 100 * (losses["bfloat16"] - losses["float32"]) / losses["float32"],
           "within +-5%", "%", f"val loss fp32 {losses['float32']:.4f}, bf16 {losses['bfloat16']:.4f}", dtype="bfloat16")
    provider.close()


def bench_help() -> None:
    times = []
    for _ in range(3):
        elapsed, _, res = timed_process([sys.executable, "-m", "promptkit", "--help"], ROOT, {"PYTHONPATH": str(ROOT)})
        assert res.returncode == 0, res.stderr
        times.append(elapsed)
    print("CLI start-up:")
    report("help_seconds", min(times), "< 0.5 s", "s", "best of 3")


def eval_project(dtype: str | None = None) -> Path:
    """A copy of the shipped prompts and suites; with `dtype`, the suites pin it as a provider option."""
    tmp = Path(tempfile.mkdtemp(prefix="promptkit-bench-"))
    for name in ("prompts", "evals"):
        shutil.copytree(ROOT / name, tmp / name)
    if dtype:
        for suite in (tmp / "evals").glob("*.yaml"):
            text = suite.read_text()
            suite.write_text(text.replace("provider_options: {", f"provider_options: {{dtype: {dtype}, "))
    return tmp


def promptkit_eval(project: Path, suite: str = "sentiment", data: Path | None = YELP, limit: int | None = None
                   ) -> dict[str, Any]:
    """One whole `promptkit eval` process (no cache, no store): seconds, peak MB, accuracy, dtype, decisions."""
    cmd = [sys.executable, "-m", "promptkit", "eval", suite, "--no-store", "--no-cache", "-o", "r.json"]
    cmd += ["--data", str(data)] if data else []
    cmd += ["--limit", str(limit)] if limit else []
    elapsed, peak, res = timed_process(cmd, project, {"PYTHONPATH": str(ROOT)})
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["?"])[-1][:200]}
    data_out = json.loads((project / "r.json").read_text())
    return {"seconds": elapsed, "peak": peak, "acc": data_out["metrics"].get("accuracy", {}).get("value"),
            "dtype": data_out["settings"].get("runtime", {}).get("dtype", "?"), "examples": data_out["settings"]["examples"],
            "decisions": {e["id"]: e["prediction"] for e in data_out["examples"]}}


def agreement(a: dict[str, Any], b: dict[str, Any]) -> float:
    return 100 * sum(a["decisions"][k] == b["decisions"].get(k) for k in a["decisions"]) / max(1, len(a["decisions"]))


def bench_startup() -> None:
    project = eval_project()
    times, dtype = [], "?"
    for _ in range(3):
        out = promptkit_eval(project, data=None, limit=2)
        if "error" in out:
            report("eval_startup_seconds", "failed", "<= 2.5 s", note=out["error"])
            return
        times.append(out["seconds"])
        dtype = out["dtype"]
    print("eval start-up (`promptkit eval sentiment --limit 2 --no-cache`, converted model on disk):")
    report("eval_startup_seconds", median(times), "<= 2.5 s", "s", "median of 3, whole process", dtype=dtype)
    # where the time goes: the imports a model eval cannot avoid, as whole processes
    for name, code in (("python_only", "pass"), ("import_torch", "import torch"),
                       ("import_transformers_model", "from transformers import AutoModelForCausalLM, AutoTokenizer")):
        runs = [timed_process([sys.executable, "-c", code], ROOT)[0] for _ in range(3)]
        report(f"startup_{name}_seconds", median(runs), "", "s", "median of 3, whole process")
    shutil.rmtree(project, ignore_errors=True)


def bench_precision_suites(limit: int | None) -> None:
    """Acceptance 2 on the chat prompt: default dtype vs fp32, on yelp and on the shipped suite."""
    auto, fp32 = eval_project(), eval_project("float32")
    print("sentiment-chat, default dtype vs fp32 (whole processes):")
    for label, data in (("yelp", YELP), ("shipped", None)):
        a = promptkit_eval(auto, "sentiment-chat", data, limit)
        f = promptkit_eval(fp32, "sentiment-chat", data, limit)
        if "error" in a or "error" in f:
            report(f"chat_{label}_identical_decisions", "failed", "", note=a.get("error") or f.get("error", ""))
            continue
        report(f"chat_{label}_identical_decisions", agreement(a, f), ">= 99%", "%",
               f"{a['examples']} examples, {a['dtype']} vs {f['dtype']}", dtype=a["dtype"])
        report(f"chat_{label}_accuracy_delta_pt", 100 * (a["acc"] - f["acc"]), "within +-0.5 pt", "pt",
               f"{a['dtype']} {a['acc']:.3f}, fp32 {f['acc']:.3f}", dtype=a["dtype"])
    shutil.rmtree(auto, ignore_errors=True)
    shutil.rmtree(fp32, ignore_errors=True)


LMEVAL_TASK = """task: promptkit_yelp
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Review: {{{{text}}}}\\nSentiment:"
doc_to_choice: ["negative", "positive"]
doc_to_target: "{{{{ 0 if label == 'negative' else 1 }}}}"
target_delimiter: " "
metric_list:
  - metric: acc
"""


def lmeval_run(work: Path, model_dir: Path, dtype: str, limit: int | None) -> dict[str, Any]:
    """One whole lm-eval process, hf backend, batch 16, on the converted model folder."""
    out = work / f"out-{dtype}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(LMEVAL_PY), "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model_dir},dtype={dtype}",
           "--tasks", "promptkit_yelp", "--include_path", str(work / "tasks"), "--batch_size", "16", "--device", "cpu",
           "--output_path", str(out)]
    cmd += ["--limit", str(limit)] if limit else []
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(work / "hf"),
           "PYTHONPATH": ""}
    elapsed, peak, res = timed_process(cmd, work, env)
    if res.returncode != 0:
        (ROOT / "benchmarks" / "lmeval_error.log").write_text(res.stderr[-20000:])
        return {"error": (res.stderr.strip().splitlines() or ["?"])[-1][:200]}
    acc = None
    for path in out.rglob("results*.json"):
        acc = json.loads(path.read_text())["results"]["promptkit_yelp"].get("acc,none")
    return {"seconds": elapsed, "peak": peak, "acc": acc, "dtype": dtype}


def bench_against_lmeval(limit: int | None, rounds: int) -> None:
    """promptkit (default dtype, and fp32) and lm-eval (fp32, bf16) as whole processes on the same 1000 yelp
    reviews, in alternation A B C D A B C D ...; medians of `rounds` and the median of the per-round ratios."""
    from promptkit.models import resolve_model
    from promptkit.providers.factory import open_provider

    ref = resolve_model("smollm2")
    provider: Any = open_provider(ref)
    model_dir = provider.model_source()
    have_lmeval = LMEVAL_PY.is_file()
    work = Path(tempfile.mkdtemp(prefix="lmeval-"))
    (work / "tasks").mkdir()
    (work / "tasks" / "promptkit_yelp.yaml").write_text(LMEVAL_TASK.format(data=YELP))
    projects = {"promptkit": eval_project(), "promptkit_fp32": eval_project("float32")}
    variants: list[tuple[str, Any]] = [
        ("promptkit", lambda: promptkit_eval(projects["promptkit"], limit=limit)),
        ("lmeval_bf16", lambda: lmeval_run(work, model_dir, "bfloat16", limit)),
        ("promptkit_fp32", lambda: promptkit_eval(projects["promptkit_fp32"], limit=limit)),
        ("lmeval_fp32", lambda: lmeval_run(work, model_dir, "float32", limit)),
    ]
    if not have_lmeval:
        variants = [v for v in variants if not v[0].startswith("lmeval")]
    native_bf16 = provider.precision.dtype == "bfloat16"
    if not native_bf16:  # auto chose fp32: the default run is the fp32 run, and lm-eval's bf16 would be emulated
        print(f"  no native bf16 here ({provider.precision.reason}): promptkit default (fp32) vs lm-eval fp32 only")
        variants = [v for v in variants if v[0] in ("promptkit", "lmeval_fp32")]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    for r in range(rounds):
        for name, run in variants:
            out = run()
            runs[name].append(out)
            shown = f"{out['seconds']:.1f} s" if "seconds" in out else out["error"]
            print(f"    round {r + 1}: {name:<15} {shown}", flush=True)
    print(f"whole processes on {YELP.name} ({limit or 1000} reviews), {rounds} alternating rounds, medians:")
    ok = {name: [o for o in outs if "error" not in o] for name, outs in runs.items()}
    for name, outs in runs.items():
        if not ok[name]:
            report(f"{name}_seconds", "failed", "", note=outs[0].get("error", ""))
    if not ok.get("promptkit"):
        return
    pk = ok["promptkit"]
    dtype = pk[0]["dtype"]
    results["_eval_process"] = {"seconds": median(o["seconds"] for o in pk), "examples": pk[0]["examples"]}
    report("eval_process_seconds", median(o["seconds"] for o in pk), "", "s", "default options, model load included",
           dtype=dtype)
    report("eval_accuracy", pk[0]["acc"], "~0.874 (unchanged)", dtype=dtype)
    report("eval_peak_memory_mb", max(o["peak"] for o in pk), "< 1200 MB", "MB", "ru_maxrss, worst of the runs",
           dtype=dtype)
    if ok.get("promptkit_fp32"):
        f = ok["promptkit_fp32"]
        report("eval_fp32_process_seconds", median(o["seconds"] for o in f), "", "s", dtype="float32")
        report("eval_fp32_accuracy", f[0]["acc"], "", dtype="float32")
        report("eval_default_vs_fp32_identical_decisions", agreement(pk[0], f[0]), ">= 99%", "%", dtype=dtype)
        report("eval_default_vs_fp32_accuracy_delta_pt", 100 * (pk[0]["acc"] - f[0]["acc"]), "within +-0.5 pt", "pt",
               dtype=dtype)
    pairs = (("lmeval_bf16", ">= 1.5x (native bf16)", "promptkit"),
             ("lmeval_fp32", ">= 2.5x (native bf16)", "promptkit"),
             ("lmeval_fp32", ">= 1.5x (fp32 vs fp32)", "promptkit_fp32"))
    if not native_bf16:
        pairs = (("lmeval_fp32", ">= 1.5x (no native bf16: auto picks fp32)", "promptkit"),)
    for lm, goal, ours in pairs:
        if not ok.get(lm) or not ok.get(ours):
            if not have_lmeval:
                report(f"{lm}_ratio", "not measured", goal, note="run benchmarks/setup_lmeval.sh first")
            continue
        lm_dtype = ok[lm][0]["dtype"]
        if ours == "promptkit":
            report(f"{lm}_seconds", median(o["seconds"] for o in ok[lm]), "", "s", "whole process", dtype=lm_dtype)
            report(f"{lm}_accuracy", ok[lm][0]["acc"], "same as ours", dtype=lm_dtype)
            report(f"{lm}_peak_memory_mb", max(o["peak"] for o in ok[lm]), "", "MB", dtype=lm_dtype)
        paired = [a["seconds"] / b["seconds"] for a, b in zip(runs[lm], runs[ours], strict=True)
                  if "seconds" in a and "seconds" in b]
        ratio = median(o["seconds"] for o in ok[lm]) / median(o["seconds"] for o in ok[ours])
        name = f"{lm}_ratio" if ours == "promptkit" else f"{lm}_ratio_vs_promptkit_fp32"
        report(name, ratio, goal, "x", f"lm-eval {lm_dtype} / promptkit {ok[ours][0]['dtype']} medians; per round: "
               + ", ".join(f"{p:.2f}" for p in paired), dtype=ok[ours][0]["dtype"])
    for p in projects.values():
        shutil.rmtree(p, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


SECTIONS = ("help", "startup", "lmeval", "dtypes", "lora", "chat", "cached", "naive")


def bench_fast_vs_naive(scoring_n: int, naive_n: int, gen_n: int, gen_naive_n: int) -> None:
    from promptkit.models import resolve_model
    from promptkit.providers.factory import open_provider

    ref = resolve_model("smollm2")
    provider: Any = open_provider(ref, forward_batch=16, dtype="float32")
    bench_scoring(provider, scoring_n, naive_n)
    bench_generation(provider, gen_n, gen_naive_n)
    provider.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every figure")
    parser.add_argument("--scoring-n", type=int, default=500,
                        help="reviews scored in-process (the whole-process eval scores all 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the whole-process comparison")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to leave out: {','.join(SECTIONS)}")
    parser.add_argument("--lora-steps", type=int, default=12)
    parser.add_argument("--generation-n", type=int, default=256)
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not YELP.is_file():
        sys.exit(f"benchmark data not found: {YELP}")
    q = args.quick
    scoring_n, naive_n = (48, 8) if q else (args.scoring_n, 40)
    gen_n, gen_naive_n = (16, 4) if q else (args.generation_n, 12)  # 4 interleaved rounds of 64: what the eval loop hands over
    eval_limit = 48 if q else None

    start = time.perf_counter()
    print(f"promptkit benchmark · {os.cpu_count()} cores · load {os.getloadavg()[0]:.1f}")
    sections = {
        "help": bench_help,
        "startup": bench_startup,
        "lmeval": lambda: bench_against_lmeval(eval_limit, 1 if q else args.rounds),
        "dtypes": lambda: bench_dtypes(scoring_n, gen_n),
        "lora": lambda: bench_lora(2 if q else args.lora_steps, 1 if q else 2),
        "chat": lambda: bench_precision_suites(eval_limit),
        "cached": lambda: bench_cached_rerun(16 if q else 1000),
        "naive": lambda: bench_fast_vs_naive(scoring_n, naive_n, gen_n, gen_naive_n),
    }
    assert list(sections) == list(SECTIONS)
    for name, run in sections.items():
        if name in skip:
            continue
        try:
            run()
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others' figures
            report(f"{name}_section", "failed", "", note=f"{type(e).__name__}: {e}"[:300])
        args.output.write_text(json.dumps(results, indent=2))  # written as it goes: a long run keeps what it has
    results["_total_seconds"] = time.perf_counter() - start
    results["_load_average"] = os.getloadavg()[0]
    args.output.write_text(json.dumps(results, indent=2))
    print(f"total {results['_total_seconds']:.0f} s · results: {args.output}")


if __name__ == "__main__":
    main()
