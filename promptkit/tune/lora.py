"""Local LoRA fine-tuning with peft on the suite's hf model.

The prompt tokens are exactly the ones the hf provider feeds the model at eval time
(`HFProvider.encode_prompt`); the loss covers the answer and the end-of-turn token only.
Training is seeded, writes a resumable checkpoint every few steps, computes a validation loss
per epoch with early stopping, and reports progress through a callback."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptkit.config import atomic_write
from promptkit.device import select_precision
from promptkit.errors import ConfigError
from promptkit.models import DEFAULT_MODEL, resolve_model
from promptkit.providers.factory import open_provider
from promptkit.tune.base import Estimate, TuneResult, check_out_dir
from promptkit.tune.methods import load_base, method_of, validate
from promptkit.tune.run import adapter_version, before_after, measured_speed, record_speed
from promptkit.tune.search import successive_halving
from promptkit.tune.trainset import TrainRow

IGNORE = -100
CHECKPOINT = "checkpoint"


@dataclass
class LoraSettings:
    method: str = "lora"  # promptkit.tune.methods.METHODS
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    lr: float | None = None  # None: the method's default (promptkit.tune.methods)
    virtual_tokens: int = 20  # prompt-tuning / prefix-tuning
    init_text: str | None = "Classify the text and answer with its label."  # prompt-tuning start
    batch_size: int = 8
    epochs: int = 1
    patience: int = 1  # epochs without a lower validation loss before stopping
    warmup: float = 0.05  # fraction of steps with a linear warm-up
    seed: int = 0
    val_fraction: float = 0.05
    max_steps: int | None = None
    time_budget: float | None = None  # seconds of training, then validate and save what there is
    checkpoint_every: int = 20  # steps
    threads: int | None = None
    dtype: str = "auto"  # auto: bf16 autocast where the hardware multiplies bf16 natively (promptkit.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def learning_rate(self) -> float:
        return float(self.lr) if self.lr is not None else method_of(self.method).default_lr


@dataclass
class TrainEvent:
    """What a progress callback receives after each step and each validation."""

    phase: str  # "train" | "validate" | "done"
    epoch: int
    step: int
    total_steps: int
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float = 0.0


ProgressCallback = Callable[[TrainEvent], None]


def encode_rows(provider: Any, rows: Sequence[TrainRow]) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) per row: the eval's prompt tokens, the answer, the end-of-turn token."""
    tokenizer = provider.tokenizer
    eot = tokenizer.eos_token_id
    encoded = []
    for row in rows:
        context = provider.encode_prompt(row.request)
        answer = provider.continuation_ids(context, provider.prompt_text(row.request), row.request.label_prefix + row.target)
        encoded.append((context + answer + [eot], len(context)))
    return encoded


def _batch(items: Sequence[tuple[list[int], int]], pad: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (ids, n_prompt) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, n_prompt: len(ids)] = torch.tensor(ids[n_prompt:])
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def _order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return order


GROUP_BATCHES = 16  # batches per length-sorted window


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches, seeded: shuffle, sort each window of GROUP_BATCHES batches by length, cut it
    into batches, shuffle the batches. Rows of similar length share a batch, so little compute goes to
    padding (short reviews padded to the longest of a random batch wasted about a third of each step),
    while every batch still mixes rows from across the data. ceil(n / batch_size) batches, as unsorted."""
    order = _order(len(lengths), seed, epoch)
    window = batch_size * GROUP_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start: start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size))
    random.Random(seed * 1000 + epoch + 1).shuffle(batches)
    return batches


MIN_SHARED = 4  # shared prompt tokens worth a separate prefix forward


def shared_prefix(items: Sequence[tuple[list[int], int]]) -> int:
    """Prompt tokens every training row starts with (chat template, system turn, instruction), leaving at
    least one prompt token per row: they are computed once per batch instead of once per row."""
    from promptkit.providers.hf_fast import common_prefix  # hf_fast imports torch: only when training

    if not items:
        return 0
    n = min(common_prefix([ids for ids, _ in items]), min(n_prompt for _, n_prompt in items) - 1)
    return n if n >= MIN_SHARED else 0


def _computes_own_logits(model: Any) -> bool:
    """Soft-prompt adapters add virtual tokens in PeftModel.forward; some models post-process logits."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(inner, "config", None)
    if any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale")):
        return True
    active = getattr(model, "active_peft_config", None) if getattr(model, "peft_config", None) else None
    return bool(active is not None and active.is_prompt_learning)


