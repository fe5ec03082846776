"""Evaluating prompt-tuning and prefix-tuning adapters.

Their virtual tokens are added by `PeftModel.forward` / `generate`; the hf provider's batched fast
path calls the decoder directly and would skip them. So the provider hands such models here: scoring
runs right-padded batches through the PeftModel (padding after the text leaves every real position's
logits as they are alone), generation one example at a time; each example's failure is kept to itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from promptkit.errors import first_line
from promptkit.results import Request, Response


def is_soft_prompt(model: Any) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


# rows of (context + label) per forward, capped in tokens: the logits kept are vocab-sized per token
BATCH_TOKENS = 1024


def _label_logprobs(model: Any, rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad: int, device: Any) -> list[float]:
    """Total log-probability of each row's continuation after its context, in one right-padded forward."""
    import torch

    seqs = [list(context) + list(cont) for context, cont in rows]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
    # only the positions that predict a continuation need logits: the last `keep` of the padded width
    # (prompt tuning puts its virtual tokens in front, so counting from the end skips them too)
    keep = max(width - len(context) + 1 for context, _ in rows)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, -keep:].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    totals = []
    for r, (context, cont) in enumerate(rows):
        at = keep - (width - len(context) + 1)  # where row r's last context token sits among the kept
        totals.append(float(sum(logprobs[r, at + j, tok] for j, tok in enumerate(cont))))
    return totals


def score(provider: Any, requests: Sequence[Request]) -> list[Response]:
    """Label scoring: the total log-likelihood of each label after the prompt."""
    model = provider.hf_model
    device = next(model.parameters()).device
    pad = provider.tokenizer.pad_token_id or 0
    prepared: dict[int, Any] = {}
    for i, request in enumerate(requests):
        try:
            prepared[i] = provider._label_tokens(request)
        except Exception as e:  # noqa: BLE001 - failure is data
            prepared[i] = e
    rows = [(i, label, prepared[i][0], cont) for i in sorted(prepared, key=lambda i: _length(prepared[i]))
            if not isinstance(prepared[i], Exception) for label, cont in prepared[i][1].items()]
    batches: list[list[int]] = [[]]
    width = 0
    for k, (_, _, context, cont) in enumerate(rows):  # sorted by length, so a batch's rows pad little
        width = max(width, len(context) + len(cont))
        if batches[-1] and (len(batches[-1]) + 1) * width > BATCH_TOKENS:
            batches.append([])
            width = len(context) + len(cont)
        batches[-1].append(k)
    totals: dict[int, Any] = {}
    for batch in batches:
        if batch:
            provider._isolated(batch, lambda ks: _label_logprobs(model, [rows[k][2:] for k in ks], pad, device), totals)
    scores: dict[int, dict[str, float]] = {}
    for k, (i, label, _, _) in enumerate(rows):
        if isinstance(totals[k], Exception):
            prepared[i] = totals[k]
        scores.setdefault(i, {})[label] = totals[k]
    responses = []
    for i in range(len(requests)):
        if isinstance(prepared[i], Exception):
            responses.append(Response(error=first_line(prepared[i])))
            continue
        context, conts = prepared[i]
        if i not in scores:
            responses.append(Response(error="label scoring needs at least one label"))
            continue
        best = max(scores[i], key=scores[i].__getitem__)
        responses.append(Response(output=best, scores=scores[i], tokens_in=len(context), tokens_out=len(conts[best])))
    return responses


def _length(prepared: Any) -> int:
    return 0 if isinstance(prepared, Exception) else len(prepared[0]) + max(map(len, prepared[1].values()), default=0)


def generate(provider: Any, requests: Sequence[Request]) -> list[Response]:
    """Greedy (or the request's) decoding through PeftModel.generate."""
    import torch

    model, tokenizer, eos = provider.hf_model, provider.tokenizer, provider.eos_ids
    device = next(model.parameters()).device
    responses = []
    for request in requests:
        try:
            context = provider.encode_prompt(request)
            sample = request.temperature > 0
            if sample and request.seed is not None:
                torch.manual_seed(request.seed)
            generated = model.generate(
                input_ids=torch.tensor([context], device=device),
                attention_mask=torch.ones((1, len(context)), dtype=torch.long, device=device),
                max_new_tokens=request.max_tokens, do_sample=sample, temperature=request.temperature if sample else None,
                top_p=None, top_k=None, stop_strings=list(request.stop) or None,
                tokenizer=tokenizer if request.stop else None, pad_token_id=tokenizer.pad_token_id)
            new = generated[0, len(context):].tolist()
        except Exception as e:  # noqa: BLE001
            responses.append(Response(error=first_line(e)))
            continue
        n_out = next((k + 1 for k, t in enumerate(new) if t in eos), len(new))
        responses.append(Response(output=provider._text(new[:n_out], request), tokens_in=len(context), tokens_out=n_out))
    return responses
