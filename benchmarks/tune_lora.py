"""Acceptance run of `promptkit tune --backend lora`: train on amazon, evaluate on yelp.

Trains the chat prompt's LoRA adapter (r=8, alpha=16, q/v projections, one epoch over the 1000
amazon rows) on the embedded SmolLM2, evaluates base and adapter on the 1000 yelp rows, and the
best prompt alone (the shipped text prompt) for reference; prints accuracies, the paired McNemar
test and the training time. Runs in a scratch copy of the project.

    python benchmarks/tune_lora.py [--limit-train N] [--limit-eval N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "sentiment"


def main() -> None:
    from promptkit.project import Project
    from promptkit.tune.base import TuneJob, tuners
    from promptkit.tune.run import compare, evaluate_model
    from promptkit.tune.trainset import build_trainset

    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-train", type=int)
    parser.add_argument("--limit-eval", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--resume", action="store_true", help="continue a killed run in --out from its checkpoint")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="tune-bench-"))
    for name in ("prompts", "evals"):
        if not (work / name).exists():
            shutil.copytree(ROOT / name, work / name)
    project = Project(work)
    version = project.library.resolve("sentiment-chat@v1")
    suite = project.suite("sentiment-chat")
    amazon, yelp = DATA / "amazon.jsonl", DATA / "yelp.jsonl"
    trainset = build_trainset(project, version, suite, train_data=amazon, eval_data=yelp, limit=args.limit_train)
    print(f"training rows: {len(trainset.rows)} from {amazon.name}; eval: {yelp.name}", flush=True)
    last = [0.0]

    def progress(event: object) -> None:
        now = time.time()
        if getattr(event, "phase", "") != "train" or now - last[0] > 30:
            last[0] = now
            print(f"  {event}", flush=True)

    out = work / ".promptkit" / "adapters" / "sentiment-chat-lora"
    job = TuneJob(project, version, suite, trainset, "sentiment-chat-lora", out,
                  options={"lr": args.lr, "threads": args.threads, "overwrite": True}, resume=args.resume,
                  eval_data=yelp, eval_limit=args.limit_eval, progress=progress, notify=print)
    tuner = tuners.get("lora")()
    estimate = tuner.estimate(job)
    print(f"estimate: {estimate}", flush=True)
    start = time.perf_counter()
    result = tuner.run(job)
    total = time.perf_counter() - start
    comparison = result.comparison
    prompt_version = project.library.resolve("sentiment@v1")
    best_prompt = evaluate_model(project, prompt_version, project.suite("sentiment"), "smollm2", data=yelp,
                                 limit=args.limit_eval)
    vs_prompt = compare(best_prompt, comparison.after)
    import peft  # the adapter folder loads with plain peft
    from transformers import AutoModelForCausalLM

    adapter_config = json.loads((Path(result.manifest["adapter"]) / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(adapter_config["base_model_name_or_path"])
    peft.PeftModel.from_pretrained(base, result.manifest["adapter"])
    figures = {
        "train_rows": len(trainset.rows),
        "train_seconds": result.manifest["duration_s"],
        "tune_total_seconds": round(total, 1),
        "tokens_per_s": result.manifest["metrics"]["tokens_per_s"],
        "val_loss": result.manifest["metrics"]["best_val_loss"],
        "yelp_base_chat": comparison.before.metric("accuracy"),
        "yelp_adapter": comparison.after.metric("accuracy"),
        "yelp_best_prompt": best_prompt.metric("accuracy"),
        "p_adapter_vs_base": comparison.test.p_value,
        "p_adapter_vs_best_prompt": vs_prompt.test.p_value,
        "adapter_vs_best_prompt_discordant": [vs_prompt.test.a_only, vs_prompt.test.b_only],
        "adapter": result.manifest["adapter"],
        "peft_load": "ok",
    }
    print(json.dumps(figures, indent=2))
    print(f"ratio adapter/best-prompt accuracy: {figures['yelp_adapter'] / figures['yelp_best_prompt']:.3f}")


if __name__ == "__main__":
    main()