def answer_loss(model: Any, items: Sequence[tuple[list[int], int]], pad: int, shared: int = 0) -> Any:
    """The training loss: mean cross-entropy of the answer tokens, as the model's own loss computes it, but
      - with the output head and softmax run only at the answer positions (a 49k-token vocabulary
        projection at every prompt position was a fifth of a step's matmuls, for scores the loss ignores);
      - with the first SHARED tokens (the prompt prefix every row has) run once, as a batch-1 forward
        whose keys and values every row attends to: gradients flow back through them all the same.
    Models that compute their own logits use their own forward and loss."""
    import torch
    import torch.nn.functional as F

    from promptkit.providers.hf_fast import _cache, _call, _layers, pack  # torch, as above

    if _computes_own_logits(model):
        return model(**_batch(items, pad)).loss
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    kv = None
    if shared:
        prefix = torch.tensor([items[0][0][:shared]])
        mask = torch.ones((1, 1, shared, shared), dtype=torch.bool).tril()
        cache = _cache(None, 1)
        _call(inner, cache, input_ids=prefix, attention_mask=mask, position_ids=torch.arange(shared).unsqueeze(0))
        kv = _layers(cache)
    packed = pack([row[shared:] for row, _ in items], shared, pad)
    out = _call(inner, _cache(kv, len(items)), input_ids=packed.ids, attention_mask=packed.mask,
                position_ids=packed.positions)
    rows, cols, targets = [], [], []
    for r, (ids, n_prompt) in enumerate(items):
        for j in range(n_prompt, len(ids)):  # token j is predicted at position j - 1
            rows.append(r)
            cols.append(packed.offsets[r] + j - 1 - shared)
            targets.append(ids[j])
    hidden = out.last_hidden_state[torch.tensor(rows), torch.tensor(cols)]
    logits = inner.get_output_embeddings()(hidden).float()
    return F.cross_entropy(logits, torch.tensor(targets, device=logits.device))


def _trained_weights(model: Any) -> dict[str, Any]:
    """The weights training changes: the adapter's, or every weight for `full`."""
    if not getattr(model, "peft_config", None):
        return dict(model.state_dict())
    from peft import get_peft_model_state_dict

    return dict(get_peft_model_state_dict(model))


def _load_trained_weights(model: Any, weights: dict[str, Any]) -> None:
    if not getattr(model, "peft_config", None):
        model.load_state_dict(weights)
        return
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, weights)


def saved_model(out: Path) -> bool:
    """Whether OUT holds a trained result: a peft adapter, or a full model folder (`--method full`)."""
    return (out / "adapter_config.json").is_file() or (out / "config.json").is_file()


