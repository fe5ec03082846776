"""Preference training (`--method dpo`): a LoRA adapter trained with the DPO loss on `prompt, chosen,
rejected` JSONL (what `promptkit view export-preferences` writes; extra keys are ignored).

DPO (Rafailov et al. 2023) needs no reward model: with log-probabilities of a whole answer under the
policy (base + adapter) and under the reference (the same model with the adapter disabled),

    loss = -log sigmoid(beta * ((pi(chosen) - ref(chosen)) - (pi(rejected) - ref(rejected))))

so the policy raises the chosen answer relative to the rejected one, measured against where it
started. TRL's DPOTrainer would pull datasets/pandas/pyarrow for these few lines, hence our own.
The prompt becomes one user turn of the model's chat template; the answer is followed by end-of-turn."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write, decode_text
from promptkit.data import max_dataset_bytes
from promptkit.errors import ConfigError
from promptkit.fileio import read_regular
from promptkit.providers.factory import open_provider
from promptkit.strict_json import loads_strict
from promptkit.tune.base import Estimate, TuneResult, check_out_dir
from promptkit.tune.lora import (
    PeakMemory,
    TrainEvent,
    adapter_size,
    base_model_of,
    lr_factor,
    optimizer_step,
    quiet_libraries,
    settings_of,
)
from promptkit.tune.methods import METHODS, load_base, validate
from promptkit.tune.run import adapter_version, before_after, measured_speed

KEYS = ("prompt", "chosen", "rejected")
HELD_OUT = 0.2


@dataclass
class Pair:
    prompt: str
    chosen: str
    rejected: str


class _PairError(ValueError):
    """A preference line that parses but cannot be taken as written."""


def load_pairs(path: Path) -> list[Pair]:
    """The preference file, every line checked: one error naming the file and line. Read as datasets are
    read: a FIFO or device is refused before anything is read, the size is capped, a BOM is tolerated,
    and a key written twice or a NaN is an error rather than a silent pick."""
    try:
        raw = read_regular(path, max_dataset_bytes(), "preference file")
    except ConfigError as e:
        raise ConfigError(e.message, where=e.where,
                          hint=e.hint or "write one with promptkit view export-preferences") from None
    text = decode_text(raw, path, "utf-8-sig")
    pairs = []
    # split on newlines only: str.splitlines would also cut at U+2028 and the like inside a JSON string
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = loads_strict(line, _PairError, "the key {key!r} is written twice (which value is meant?)",
                                  "{name} is not a number JSON allows")
        except _PairError as e:
            raise ConfigError(str(e), where=where, hint="fix that line") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"not JSON: {e.msg} at column {e.colno}", where=where,
                              hint="one JSON object per line") from None
        except RecursionError:
            raise ConfigError("not JSON: nested too deeply", where=where, hint="one JSON object per line") from None
        if not isinstance(record, dict):
            raise ConfigError(f"expected a JSON object with {', '.join(map(repr, KEYS))}, got {type(record).__name__}",
                              where=where)
        missing = [k for k in KEYS if k not in record]
        if missing:  # the keys found, quoted, show look-alikes such as 'Prompt' or 'chosen '
            raise ConfigError(f"each line needs non-empty text 'prompt', 'chosen' and 'rejected'; {missing[0]!r} is "
                              "missing", where=where,
                              hint=f"keys in this line: {', '.join(repr(k) for k in record)[:200] or 'none'}")
        for key in KEYS:
            if not isinstance(record[key], str) or not record[key].strip():
                raise ConfigError(f"each line needs non-empty text 'prompt', 'chosen' and 'rejected'; {key!r} is "
                                  f"{json.dumps(record[key])[:40]}", where=where)
        if record["chosen"] == record["rejected"]:
            raise ConfigError("'chosen' and 'rejected' are the same text: no preference to learn",
                              where=where, hint="drop the line")
        pairs.append(Pair(record["prompt"], record["chosen"], record["rejected"]))
    if not pairs:
        raise ConfigError("the preference file is empty", where=str(path))
    return pairs


def split_pairs(pairs: Sequence[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): a seeded hold-out of FRACTION of the pairs (none when there are fewer than 4)."""
    if fraction <= 0 or len(pairs) < 4:
        return list(pairs), []
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[: max(1, round(len(pairs) * fraction))])
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


