"""A tiny random transformers model (one-layer Llama, word-level tokenizer) built in a second:
a real model for real LoRA steps and hf-provider evals in the default test run."""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path


def make_tiny_model(folder: Path, texts: Sequence[str] = ()) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    words = ["<pad>", "<eos>", "<unk>", "positive", "negative", "Review:", "Sentiment:"]
    words += [w for text in texts for w in text.split()]
    vocab: dict[str, int] = {}
    for w in words + list(string.ascii_letters + string.digits + string.punctuation):
        vocab.setdefault(w, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=1, pad_token_id=0, bos_token_id=1)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