def _save_checkpoint(out: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
    """Write the checkpoint next to the old one, then swap, so a kill never leaves a torn one."""
    import torch

    tmp, final, old = out / f".{CHECKPOINT}.tmp", out / CHECKPOINT, out / f".{CHECKPOINT}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({"adapter": _trained_weights(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}, tmp / "state.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _resume(folder: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Load a checkpoint into the model, optimizer and scheduler; its state (step, epoch, seconds ...).
    Tensors and plain data only (weights_only: a planted pickle runs nothing); a damaged or foreign
    checkpoint is one error naming it, before any step."""
    import torch

    try:
        saved = torch.load(folder / "state.pt", weights_only=True)
        _load_trained_weights(model, saved["adapter"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        state = json.loads((folder / "state.json").read_text())
        for key in ("step", "epoch", "seconds", "tokens"):
            if not isinstance(state[key], (int, float)) or isinstance(state[key], bool) or not math.isfinite(state[key]):
                raise ValueError(f"{key} is {state[key]!r}")
    except Exception as e:  # noqa: BLE001 - pickle, torch, json and key errors alike: the file is not ours
        raise ConfigError(f"the checkpoint cannot be resumed ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                          where=str(folder), hint="delete the checkpoint folder to train from the start, "
                          "or drop --resume") from None
    state["resumed_from"] = state["step"]
    return state


def has_checkpoint(out: Path) -> bool:
    return (out / CHECKPOINT / "state.json").is_file()


def _precision(dtype: str, threads: int) -> tuple[Any, Any]:
    """(dtype of the frozen base weights, autocast context factory). In bf16 the frozen base is stored in
    bf16 and the forward runs under bf16 autocast, while the adapter's trainable weights, their gradients
    and the optimizer state stay fp32 (the master weights)."""
    import contextlib

    import torch

    chosen = select_precision("cpu", dtype, threads).dtype
    if chosen == "bfloat16":
        return torch.bfloat16, lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.float32, contextlib.nullcontext


def _validation_loss(model: Any, items: Sequence[tuple[list[int], int]], pad: int, batch_size: int,
                     autocast: Any = None) -> float:
    import contextlib

    import torch

    model.eval()
    total, count = 0.0, 0
    shared = shared_prefix(items)
    with torch.no_grad(), (autocast or contextlib.nullcontext)():
        for start in range(0, len(items), batch_size):
            chunk = items[start: start + batch_size]
            n = sum(len(ids) - n_prompt for ids, n_prompt in chunk)
            total += float(answer_loss(model, chunk, pad, shared)) * n
            count += n
    model.train()
    return total / max(1, count)


def quiet_libraries() -> None:
    """Keep the libraries' deprecation chatter (transformers' FutureWarning on gradient checkpointing,
    peft and torch notices) and progress bars out of tune's output; errors still show."""
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(transformers|peft|torch)(\.|$)")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # optional-kernel notices of its CPU backend


def train_lora(
    provider: Any,
    train_rows: Sequence[TrainRow],
    val_rows: Sequence[TrainRow],
    out: Path,
    settings: LoraSettings,
    progress: ProgressCallback | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train an adapter (settings.method: lora, ia3, prompt-tuning, ...) on the provider's base model and
    save it to OUT (save_pretrained). With RESUME and a checkpoint in OUT, training continues from it.
    Returns metrics."""
    import torch
    from peft import get_peft_model

    method = validate(settings)
    memory = PeakMemory()
    quiet_libraries()
    threads = int(settings.threads or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    pad = provider.tokenizer.pad_token_id
    train = encode_rows(provider, train_rows)
    val = encode_rows(provider, val_rows)
    shared = shared_prefix(train)
    # qlora's 4-bit base computes in fp32 (bitsandbytes' CPU kernels); the others follow settings.dtype
    base_dtype, autocast = _precision("float32" if method.quantized else settings.dtype, threads)
    if method.full:  # every weight is a master weight: stored in fp32, bf16 only through autocast
        base_dtype = torch.float32
    model = load_base(str(provider.model_source()), method, base_dtype)
    if not method.full:
        model = get_peft_model(model, method.build(settings, provider))
    if method.init is not None:
        method.init(model, settings, provider)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # adapter master weights in fp32 whatever the base's dtype
    model.train()
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    warmup = int(total * settings.warmup)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate(),
                                  weight_decay=0.0)

    state: dict[str, Any] = {"step": 0, "epoch": 0, "best_val": None, "bad_epochs": 0, "history": [],
                             "tokens": 0, "seconds": 0.0, "resumed_from": None}

    def schedule(step: int) -> float:
        spent = float(state["seconds"]) / settings.time_budget if settings.time_budget else None
        return lr_factor(step, total, warmup, settings.warmup, spent)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    out.mkdir(parents=True, exist_ok=True)
    if resume and has_checkpoint(out):
        state = _resume(out / CHECKPOINT, model, optimizer, scheduler)
    start_time = time.perf_counter() - float(state["seconds"])
    step = int(state["step"])
    stopped_early = False
    losses: list[float] = []
    while step < total and state["epoch"] < settings.epochs:
        epoch = int(state["epoch"])
        batches = epoch_batches([len(ids) for ids, _ in train], settings.batch_size, settings.seed, epoch)
        first = step - epoch * steps_per_epoch
        for index in range(first, steps_per_epoch):
            if step >= total:
                break
            chunk = [train[i] for i in batches[index]]
            with autocast():
                loss = answer_loss(model, chunk, pad, shared)
            state["seconds"] = time.perf_counter() - start_time  # read by the schedule
            optimizer_step(model, loss, optimizer, scheduler)
            step += 1
            state["step"] = step
            state["tokens"] += sum(len(ids) for ids, _ in chunk)
            state["seconds"] = time.perf_counter() - start_time
            losses.append(loss.item())
            if settings.time_budget is not None and state["seconds"] >= settings.time_budget:
                total = step  # out of time: this epoch's validation and save still run
            if settings.checkpoint_every and step % settings.checkpoint_every == 0 and step < total:
                _save_checkpoint(out, model, optimizer, scheduler, state)
            if progress:
                progress(TrainEvent("train", epoch, step, total, losses[-1], None,
                                    state["tokens"] / max(1e-9, state["seconds"])))
        # end of an epoch (or of max_steps)
        val_loss = _validation_loss(model, val, pad, settings.batch_size, autocast) if val else None
        train_loss = sum(losses[-steps_per_epoch:]) / max(1, len(losses[-steps_per_epoch:])) if losses else None
        state["history"].append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "step": step})
        if progress:
            progress(TrainEvent("validate", epoch, step, total, train_loss, val_loss,
                                state["tokens"] / max(1e-9, state["seconds"])))
        state["epoch"] = epoch + 1
        if val_loss is None or state["best_val"] is None or val_loss < state["best_val"] - 1e-4:
            state["best_val"] = val_loss
            state["bad_epochs"] = 0
            _save(model, provider, out)  # the best adapter so far
        else:
            state["bad_epochs"] += 1
            if state["bad_epochs"] >= settings.patience:
                stopped_early = True
                break
        if state["epoch"] < settings.epochs and step < total:
            _save_checkpoint(out, model, optimizer, scheduler, state)
    if not saved_model(out):
        _save(model, provider, out)
    seconds = time.perf_counter() - start_time
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
    metrics = {
        "steps": step,
        "epochs": state["epoch"],
        "train_rows": len(train),
        "val_rows": len(val),
        "history": state["history"],
        "best_val_loss": state["best_val"],
        "final_train_loss": state["history"][-1]["train_loss"] if state["history"] else None,
        "stopped_early": stopped_early,
        "tokens": state["tokens"],
        "seconds": round(seconds, 2),
        "tokens_per_s": round(state["tokens"] / max(1e-9, seconds), 1),
        "resumed_from_step": state.get("resumed_from"),
        "method": settings.method,
        "lr": settings.learning_rate(),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "adapter_bytes": adapter_size(out),
        "peak_rss_mb": memory.stop(),
        "dtype": "bfloat16" if base_dtype == torch.bfloat16 else "float32",
    }
    if progress:  # epoch: the 0-based index of the last epoch run, as in the other events
        progress(TrainEvent("done", max(0, state["epoch"] - 1), step, total, metrics["final_train_loss"], state["best_val"],
                            metrics["tokens_per_s"]))
    atomic_write(out / "training.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _save(model: Any, provider: Any, out: Path) -> None:
    """save_pretrained; a full model's folder also gets the tokenizer, so it loads on its own as hf:OUT."""
    model.save_pretrained(str(out))
    if not getattr(model, "peft_config", None):
        provider.tokenizer.save_pretrained(str(out))


def adapter_size(out: Path) -> int:
    """Bytes of the saved weights: the adapter's, or a full model's."""
    return sum(p.stat().st_size for pattern in ("adapter_model.*", "model*.safetensors") for p in out.glob(pattern)
               if p.is_file())


class PeakMemory:
    """The process's peak resident memory while training, sampled from /proc (Linux; 0 elsewhere).
    ru_maxrss would count every earlier training of the same process (tune compare)."""

    def __init__(self, every: float = 0.2):
        import threading

        self.peak = self._rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(every,), daemon=True)
        self._thread.start()

    @staticmethod
    def _rss() -> int:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def _watch(self, every: float) -> None:
        while not self._done.wait(every):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return round(max(self.peak, self._rss()) / 2**20, 1)


def base_model_of(job: Any) -> tuple[str, Any]:
    """(spec, ModelRef) of the suite's model, which must be a local hf model."""

    spec = job.options.get("base_model") or job.suite.config.model or job.version.spec.settings.model or DEFAULT_MODEL
    ref = resolve_model(spec, job.project.models)
    if ref.provider != "hf" or ref.options.get("adapter"):
        raise ConfigError(f"the lora backend trains local hf models; {spec!r} is provider {ref.provider}"
                          + (" with an adapter" if ref.options.get("adapter") else ""),
                          where=str(job.suite.path), hint="set the suite's model to smollm2 or hf:PATH, or use --base-model")
    return spec, ref


def settings_of(options: dict[str, Any]) -> LoraSettings:
    known = set(LoraSettings.__dataclass_fields__)
    return LoraSettings(**{k: v for k, v in options.items() if k in known and v is not None})


class LoraTuner:
    """peft LoRA on the suite's hf model; registers the adapter and evaluates before/after."""

    name = "lora"

    def estimate(self, job: Any) -> Any:
        spec, ref = base_model_of(job)
        settings = settings_of(job.options)
        method = validate(settings)
        provider = open_provider(ref, job.project)
        tokens = sum(len(ids) for ids, _ in encode_rows(provider, job.trainset.rows))
        speed, source = measured_speed(job.project)  # LoRA's
        if method.relative_speed != 1.0:
            speed, source = speed * method.relative_speed, f"{source}, x{method.relative_speed:g} for {method.name}"
        return Estimate(settings.method, len(job.trainset.rows), tokens, settings.epochs,
                        seconds=tokens * settings.epochs / speed, cost=0.0, model=spec, note=f"{speed:.0f} tokens/s ({source})")

    def run(self, job: Any) -> Any:
        from datetime import datetime, timezone


        spec, ref = base_model_of(job)
        settings = settings_of(job.options)
        method = validate(settings)
        if not job.trainset.rows:
            raise ConfigError("the training set is empty")
        out = job.out_dir
        check_out_dir(out)
        if (out / "manifest.json").is_file() and not job.resume and not job.options.get("overwrite"):
            raise ConfigError(f"an adapter already exists in {out}", hint="choose another --name, or pass --overwrite")
        if job.resume and not has_checkpoint(out):
            job.notify(f"no checkpoint in {out}; starting from the beginning")
        if (out / "manifest.json").is_file() and not (job.resume and has_checkpoint(out)):
            for old in out.iterdir():  # --overwrite: a different method's files must not linger (weights, configs)
                if old.is_symlink() or old.is_file():
                    old.unlink()
        job.trainset.write(out / "data")
        calibration_note = adapter_version(job.version)[1]
        if calibration_note:
            job.notify(calibration_note)
        train_rows, val_rows = job.trainset.split(settings.val_fraction, settings.seed)
        provider = open_provider(ref, job.project)
        search, own_settings, own_metrics = None, settings, None
        if job.options.get("search") and not (job.resume and has_checkpoint(out)):
            from dataclasses import replace

            if method.name != "lora":
                raise ConfigError(f"--search explores LoRA settings; it does not apply to --method {method.name}",
                                  hint="use --method lora with --search")
            search = successive_halving(train_lora, provider, train_rows, val_rows, settings, float(settings.time_budget or 0),
                                        int(job.options.get("search_trials") or 8), out / "search", job.notify)
            if search.own is not None and search.winner != search.own:
                own_settings = replace(settings, **search.own, time_budget=search.final_budget)
                job.notify(f"search final: the run's own settings train for {search.final_budget:.0f} s first")
                own_metrics = train_lora(provider, train_rows, val_rows, out / "search-own", own_settings)
            settings = replace(settings, **search.winner, time_budget=search.final_budget)
            job.notify(f"search winner: {search.winner}; training it for {search.final_budget:.0f} s")
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        metrics = train_lora(provider, train_rows, val_rows, out, settings, progress=job.progress, resume=job.resume)
        if search is not None and own_metrics is not None:
            settings, metrics = _final(search, out, settings, metrics, own_settings, own_metrics, job.notify)
        if method.name == "lora":  # the estimate's reference speed is LoRA's
            record_speed(job.project, metrics["tokens_per_s"], started)
        manifest = {
            "backend": "lora",
            "method": method.name,
            "mergeable": method.mergeable,
            "name": job.name,
            "base_model": spec,
            "base_model_path": ref.model,
            "adapter": str(out.resolve()),
            "prompt": job.version.ref,
            "prompt_hash": job.version.hash,
            "dataset": job.trainset.manifest.get("dataset"),
            "dataset_hash": job.trainset.manifest.get("dataset_hash"),
            "trainset_hash": job.trainset.manifest.get("trainset_hash"),
            "split": job.trainset.manifest.get("split"),
            "rows": len(job.trainset.rows),
            "hyperparameters": settings.to_dict(),
            "metrics": metrics,
            "search": search.to_dict() if search else None,
            "calibration": "dropped" if calibration_note else None,
            "duration_s": metrics["seconds"],
            "started": started,
        }
        atomic_write(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        # a full fine-tune is a model folder of its own; an adapter is loaded over the base model
        model, where = (str(out.resolve()), {}) if method.full else (ref.model, {"adapter": str(out.resolve())})
        job.project.models.add(job.name, "hf", model, **where, base_model=spec,
                               prompt=job.version.ref, prompt_hash=job.version.hash,
                               dataset_hash=manifest["dataset_hash"], backend="lora",
                               method=method.name)
        job.notify(f"{'model' if method.full else 'adapter'} saved to {out} and registered as model {job.name!r}")
        comparison = None
        if job.evaluate:
            tuned = {"base_model": spec, **tuned_location(method, out), "train_dataset_hash": manifest["dataset_hash"],
                     "trainset_hash": manifest["trainset_hash"], "tuned_prompt_hash": job.version.hash}
            comparison = before_after(job.project, job.version, job.suite, spec, job.name, tuned,
                                      job.eval_data, job.eval_split, job.eval_limit)
            manifest["comparison"] = comparison.to_dict()
            atomic_write(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        return TuneResult("lora", job.name, job.name, manifest, comparison)


def tuned_location(method: Any, out: Path) -> dict[str, str]:
    """How an eval run of a tuned model records where it came from: its adapter, or its model folder."""
    return {"model_folder" if method.full else "adapter": str(out.resolve())}


def _final(search: Any, out: Path, winner: LoraSettings, winner_metrics: dict[str, Any], own: LoraSettings,
           own_metrics: dict[str, Any], notify: Callable[[str], None]) -> tuple[LoraSettings, dict[str, Any]]:
    """The search's final: the lower validation loss of the winner (trained into OUT) and the run's own
    settings (trained into OUT/search-own) becomes the adapter in OUT; ties go to the own settings."""
    losses = [m["best_val_loss"] if m["best_val_loss"] is not None else math.inf for m in (winner_metrics, own_metrics)]
    search.final = [{"settings": search.winner, "val_loss": winner_metrics["best_val_loss"]},
                    {"settings": search.own, "val_loss": own_metrics["best_val_loss"]}]
    own_dir = out / "search-own"
    kept = (winner, winner_metrics)
    if losses[1] <= losses[0]:
        for f in own_dir.iterdir():
            if f.is_file():
                shutil.copy2(f, out / f.name)
        search.kept, kept = "own", (own, own_metrics)
    notify(f"search final: winner val loss {losses[0]:.4f}, own settings {losses[1]:.4f}: keeping the "
           f"{'own settings' if search.kept == 'own' else 'winner'}")
    shutil.rmtree(own_dir, ignore_errors=True)
    return kept


def lr_factor(step: int, total: int, warmup_steps: int, warmup: float, spent: float | None = None) -> float:
    """The learning-rate multiplier: linear warm-up over `warmup_steps`, then linear decay to zero at `total`.
    With a time budget (`spent`: the fraction of it used), the run usually stops before `total`: warm-up and
    decay then follow whichever is further along, steps or time, so that the run ends at a low rate wherever
    the budget stops it instead of mid-schedule at a high one (which left budgeted trials, and the --search
    winner, at a noisier point than a full run)."""
    if spent is None:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total - step) / max(1, total - warmup_steps))
    progress = max(step / max(1, total), spent)
    if progress < warmup:
        return max(progress, 1 / max(1, total)) / warmup
    return max(0.0, (1 - progress) / (1 - warmup))


def optimizer_step(model: Any, loss: Any, optimizer: Any, scheduler: Any) -> None:
    """One training step from a batch's loss: gradients clipped to norm 1, then the optimizer and schedule."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