def encode_pair(tokenizer: Any, pair: Pair) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, chosen ids, rejected ids); answers end with the end-of-turn token."""
    messages = [{"role": "user", "content": pair.prompt}]
    if getattr(tokenizer, "chat_template", None):
        prompt = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=False))
    else:
        prompt = tokenizer(pair.prompt, add_special_tokens=True)["input_ids"]
    eot = [tokenizer.eos_token_id]
    return (prompt, tokenizer(pair.chosen, add_special_tokens=False)["input_ids"] + eot,
            tokenizer(pair.rejected, add_special_tokens=False)["input_ids"] + eot)


def answer_logprobs(model: Any, items: Sequence[tuple[list[int], list[int]]], pad: int) -> Any:
    """Summed log-probability of each answer after its prompt: one padded forward. Returns a [N] tensor."""
    import torch

    width = max(len(p) + len(a) for p, a in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    answer = torch.zeros((len(items), width), dtype=torch.bool)
    for row, (prompt, ans) in enumerate(items):
        seq = prompt + ans
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        answer[row, len(prompt): len(seq)] = True
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    token_lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_lp * answer[:, 1:]).sum(-1)


def preference_margins(model: Any, encoded: Sequence[tuple[list[int], list[int], list[int]]], pad: int,
                       batch_size: int = 8) -> list[float]:
    """log p(chosen) - log p(rejected) per pair under MODEL as it is now (adapter on or off)."""
    import torch

    margins: list[float] = []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start: start + batch_size]
            lp = answer_logprobs(model, [(p, c) for p, c, _ in chunk] + [(p, r) for p, _, r in chunk], pad)
            margins += (lp[: len(chunk)] - lp[len(chunk):]).tolist()
    return margins


def dpo_loss(policy_chosen: Any, policy_rejected: Any, ref_chosen: Any, ref_rejected: Any, beta: float) -> Any:
    import torch.nn.functional as F

    return -F.logsigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))).mean()


def train_dpo(provider: Any, pairs: Sequence[Pair], held_out: Sequence[Pair], out: Path, settings: Any,
              beta: float = 0.1, progress: Any = None) -> dict[str, Any]:
    """Train a LoRA adapter with the DPO loss, save it to OUT; metrics include the held-out pairs'
    mean preference margin (log-ratio chosen vs rejected) before and after."""
    import torch
    from peft import get_peft_model

    quiet_libraries()

    if not (math.isfinite(beta) and beta > 0):
        raise ConfigError(f"the DPO beta must be > 0, got {beta!r}", hint="e.g. --beta 0.1")
    torch.set_num_threads(int(settings.threads or os.cpu_count() or 1))
    torch.manual_seed(settings.seed)
    memory = PeakMemory()
    tokenizer, pad = provider.tokenizer, provider.tokenizer.pad_token_id
    train, held = [encode_pair(tokenizer, p) for p in pairs], [encode_pair(tokenizer, p) for p in held_out]
    lora = METHODS["lora"]
    model = get_peft_model(load_base(str(provider.model_source()), lora), lora.build(settings, provider))
    model.eval()
    before = preference_margins(model, held, pad) if held else []  # a fresh LoRA adapter is the identity
    model.train()
    total = math.ceil(len(train) / settings.batch_size) * settings.epochs
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    lr = float(settings.lr) if settings.lr is not None else 5e-4
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    warmup = int(total * settings.warmup)
    start, step, tokens, losses = time.perf_counter(), 0, 0, []
    budget = settings.time_budget
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
        s, total, warmup, settings.warmup, (time.perf_counter() - start) / budget if budget else None))
    rng = random.Random(settings.seed)
    while step < total:
        order = list(range(len(train)))
        rng.shuffle(order)
        for first in range(0, len(order), settings.batch_size):
            if step >= total:
                break
            chunk = [train[i] for i in order[first: first + settings.batch_size]]
            items = [(p, c) for p, c, _ in chunk] + [(p, r) for p, _, r in chunk]
            with torch.no_grad(), model.disable_adapter():  # the reference: the base model
                ref = answer_logprobs(model, items, pad)
            policy = answer_logprobs(model, items, pad)
            n = len(chunk)
            loss = dpo_loss(policy[:n], policy[n:], ref[:n], ref[n:], beta)
            optimizer_step(model, loss, optimizer, scheduler)
            step += 1
            tokens += sum(len(p) + len(a) for p, a in items)
            losses.append(float(loss))
            seconds = time.perf_counter() - start
            if progress:
                progress(TrainEvent("train", 0, step, total, losses[-1], None, tokens / max(1e-9, seconds)))
            if settings.time_budget is not None and seconds >= settings.time_budget:
                total = step
    model.eval()
    after = preference_margins(model, held, pad) if held else []
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    seconds = time.perf_counter() - start
    metrics = {
        "method": "dpo", "beta": beta, "lr": lr, "steps": step, "train_pairs": len(train), "held_out_pairs": len(held),
        "final_loss": losses[-1] if losses else None, "losses": [round(x, 4) for x in losses],
        "held_out_margin_before": sum(before) / len(before) if before else None,
        "held_out_margin_after": sum(after) / len(after) if after else None,
        "held_out_preferred_before": sum(m > 0 for m in before), "held_out_preferred_after": sum(m > 0 for m in after),
        "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / max(1e-9, seconds), 1),
        "adapter_bytes": adapter_size(out), "peak_rss_mb": memory.stop(),
    }
    atomic_write(out / "training.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


class DpoTuner:
    """`--method dpo` on the local model: LoRA + the DPO loss on a preference file (job.options['preferences'])."""

    name = "dpo"

    def _pairs(self, job: Any) -> list[Pair]:
        path = job.options.get("preferences")
        if not path:
            raise ConfigError("--method dpo needs a preference file", hint="pass --data PREFS.jsonl (prompt, chosen, rejected)")
        return load_pairs(Path(path))

    def estimate(self, job: Any) -> Any:

        spec, ref = base_model_of(job)
        settings = settings_of(job.options)
        pairs = self._pairs(job)
        provider: Any = open_provider(ref, job.project)
        tokens = sum(len(p) + len(c) + len(p) + len(r) for p, c, r in (encode_pair(provider.tokenizer, x) for x in pairs))
        speed, source = measured_speed(job.project)
        # two forwards (reference, policy) and one backward per sequence: about 1.5 LoRA steps' work
        return Estimate("dpo", len(pairs), tokens, settings.epochs, seconds=1.5 * tokens * settings.epochs / speed,
                        cost=0.0, model=spec, note=f"{speed:.0f} tokens/s ({source})")

    def run(self, job: Any) -> Any:
        from datetime import datetime, timezone


        spec, ref = base_model_of(job)
        settings = settings_of({**job.options, "method": "lora"})
        validate(settings)
        pairs = self._pairs(job)
        out = job.out_dir
        check_out_dir(out)
        beta = job.options.get("beta")
        beta = 0.1 if beta is None else float(beta)  # not `or 0.1`: a beta of 0 is refused, not replaced
        if not (math.isfinite(beta) and beta > 0):  # checked before the model loads, not after
            raise ConfigError(f"the DPO beta must be a finite number > 0, got {beta!r}", hint="e.g. --beta 0.1")
        if (out / "manifest.json").is_file() and not job.options.get("overwrite"):
            raise ConfigError(f"an adapter already exists in {out}", hint="choose another --name, or pass --overwrite")
        # a fifth of the pairs held out: the measure of whether the preference moved needs more than a handful
        train, held = split_pairs(pairs, HELD_OUT, settings.seed)

        if job.evaluate and adapter_version(job.version)[1]:
            job.notify(str(adapter_version(job.version)[1]))
        provider: Any = open_provider(ref, job.project)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        metrics = train_dpo(provider, train, held, out, settings, beta=beta,
                            progress=job.progress)
        if metrics["held_out_margin_before"] is not None:
            job.notify(f"held-out pairs: mean log-ratio chosen vs rejected {metrics['held_out_margin_before']:.3f} -> "
                       f"{metrics['held_out_margin_after']:.3f}; chosen preferred in "
                       f"{metrics['held_out_preferred_before']} -> {metrics['held_out_preferred_after']} of {len(held)}")
        manifest = {"backend": "lora", "method": "dpo", "mergeable": True, "name": job.name, "base_model": spec,
                    "base_model_path": ref.model, "adapter": str(out.resolve()), "prompt": job.version.ref,
                    "prompt_hash": job.version.hash, "preferences": str(job.options["preferences"]),
                    "rows": len(pairs), "hyperparameters": {**settings.to_dict(), "beta": metrics["beta"]},
                    "metrics": metrics, "duration_s": metrics["seconds"], "started": started}
        atomic_write(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        job.project.models.add(job.name, "hf", ref.model, adapter=str(out.resolve()), base_model=spec,
                               prompt=job.version.ref, prompt_hash=job.version.hash, backend="lora", method="dpo")
        job.notify(f"adapter saved to {out} and registered as model {job.name!r}")
        comparison = None
        if job.evaluate:
            tuned = {"base_model": spec, "adapter": str(out.resolve()), "method": "dpo"}
            comparison = before_after(job.project, job.version, job.suite, spec, job.name, tuned,
                                      job.eval_data, job.eval_split, job.eval_limit)
            manifest["comparison"] = comparison.to_dict()
            atomic_write(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        return TuneResult("lora", job.name, job.name, manifest, comparison)
