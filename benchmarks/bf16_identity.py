"""How far bf16 arithmetic moves label decisions and greedy outputs from fp32, on any CPU.

Where the CPU has no native bf16 (AVX2 only) a bf16 matmul runs ~100x slower than fp32, so the
numerics are emulated the way AMX computes them: each decoder matmul takes bf16-rounded inputs,
accumulates in fp32 and rounds its output to bf16. Speed is not measured here (benchmarks/run.py
does, on a machine with native bf16); identity is. Variants:

- bf16: the model as `dtype: bfloat16` runs it (bf16 weights and residual stream; fp32 head).
- fp32-residual: bf16-rounded weights and matmul inputs/outputs, residual stream, norms and attention fp32.
- fp32-out: as fp32-residual, but matmul outputs kept fp32 (no CPU kernel in torch 2.13 offers this).
- weights-only: bf16-rounded weights, everything else fp32.

Also: the bf16 label margin of every flipped decision, and how many rows a margin threshold would send
back to fp32 to catch them all.

    python benchmarks/bf16_identity.py --n 500 --gen 128     # ~12 min on 2 AVX2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
YELP = ROOT.parent / "shared" / "data" / "sentiment" / "yelp.jsonl"
CHAT_INSTRUCTION = "Classify the sentiment of the customer review. Answer with one word: positive or negative."
sys.path.insert(0, str(ROOT))


def requests(rows: list[dict[str, str]], n: int, n_gen: int) -> dict[str, list[Any]]:
    from promptkit.results import Request

    labels = ["negative", "positive"]
    return {
        "text": [Request(id=str(i), text=f"Review: {r['text']}\nSentiment:", labels=labels, label_prefix=" ")
                 for i, r in enumerate(rows[:n])],
        "chat": [Request(id=str(i), messages=[{"role": "system", "content": CHAT_INSTRUCTION},
                                              {"role": "user", "content": r["text"]}], labels=labels)
                 for i, r in enumerate(rows[:n])],
        "gen": [Request(id=str(i), messages=[{"role": "user", "content": f"Summarize this review in a few words: {r['text']}"}],
                        max_tokens=24, stop=["\n"]) for i, r in enumerate(rows[:n_gen])],
    }


def emulate(model: Any, variant: str) -> None:
    """Replace each decoder Linear's forward (the fp32 head used for scores is not one of them)."""
    import torch
    import torch.nn.functional as F

    bf16 = torch.bfloat16
    with torch.no_grad():
        if variant != "bf16":  # the fp32 model's embeddings rounded as a bf16 model's would be
            emb = model.get_input_embeddings().weight
            emb.copy_(emb.to(bf16).float())
        for name, m in model.named_modules():
            if not isinstance(m, torch.nn.Linear) or "lm_head" in name:
                continue
            w = m.weight.detach().float() if variant == "bf16" else m.weight.detach().to(bf16).float()
            if variant == "weights-only":
                m.weight.copy_(w)
                continue
            forward = {
                "bf16": lambda x, w=w: F.linear(x.float(), w).to(bf16),
                "fp32-residual": lambda x, w=w: F.linear(x.to(bf16).float(), w).to(bf16).float(),
                "fp32-out": lambda x, w=w: F.linear(x.to(bf16).float(), w),
            }[variant]
            m.forward = forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="yelp rows scored with each prompt")
    parser.add_argument("--gen", type=int, default=128, help="yelp rows generated from")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "bf16-identity.json")
    args = parser.parse_args()

    from promptkit.models import resolve_model
    from promptkit.providers.factory import open_provider

    rows = [json.loads(line) for line in YELP.read_text().splitlines() if line.strip()]
    reqs = requests(rows, args.n, args.gen)
    ref = resolve_model("smollm2")
    out: dict[str, dict[str, list[Any]]] = {}
    for variant in ("fp32", "bf16", "fp32-residual", "fp32-out", "weights-only"):
        provider = open_provider(ref, forward_batch=64, dtype="bfloat16" if variant == "bf16" else "float32")
        provider.complete(reqs["text"][:2])  # loads the model
        if variant != "fp32":
            emulate(provider.hf_model, variant)
        start = time.perf_counter()
        responses = {k: provider.complete(r) for k, r in reqs.items()}
        out[variant] = {k: [r.scores if k != "gen" else r.output for r in rs] for k, rs in responses.items()}
        provider.close()
        print(f"{variant}: {time.perf_counter() - start:.0f} s", flush=True)

    def decision(scores: dict[str, float]) -> str:
        return max(scores, key=scores.__getitem__)

    summary: dict[str, Any] = {}
    for variant, got in out.items():
        row: dict[str, Any] = {}
        for k in ("text", "chat"):
            ref_scores, labels = out["fp32"][k], [r["label"] for r in rows[:args.n]]
            flips = [i for i, (a, b) in enumerate(zip(got[k], ref_scores, strict=True)) if decision(a) != decision(b)]
            margins = [abs(s["positive"] - s["negative"]) for s in got[k]]
            worst = max((margins[i] for i in flips), default=0.0)
            row[k] = {"identical_pct": 100 * (1 - len(flips) / args.n),
                      "accuracy": sum(decision(s) == y for s, y in zip(got[k], labels, strict=True)) / args.n,
                      "flipped_margins": sorted(round(margins[i], 4) for i in flips),
                      "rows_under_worst_flip_margin_pct": 100 * sum(m <= worst for m in margins) / args.n if flips else 0}
        same = sum(a == b for a, b in zip(got["gen"], out["fp32"]["gen"], strict=True))
        row["gen_identical_pct"] = 100 * same / args.gen
        summary[variant] = row
        print(f"{variant:14} text {row['text']['identical_pct']:.1f}% | chat {row['chat']['identical_pct']:.1f}% "
              f"(flips caught by re-scoring {row['chat']['rows_under_worst_flip_margin_pct']:.1f}% of rows) | "
              f"generation {row['gen_identical_pct']:.1f}% identical to fp32")
    args.output.write_text(json.dumps({"n": args.n, "gen": args.gen, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
