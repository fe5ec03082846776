"""Evaluating prompt-tuning and prefix-tuning adapters.

Their virtual tokens are added by `PeftModel.forward` / `generate`; the hf provider's batched fast
path calls the decoder directly and would skip them. So the provider hands such models here: one
example at a time through the PeftModel, each example's failure kept to itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from promptkit.errors import first_line
from promptkit.results import Request, Response


def is_soft_prompt(model: Any) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def _label_logprob(model: Any, context: Sequence[int], cont: Sequence[int], device: Any) -> float:
    import torch

    ids = torch.tensor([list(context) + list(cont)], device=device)
    # prompt tuning returns logits for its virtual tokens too: keep those of the input ids
    logits = model(input_ids=ids).logits[0, -ids.shape[1]:].float()
    lp = torch.log_softmax(logits, dim=-1)
    return float(sum(lp[len(context) - 1 + j, tok] for j, tok in enumerate(cont)))


def score(provider: Any, requests: Sequence[Request]) -> list[Response]:
    """Label scoring: the total log-likelihood of each label after the prompt."""

    model = provider.hf_model
    device = next(model.parameters()).device
    responses = []
    for request in requests:
        try:
            context, conts = provider._label_tokens(request)
            scores = {label: _label_logprob(model, context, cont, device) for label, cont in conts.items()}
        except Exception as e:  # noqa: BLE001 - failure is data
            responses.append(Response(error=first_line(e)))
            continue
        best = max(scores, key=scores.__getitem__)
        responses.append(Response(output=best, scores=scores, tokens_in=len(context), tokens_out=len(conts[best])))
    return responses


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
