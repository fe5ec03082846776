"""The slow reference paths of the hf provider, for tests and benchmarks only (kept out of the hot
modules): one example at a time, one full forward per label; transformers' own greedy generate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from promptkit.results import Request, Response


def naive_score(model: Any, context: Sequence[int], conts: dict[str, list[int]]) -> dict[str, float]:
    """One full forward per label, batch 1, logits everywhere, log-softmax in fp32."""
    import torch

    device = next(model.parameters()).device
    scores = {}
    for label, cont in conts.items():
        ids = torch.tensor([list(context) + list(cont)], device=device)
        lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        scores[label] = float(sum(lp[len(context) - 1 + j, tok] for j, tok in enumerate(cont)))
    return scores


def score_naive(provider: Any, requests: Sequence[Request]) -> list[Response]:
    """Label scoring, one example at a time, one full forward per label."""
    import torch

    responses = []
    with torch.inference_mode():
        for request in requests:
            context, conts = provider._label_tokens(request)
            scores = naive_score(provider.hf_model, context, conts)
            best = max(scores, key=scores.__getitem__)
            responses.append(Response(output=best, scores=scores, tokens_in=len(context), tokens_out=len(conts[best])))
    return responses


def generate_naive(provider: Any, requests: Sequence[Request]) -> list[Response]:
    """transformers' greedy generate, one example at a time."""
    import torch

    model, tokenizer = provider.hf_model, provider.tokenizer
    device = next(model.parameters()).device
    eos = provider.eos_ids
    responses = []
    with torch.inference_mode():
        for request in requests:
            context = provider.encode_prompt(request)
            generated = model.generate(
                input_ids=torch.tensor([context], device=device),
                attention_mask=torch.ones((1, len(context)), dtype=torch.long, device=device),
                max_new_tokens=request.max_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                stop_strings=list(request.stop) or None, tokenizer=tokenizer if request.stop else None,
                pad_token_id=tokenizer.pad_token_id)
            new = generated[0, len(context):].tolist()
            n_out = next((k + 1 for k, t in enumerate(new) if t in eos), len(new))
            responses.append(Response(output=provider._text(new[:n_out], request), tokens_in=len(context),
                                      tokens_out=n_out))
    return responses
