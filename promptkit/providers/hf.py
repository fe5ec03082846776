"""Local transformers models: a HF folder, a GGUF file, or the embedded SmolLM2.

Classification scores each whole label by its log-likelihood after the prompt; when every
label is a single token, one forward pass per example scores all labels at once.
Generation is batched with left padding and greedy by default."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from promptkit.errors import ConfigError
from promptkit.models import embedded_model_path
from promptkit.providers.base import Provider, Request, Response


def cache_dir() -> Path:
    base = os.environ.get("PROMPTKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "promptkit"
    )
    return Path(base)


def _quiet() -> None:
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _converted_gguf(gguf: Path) -> Path:
    """A GGUF file converted once to a plain HF folder: loading it then takes a fraction of a second
    instead of ~20 s of de-quantizing."""
    stat = gguf.stat()
    import transformers

    key = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{transformers.__version__}"
    target = cache_dir() / "models" / f"{gguf.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (target / "config.json").is_file():
        return target
    import contextlib
    import io
    import sys

    print(f"promptkit: converting {gguf.name} once for fast loading (about 20 s)...", file=sys.stderr)
    with contextlib.redirect_stderr(io.StringIO()):  # the GGUF reader draws its own progress bar
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The de-quantized weights are plain fp32 tensors; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class HFProvider(Provider):
    name = "hf"
    supports_scoring = True

    def __init__(self, model: str, **options: Any):
        super().__init__(model, **options)
        self.batch_size = int(options.get("batch_size", 16))
        self._model: Any = None
        self._tokenizer: Any = None

    # -- loading ------------------------------------------------------------------------
    def _source(self) -> Path:
        if self.model.startswith("embedded:"):
            return _converted_gguf(embedded_model_path(self.model))
        path = Path(self.model).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ConfigError("GGUF file not found", where=str(path))
            return _converted_gguf(path)
        if not (path / "config.json").is_file():
            raise ConfigError("not a transformers model folder (no config.json)", where=str(path))
        return path

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            _quiet()
            tokenizer = AutoTokenizer.from_pretrained(str(self._source()))
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def hf_model(self) -> Any:
        if self._model is None:
            _quiet()
            torch.set_num_threads(int(self.options.get("threads") or os.cpu_count() or 1))
            model = AutoModelForCausalLM.from_pretrained(str(self._source()), dtype=torch.float32)
            adapter = self.options.get("adapter")
            if adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter))  # type: ignore[assignment]
            model.eval()
            self._model = model
        return self._model

    @property
    def context_window(self) -> int | None:
        if self._model is not None:
            return getattr(self._model.config, "max_position_embeddings", None)
        from transformers import AutoConfig

        return getattr(AutoConfig.from_pretrained(str(self._source())), "max_position_embeddings", None)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_text(self, request: Request) -> str:
        """The exact string the model reads: the chat template applied to chat messages."""
        if request.text is not None:
            return request.text
        tokenizer = self.tokenizer
        if not tokenizer.chat_template:
            return "\n\n".join(m["content"] for m in request.messages or []) + "\n\n"
        return str(tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True))

    def _encode(self, request: Request) -> list[int]:
        # A chat template writes its own special tokens; plain text gets the tokenizer's defaults.
        return list(self.tokenizer(self.prompt_text(request), add_special_tokens=request.text is not None)["input_ids"])

    def prompt_tokens(self, request: Request) -> int:
        return len(self._encode(request))

    # -- work ---------------------------------------------------------------------------
    def _complete(self, requests: Sequence[Request]) -> list[Response]:
        responses: list[Response | None] = [None] * len(requests)
        scoring = [i for i, r in enumerate(requests) if r.labels]
        generating = [i for i, r in enumerate(requests) if not r.labels]
        with torch.inference_mode():
            for i, response in zip(scoring, self._score([requests[i] for i in scoring]), strict=True):
                responses[i] = response
            for i, response in zip(generating, self._generate([requests[i] for i in generating]), strict=True):
                responses[i] = response
        return [r for r in responses if r is not None]

    def _continuation(self, context: list[int], prompt: str, text: str) -> list[int]:
        """Tokens of `text` as they follow `prompt` (tokenized jointly, as the model would see them)."""
        joint = self.tokenizer(prompt + text, add_special_tokens=False)["input_ids"]
        bare_context = context[1:] if context and context[0] == self.tokenizer.bos_token_id and (
            not joint or joint[0] != context[0]) else context
        if joint[: len(bare_context)] == bare_context and len(joint) > len(bare_context):
            return list(joint[len(bare_context):])
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _forward_last(self, sequences: list[list[int]], keep: int) -> torch.Tensor:
        """Log-probabilities at the last `keep` positions of left-padded sequences: [B, keep, V]."""
        pad = self.tokenizer.pad_token_id
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.hf_model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep)
        return torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1)

    def _score(self, requests: Sequence[Request]) -> list[Response]:
        if not requests:
            return []
        prompts = [self.prompt_text(r) for r in requests]
        contexts = [self._encode(r) for r in requests]
        conts = [
            {label: self._continuation(ctx, p, r.label_prefix + label) for label in r.labels or []}
            for r, p, ctx in zip(requests, prompts, contexts, strict=True)
        ]
        scores: list[dict[str, float]] = [{} for _ in requests]
        order = sorted(range(len(requests)), key=lambda i: len(contexts[i]))
        single = [i for i in order if all(len(c) == 1 for c in conts[i].values())]
        multi = [i for i in order if i not in set(single)]
        # Single-token labels: one pass over the prompt scores every label.
        for start in range(0, len(single), self.batch_size):
            chunk = single[start: start + self.batch_size]
            logprobs = self._forward_last([contexts[i] for i in chunk], keep=1)
            for row, i in enumerate(chunk):
                scores[i] = {label: float(logprobs[row, 0, ids[0]]) for label, ids in conts[i].items()}
        # Multi-token labels: one sequence per (example, label).
        pairs = [(i, label) for i in multi for label in conts[i]]
        for start in range(0, len(pairs), self.batch_size):
            chunk_pairs = pairs[start: start + self.batch_size]
            n_max = max(len(conts[i][label]) for i, label in chunk_pairs)
            logprobs = self._forward_last([contexts[i] + conts[i][label] for i, label in chunk_pairs], keep=n_max + 1)
            for row, (i, label) in enumerate(chunk_pairs):
                cont = conts[i][label]
                offset = n_max - len(cont)
                scores[i][label] = float(sum(logprobs[row, offset + j, tok] for j, tok in enumerate(cont)))
        responses = []
        for i in range(len(requests)):
            best = max(scores[i], key=scores[i].__getitem__)
            responses.append(Response(output=best, scores=scores[i], tokens_in=len(contexts[i]),
                                      tokens_out=len(conts[i][best])))
        return responses

    def _generate(self, requests: Sequence[Request]) -> list[Response]:
        responses: list[Response] = []
        tokenizer, model = self.tokenizer, self.hf_model
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start: start + self.batch_size]
            contexts = [self._encode(r) for r in chunk]
            width = max(len(c) for c in contexts)
            pad = tokenizer.pad_token_id
            ids = torch.tensor([[pad] * (width - len(c)) + c for c in contexts])
            mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts])
            first = chunk[0]
            sample = first.temperature > 0
            if sample and first.seed is not None:
                torch.manual_seed(first.seed)
            stop = sorted({s for r in chunk for s in r.stop})
            generated = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max(r.max_tokens for r in chunk),
                do_sample=sample,
                temperature=first.temperature if sample else None,
                top_p=None,
                top_k=None,
                stop_strings=stop or None,
                tokenizer=tokenizer if stop else None,
                pad_token_id=pad,
            )
            eos = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
                      else [model.generation_config.eos_token_id, tokenizer.eos_token_id])
            for row, request in enumerate(chunk):
                new = generated[row, width:].tolist()[: request.max_tokens]
                n_out = next((k + 1 for k, t in enumerate(new) if t in eos), len(new))
                text = tokenizer.decode(new[:n_out], skip_special_tokens=True)
                for s in request.stop:
                    if s in text:
                        text = text[: text.index(s)]
                responses.append(Response(output=text.strip(), tokens_in=len(contexts[row]), tokens_out=n_out))
        return responses

    def close(self) -> None:
        self._model = None
