"""promptkit performance benchmark: every figure measured in this one run, printed beside its goal,
written to benchmarks/results.json.

    python benchmarks/run.py            # ~10-15 min on 2 cores; --quick for a smoke run
    benchmarks/setup_lmeval.sh          # once, for the lm-evaluation-harness comparison

Figures: label-scoring throughput vs the naive loop (one example at a time, one forward per label),
generation vs sequential greedy generate, the compute ceiling (matmul FLOP rate vs model FLOPs per
token), cached re-run, LoRA training tokens/s, `promptkit --help` time, peak memory of the default
eval, and the whole-process time of lm-evaluation-harness on the same 1000-review two-choice task."""

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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
YELP = ROOT.parent / "shared" / "data" / "sentiment" / "yelp.jsonl"
LMEVAL_PY = ROOT / "benchmarks" / ".lmeval-venv" / "bin" / "python"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the same for every process of the run (see hf.py)
sys.path.insert(0, str(ROOT))

results: dict[str, Any] = {}


def report(name: str, value: Any, goal: str, unit: str = "", note: str = "") -> None:
    results[name] = {"value": value, "unit": unit, "goal": goal, **({"note": note} if note else {})}
    shown = f"{value:.3g}" if isinstance(value, float) else str(value)
    print(f"  {name:<34} {shown:>10} {unit:<12} goal: {goal}{'  (' + note + ')' if note else ''}", flush=True)


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


def bench_scoring(provider: Any, n: int, n_naive: int) -> None:
    rows = load_yelp(n)
    requests = scoring_requests(rows)
    provider.complete(requests[:4])  # warm-up: load
    fast, t_fast, naive, t_naive = interleaved(provider.complete, provider.score_naive, requests, requests[:n_naive])
    tokens = sum(r.tokens_in + 1 for r in fast)
    diff = max(abs(f.scores[k] - s.scores[k]) for f, s in zip(fast, naive, strict=False) for k in s.scores)
    acc = sum(r.output == row["label"] for r, row in zip(fast, rows, strict=True)) / len(rows)
    acc_naive = sum(r.output == row["label"] for r, row in zip(naive, rows, strict=False)) / len(naive)
    acc_fast_same = sum(r.output == row["label"] for r, row in zip(fast[:n_naive], rows, strict=False)) / len(naive)
    rate, naive_rate = len(requests) / t_fast, len(naive) / t_naive
    print(f"label scoring: {len(requests)} yelp reviews fast, {len(naive)} naive")
    report("scoring_examples_per_s", rate, "", "ex/s")
    report("scoring_tokens_per_s", tokens / t_fast, "", "tok/s")
    report("scoring_naive_examples_per_s", naive_rate, "", "ex/s")
    report("scoring_speedup_vs_naive", rate / naive_rate, ">= 4x", "x")
    report("scoring_max_loglik_diff", diff, "< 1e-4", "nats")
    report("scoring_accuracy", acc, "unchanged (~0.874 on 1000)", "", f"naive on its {len(naive)}: {acc_naive:.3f}, "
           f"fast on the same: {acc_fast_same:.3f}")
    results["_scoring_tokens_per_example"] = tokens / len(requests)
    results["_scoring_rate"] = rate


def bench_generation(provider: Any, n: int, n_naive: int) -> None:
    requests = generation_requests(load_yelp(n))
    provider.complete(requests[:2])
    fast, t_fast, naive, t_naive = interleaved(provider.complete, provider.generate_naive, requests, requests[:n_naive])
    same = sum(f.output == s.output for f, s in zip(fast, naive, strict=False))
    rate, naive_rate = len(requests) / t_fast, len(naive) / t_naive
    print(f"generation: {len(requests)} yelp reviews batched, {len(naive)} sequential (greedy, <= 24 tokens, stop \\n)")
    report("generation_examples_per_s", rate, "", "ex/s")
    report("generation_tokens_per_s", sum(r.tokens_out for r in fast) / t_fast, "", "new tok/s")
    report("generation_naive_examples_per_s", naive_rate, "", "ex/s")
    report("generation_speedup_vs_naive", rate / naive_rate, ">= 5x", "x")
    report("generation_identical_outputs", f"{same}/{len(naive)}", "all identical")


def bench_ceiling(provider: Any) -> None:
    import torch

    model = provider.hf_model
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < 3:
        torch.mm(a, b)
        reps += 1
    flops = 2 * n**3 * reps / (time.perf_counter() - start)
    cfg = model.config
    embed = cfg.vocab_size * cfg.hidden_size
    body = sum(p.numel() for p in model.parameters()) - embed * (1 if cfg.tie_word_embeddings else 2)
    per_token = 2 * body  # the vocabulary projection runs only where a score is read: once per example
    per_example = per_token * results["_scoring_tokens_per_example"] + 2 * embed
    achieved = per_example * results["_scoring_rate"]
    print("compute ceiling (1024x1024 fp32 matmul, all threads):")
    report("matmul_gflops", flops / 1e9, "", "GFLOP/s")
    report("model_gflop_per_token", per_token / 1e9, "", "GFLOP")
    report("scoring_gflops", achieved / 1e9, "", "GFLOP/s")
    report("scoring_pct_of_ceiling", 100 * achieved / flops, "as high as possible", "%")


def bench_lora(provider: Any) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(provider._source()), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    texts = [f"Review: {r['text']}\nSentiment: {r['label']}" for r in load_yelp(64)]
    tok = provider.tokenizer
    steps, batch, tokens = 4, 8, 0
    start = 0.0
    for step in range(steps + 1):
        enc = tok(texts[step * batch:(step + 1) * batch], return_tensors="pt", padding=True)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        if step == 0:
            start = time.perf_counter()  # the first step warms up
        else:
            tokens += int(enc["attention_mask"].sum())
    print(f"LoRA training (r=8 on q/v, batch {batch}, {steps} timed steps):")
    report("lora_train_tokens_per_s", tokens / (time.perf_counter() - start), "", "tok/s")
    del model, base


