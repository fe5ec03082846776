"""Soft-prompt adapters (prompt and prefix tuning) are scored in right-padded batches through the
PeftModel: every label's log-likelihood matches scoring each (prompt, label) alone, and one bad
example costs only itself. Real peft adapters on the tiny random Llama."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.providers import hf_softprompt
from promptkit.providers.hf import HFProvider
from promptkit.results import Request
from tests.helpers.tiny_model import make_tiny_model

TEXTS = ["good food", "the staff was rude and slow", "loved it", "never again , cold fries and a long wait",
         "fine", "great value for the price and friendly people"]


def _alone(provider: HFProvider, request: Request) -> dict[str, float]:
    """The reference: one unpadded forward per label, all logits kept."""
    import torch

    context, conts = provider._label_tokens(request)
    scores = {}
    for label, cont in conts.items():
        ids = torch.tensor([context + cont])
        with torch.inference_mode():
            logits = provider.hf_model(input_ids=ids).logits[0, -ids.shape[1]:].float()
        lp = torch.log_softmax(logits, dim=-1)
        scores[label] = float(sum(lp[len(context) - 1 + j, t] for j, t in enumerate(cont)))
    return scores


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), TEXTS)


@pytest.mark.parametrize("kind", ["prompt-tuning", "prefix-tuning"])
def test_batched_scores_equal_one_at_a_time(model: Path, tmp_path: Path, kind: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    config = (PromptTuningConfig if kind == "prompt-tuning" else PrefixTuningConfig)(
        task_type="CAUSAL_LM", num_virtual_tokens=3)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model), config)
    with torch.no_grad():  # a visible soft prompt, so a path that skipped it would score differently
        for p in peft_model.parameters():
            if p.requires_grad:
                p.normal_(0, 1.0)
    peft_model.save_pretrained(tmp_path / "adapter")
    provider = HFProvider(str(model), adapter=str(tmp_path / "adapter"), dtype="float32", threads=1)
    plain = HFProvider(str(model), dtype="float32", threads=1)
    requests = [Request(id=str(i), text=f"Review: {t} Sentiment:", labels=["negative", "positive", "positive ."])
                for i, t in enumerate(TEXTS)]
    requests.insert(2, Request(id="empty", text="", labels=["negative", "positive"]))
    monkeypatch.setattr(hf_softprompt, "BATCH_TOKENS", 40)  # several batches of several rows
    responses = provider.complete(requests)
    assert responses[2].error and "empty" in responses[2].error
    for request, response in zip(requests, responses, strict=True):
        if request.id == "empty":
            continue
        assert response.error is None, response.error
        expected = _alone(provider, request)
        assert response.scores is not None and response.scores.keys() == expected.keys()
        for label in expected:
            assert response.scores[label] == pytest.approx(expected[label], abs=1e-4)
        assert response.output == max(expected, key=expected.__getitem__)
    # the adapter is in play: the plain model scores differently
    assert plain.complete(requests[:1])[0].scores != responses[0].scores


def test_a_failing_batch_falls_back_to_each_example(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = HFProvider(str(model), dtype="float32", threads=1)
    requests = [Request(id=str(i), text=f"Review: {t} Sentiment:", labels=["negative", "positive"])
                for i, t in enumerate(TEXTS)]
    real = hf_softprompt._label_logprobs

    def flaky(model_: object, rows: list, pad: int, device: object) -> list[float]:
        if any(len(context) == len(provider._label_tokens(requests[1])[0]) for context, _ in rows):
            raise RuntimeError("boom")
        return real(model_, rows, pad, device)

    monkeypatch.setattr(hf_softprompt, "_label_logprobs", flaky)
    responses = hf_softprompt.score(provider, requests)
    broken = [r for r in responses if r.error]
    assert broken and all("boom" in (r.error or "") for r in broken) and len(broken) < len(requests)
    assert all(r.scores for r in responses if not r.error)
