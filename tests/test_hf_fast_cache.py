"""Scoring reads a shared prefix's keys/values without storing the batch's own (`_cache(keep=False)`):
the same hidden states as a growing cache, and nothing left in the cache after the forward."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.tiny_model import make_tiny_model


def test_a_read_only_prefix_cache_gives_the_same_hidden_states_and_keeps_nothing(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from promptkit.providers.hf_fast import PrefixCache, _cache, _call, pack, run

    folder = make_tiny_model(tmp_path / "tiny", ["great food", "awful service"])
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prefix = [5, 7, 8, 9]
    rows = [[10, 11, 3], [12, 4, 3, 6, 7]]
    with torch.no_grad():
        past, kv = PrefixCache().get(model, prefix)
        assert past == 4 and kv is not None
        batch = pack(rows, past, pad=0)
        kept, cache = run(model, batch, kv, use_cache=True)
        read_only, none = run(model, batch, kv)
        assert none is None and torch.equal(kept, read_only)
        assert cache.get_seq_length() == past + batch.ids.shape[1]
        probe = _cache(kv, 2, keep=False)
        run_probe = _call(model, probe, input_ids=batch.ids, attention_mask=batch.mask, position_ids=batch.positions)
        assert torch.equal(run_probe.last_hidden_state, kept)
        assert probe.get_seq_length() == past  # the prefix only: the batch's keys were never stored
        # no prefix at all: an empty read-only cache is the same as none
        plain = pack(rows, 0, pad=0)
        a, _ = run(model, plain, None)
        b, _ = run(model, plain, None, use_cache=True)
        assert torch.equal(a, b)
