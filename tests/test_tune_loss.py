"""The answer-only training loss (head at the answer positions, the shared prompt prefix run once per
batch) equals the model's own loss, with the same gradients, on a real (tiny) Llama with each method."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.tiny_model import make_tiny_model

ROWS = [([5, 6, 7, 8, 9, 3, 1], 6), ([5, 6, 7, 8, 10, 11, 12, 4, 1], 7), ([5, 6, 7, 8, 12, 4, 1], 5)]


@pytest.mark.parametrize("method", ["lora", "ia3", "prompt-tuning"])
def test_answer_loss_matches_the_models_loss_and_gradients(tmp_path: Path, method: str) -> None:
    import torch
    from peft import get_peft_model

    from promptkit.tune.lora import IGNORE, LoraSettings, _batch, answer_loss, shared_prefix
    from promptkit.tune.methods import load_base, method_of

    folder = make_tiny_model(tmp_path / "tiny", ["great food", "awful service"])
    settings = LoraSettings(method=method, target_modules=["all-linear"] if method == "lora" else [], init_text=None)
    spec = method_of(method)
    provider = type("P", (), {"model_source": lambda self: folder})()
    model = get_peft_model(load_base(str(folder), spec), spec.build(settings, provider))
    for p in model.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)  # LoRA's B starts at zero: give the adapter a real effect
    model.eval()  # dropout off: every loss sees the same network
    trainable = [p for p in model.parameters() if p.requires_grad]
    batch = _batch(ROWS, pad=0)
    assert int((batch["labels"] != IGNORE).sum()) == 5
    reference = model(**batch).loss
    ref_grads = torch.autograd.grad(reference, trainable)
    assert shared_prefix(ROWS) == 4 and shared_prefix([*ROWS[:1], ([5, 6, 7, 9, 4, 1], 4)]) == 0
    for shared in (0, 4):
        ours = answer_loss(model, ROWS, 0, shared)
        grads = torch.autograd.grad(ours, trainable)
        assert float(ours.detach()) == pytest.approx(float(reference.detach()), rel=1e-5), shared
        for a, b in zip(grads, ref_grads, strict=True):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4), shared


def test_a_time_budgeted_schedule_ends_at_a_low_rate_wherever_the_budget_stops_it() -> None:
    from promptkit.tune.lora import lr_factor

    # without a budget: the step schedule (warm-up over 5 steps, linear decay to zero at 100)
    assert lr_factor(0, 100, 5, 0.05) == pytest.approx(1 / 6)
    assert lr_factor(5, 100, 5, 0.05) == pytest.approx(1.0)
    assert lr_factor(99, 100, 5, 0.05) == pytest.approx(1 / 95)
    # a budget that stops the run at step 30 of 100: the rate follows the time spent, not the steps
    assert lr_factor(3, 100, 5, 0.05, spent=0.1) == pytest.approx(0.9 / 0.95)
    assert lr_factor(29, 100, 5, 0.05, spent=0.99) < 0.02
    assert lr_factor(30, 100, 5, 0.05, spent=1.2) == 0.0
    # a budget longer than the steps need: the steps lead, as without a budget
    assert lr_factor(90, 100, 5, 0.05, spent=0.3) == pytest.approx(0.1 / 0.95)
    # the first step of a budgeted run never has a zero rate
    assert lr_factor(0, 100, 5, 0.05, spent=0.0) > 0


def test_prefix_tuning_starts_as_its_init_text_written_before_the_input(tmp_path: Path) -> None:
    """The prefix's keys and values are the base model's own for the init text: before training, the
    adapter's next-token scores equal the base model's with that text in front (two layers, grouped heads)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from promptkit.tune.lora import LoraSettings
    from promptkit.tune.methods import load_base, method_of

    folder = make_tiny_model(tmp_path / "tiny", ["great food", "awful service"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(1)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                 eos_token_id=1, pad_token_id=0, bos_token_id=1)).save_pretrained(folder)
    settings = LoraSettings(method="prefix-tuning", virtual_tokens=5, init_text="great food awful")
    spec = method_of("prefix-tuning")
    provider = type("P", (), {"model_source": lambda self: folder, "tokenizer": tokenizer})()
    base = load_base(str(folder), spec).eval()
    text = tokenizer("great food awful", add_special_tokens=False)["input_ids"]
    prefix = (text * 2)[:5]  # repeated to fill the virtual tokens
    ids = tokenizer("Review: awful service Sentiment:", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = base(input_ids=torch.tensor([prefix + ids])).logits[0, len(prefix):]
    model = get_peft_model(base, spec.build(settings, provider))
    assert spec.init is not None
    spec.init(model, settings, provider)
    model.eval()
    with torch.no_grad():
        got = model(input_ids=torch.tensor([ids])).logits[0]
    assert torch.allclose(got, expected, atol=1e-5)