def bench_help() -> None:
    times = []
    for _ in range(3):
        elapsed, _, res = timed_process([sys.executable, "-m", "promptkit", "--help"], ROOT, {"PYTHONPATH": str(ROOT)})
        assert res.returncode == 0, res.stderr
        times.append(elapsed)
    print("CLI start-up:")
    report("help_seconds", min(times), "< 0.5 s", "s", "best of 3")


def eval_project() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="promptkit-bench-"))
    for name in ("prompts", "evals"):
        shutil.copytree(ROOT / name, tmp / name)
    return tmp


def bench_eval_process(limit: int | None) -> None:
    """The default eval of 1000 yelp reviews as a whole process: time, peak memory, accuracy."""
    project = eval_project()
    cmd = [sys.executable, "-m", "promptkit", "eval", "sentiment", "--data", str(YELP), "--no-store", "-o", "r.json"]
    cmd += ["--limit", str(limit)] if limit else []
    elapsed, peak, res = timed_process(cmd, project, {"PYTHONPATH": str(ROOT)})
    if res.returncode != 0:
        print(res.stderr[-2000:])
        report("eval_process_seconds", "failed", "", note=res.stderr.strip().splitlines()[-1][:200])
        return
    data = json.loads((project / "r.json").read_text())
    acc = data["metrics"].get("accuracy", {}).get("value")
    n = data["settings"]["examples"]
    print(f"default eval as a whole process (`promptkit eval sentiment --data yelp.jsonl`, {n} examples):")
    report("eval_process_seconds", elapsed, "", "s", "model load included")
    report("eval_accuracy", acc, "~0.874 (unchanged)")
    report("eval_peak_memory_mb", peak, "< 1500 MB", "MB", "ru_maxrss of the process")
    results["_eval_process"] = {"seconds": elapsed, "examples": n}
    shutil.rmtree(project, ignore_errors=True)


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


def bench_lmeval(provider: Any, limit: int | None) -> None:
    print("lm-evaluation-harness (hf backend, batch 16, same converted model folder, same 1000 yelp two-choice task):")
    if not LMEVAL_PY.is_file():
        report("lmeval_ratio", "not measured", ">= 1.5x", note="run benchmarks/setup_lmeval.sh first")
        return
    ours = results.get("_eval_process")
    if not ours:
        report("lmeval_ratio", "not measured", ">= 1.5x", note="our whole-process eval failed")
        return
    work = Path(tempfile.mkdtemp(prefix="lmeval-"))
    (work / "tasks").mkdir()
    (work / "tasks" / "promptkit_yelp.yaml").write_text(LMEVAL_TASK.format(data=YELP))
    model_dir = provider._source()
    cmd = [str(LMEVAL_PY), "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model_dir},dtype=float32",
           "--tasks", "promptkit_yelp", "--include_path", str(work / "tasks"), "--batch_size", "16", "--device", "cpu",
           "--output_path", str(work / "out")]
    cmd += ["--limit", str(limit)] if limit else []
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(work / "hf"),
           "PYTHONPATH": ""}
    elapsed, peak, res = timed_process(cmd, work, env)
    if res.returncode != 0:
        line = (res.stderr.strip().splitlines() or ["?"])[-1][:300]
        report("lmeval_ratio", "not measured", ">= 1.5x", note=f"lm-eval failed: {line}")
        (ROOT / "benchmarks" / "lmeval_error.log").write_text(res.stderr[-20000:])
        return
    acc = None
    for path in (work / "out").rglob("results*.json"):
        acc = json.loads(path.read_text())["results"]["promptkit_yelp"].get("acc,none")
    report("lmeval_seconds", elapsed, "", "s", "whole process, model load included")
    report("lmeval_peak_memory_mb", peak, "", "MB")
    report("lmeval_accuracy", acc, "same as ours")
    report("lmeval_ratio", elapsed / ours["seconds"], ">= 1.5x", "x", "lm-eval seconds / promptkit seconds, whole processes")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every figure")
    parser.add_argument("--scoring-n", type=int, default=500,
                        help="reviews scored in-process (the whole-process eval scores all 1000)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args()
    if not YELP.is_file():
        sys.exit(f"benchmark data not found: {YELP}")
    q = args.quick
    scoring_n, naive_n = (48, 8) if q else (args.scoring_n, 40)
    gen_n, gen_naive_n = (16, 4) if q else (256, 12)  # 4 interleaved rounds of 64: what the eval loop hands over
    eval_limit = 48 if q else None

    from promptkit.models import resolve_model
    from promptkit.providers import make_provider

    start = time.perf_counter()
    print(f"promptkit benchmark · {os.cpu_count()} cores · load {os.getloadavg()[0]:.1f}")
    bench_help()
    ref = resolve_model("smollm2")
    bench_eval_process(eval_limit)
    bench_lmeval(make_provider(ref.provider, ref.model), eval_limit)
    bench_cached_rerun(16 if q else 1000)
    provider: Any = make_provider(ref.provider, ref.model, batch_size=16)
    bench_scoring(provider, scoring_n, naive_n)
    bench_generation(provider, gen_n, gen_naive_n)
    bench_ceiling(provider)
    bench_lora(provider)
    provider.close()
    results["_total_seconds"] = time.perf_counter() - start
    results["_load_average"] = os.getloadavg()[0]
    args.output.write_text(json.dumps({k: v for k, v in results.items() if not k.startswith("_scoring")}, indent=2))
    print(f"total {results['_total_seconds']:.0f} s · results: {args.output}")


if __name__ == "__main__":
    main()
