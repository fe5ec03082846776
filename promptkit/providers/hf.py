"""Local transformers models: a HF folder, a GGUF file, or the embedded SmolLM2.

Classification scores each whole label by its log-likelihood after the prompt, one forward pass per
batch for all labels, with the prompt prefix shared by the batch reused from a KV cache; generation is
batched with left padding, greedy by default, and stops when every row has stopped (see hf_fast).
The model runs on the device and in the dtype promptkit.device chooses (bfloat16 where the hardware
multiplies it natively, else float32); log-likelihoods and softmax are always fp32. GGUF conversion and
file fingerprints live in hf_convert, the slow reference paths in hf_reference.
torch and transformers are imported only when a model is used; the model loads on the first call."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from promptkit.device import DEVICES, DTYPES, Precision, cache_dir, select_precision
from promptkit.errors import ConfigError, first_line
from promptkit.models import embedded_model_path
from promptkit.providers import hf_softprompt as softprompt
from promptkit.providers.base import NEUTRAL, Generation, Provider, ProviderOptions
from promptkit.providers.hf_convert import converted_gguf, files_identity, in_dtype
from promptkit.providers.hf_softprompt import is_soft_prompt
from promptkit.results import Request, Response

__all__ = ["HFProvider", "cache_dir"]


def _torch_env() -> None:
    """Before torch first loads: idle OpenMP threads sleep instead of spinning. On a machine whose cores are
    shared (CI, several jobs), spinning threads made each forward up to 8x slower with 2 threads."""
    import sys

    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_torch_env()


def _quiet() -> None:
    _torch_env()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)(\.|$)")  # deprecation chatter


INCOMPLETE_MODEL = "check that the folder holds a complete transformers causal LM"
_ANNOUNCED: set[tuple[str, str]] = set()  # precision choices already shown by this process


@contextlib.contextmanager
def _loading(what: str, where: Path | str, hint: str) -> Iterator[None]:
    """Turn a loader's exception (transformers, peft, gguf) into one ConfigError line naming the path.
    Any exception: the loaders read files the user gave, and a damaged one raises whatever its parser
    does (struct.error from a truncated GGUF, SafetensorError, a config field's validation error,
    RuntimeError from an adapter of another model's shapes)."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - see above
        raise ConfigError(f"cannot load {what}: {first_line(e)}", where=str(where), hint=hint) from None


def _regular_files(folder: Path) -> None:
    """Refuse a model folder holding a FIFO or a device (e.g. a link to /dev/zero): a loader would read it
    forever."""
    for entry in folder.iterdir():
        if entry.exists() and not (entry.is_file() or entry.is_dir()):
            raise ConfigError(f"{entry.name} is not a regular file (a FIFO or a device)", where=str(entry),
                              hint="the model folder must hold plain files only")


def _adapter_config(folder: Path) -> dict[str, Any]:
    """An adapter folder's adapter_config.json, refused in one line unless it is a JSON object."""
    import json

    path = folder / "adapter_config.json"
    if not path.is_file():
        raise ConfigError("not an adapter folder (no adapter_config.json)", where=str(folder),
                          hint="give a folder written by peft (adapter_config.json + weights)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ConfigError(f"cannot read the adapter config: {first_line(e)}", where=str(path),
                          hint="a damaged adapter: train it again with `promptkit tune ... --overwrite`") from None
    if not isinstance(config, dict) or not isinstance(config.get("peft_type"), str):
        raise ConfigError("adapter_config.json is not a peft adapter config (a JSON object with peft_type)",
                          where=str(path), hint="a damaged adapter: train it again with `promptkit tune ... --overwrite`")
    return config


class HFOptions(ProviderOptions):
    forward_batch: int = Field(16, ge=1, json_schema_extra=NEUTRAL, description="examples per scoring forward pass")
    generate_batch_size: int | None = Field(None, ge=1, json_schema_extra=NEUTRAL,
                                            description="rows decoded together (default: batch_size)")
    # at most 1024: torch refuses 2**31 (an internal error) and OpenMP would start as many threads as asked
    threads: int | None = Field(None, ge=1, le=1024, json_schema_extra=NEUTRAL,
                                description="torch threads (default: all cores)")
    adapter: str | None = Field(None, description="a peft adapter folder applied on top of the model")
    dtype: str = Field("auto", description="auto, float32, bfloat16, float16 (GPU): see promptkit.device")
    device: str = Field("auto", description="auto, cuda, mps, cpu")

    @field_validator("dtype", "device", mode="before")
    @classmethod
    def _known(cls, value: Any, info: ValidationInfo) -> Any:
        # checked here, where a models.yaml entry or a suite's provider_options is read (its file and line),
        # not only when the model first runs
        allowed = DTYPES if info.field_name == "dtype" else DEVICES
        if value is None:
            return "auto"
        if isinstance(value, str) and value.strip().lower() not in allowed:
            raise ValueError(f"unknown {info.field_name} {value!r}")  # the description lists the known ones
        return value

    def loop_batch(self) -> int:
        # The eval loop hands over several forward batches per call, so that they can be grouped
        # by length (less padding) before they are cut into forward batches.
        return self.batch_size or 4 * self.forward_batch


class HFProvider(Provider):
    """Options: see HFOptions. `batch_size` is the examples per call from the eval loop (default
    4 x forward_batch); they are sorted by length and cut into forward passes of `forward_batch`."""

    name = "hf"
    supports_scoring = True
    Options = HFOptions
    opts: HFOptions

    def __init__(self, model: str, **options: Any):
        super().__init__(model, **options)
        self.forward_batch = self.opts.forward_batch
        # Decoding steps are one token per row: wider batches keep the matrix products efficient.
        self.generate_batch = self.opts.generate_batch_size or self.batch_size
        self.threads = self.opts.threads or os.cpu_count() or 1
        self._model: Any = None
        self._tokenizer: Any = None
        self._identity: dict[str, Any] | None = None
        self._prefixes: Any = None
        self._precision: Precision | None = None
        self._soft_prompt = False  # a prompt/prefix-tuning adapter: virtual tokens the fast paths would skip

    # -- identity and loading ---------------------------------------------------------------
    @property
    def precision(self) -> Precision:
        """The device and dtype this model runs with, chosen once (may measure bf16 once per machine)."""
        if self._precision is None:
            self._precision = select_precision(self.opts.device or "auto", self.opts.dtype or "auto",
                                               self.threads)
        return self._precision

    @property
    def identity(self) -> dict[str, Any]:
        """The model, its weights' revision, the adapter and the precision, from files only: no model is loaded.
        The dtype and device are part of it, so fp32 and bf16 answers never share a cache entry."""
        if self._identity is None:
            ident: dict[str, Any] = {"provider": self.name, "model": self.model}
            try:
                ident.update(files_identity(self.model, self.opts.adapter))
            except OSError as e:  # a missing model shows up as a clear error when it is loaded
                ident["error"] = first_line(e)
            ident["precision"] = f"{self.precision.device}/{self.precision.dtype}"
            if self.precision.dtype != "float32":  # greedy tokens are picked from fp32 logits (hf_fast.next_token_logits)
                ident["logits"] = "float32"
            self._identity = ident
        return self._identity

    @property
    def run_settings(self) -> dict[str, Any]:
        """What this provider resolved to run with, recorded with a run: device, dtype and why."""
        p = self.precision
        return {"device": p.device, "dtype": p.dtype, "dtype_reason": p.reason}

    def model_source(self) -> Path:
        """The transformers folder the model loads from (a GGUF file is converted once, into the cache)."""
        if self.model.startswith("embedded:"):
            gguf = embedded_model_path(self.model)
        else:
            path = Path(self.model).expanduser()
            if path.suffix != ".gguf":
                if not (path / "config.json").is_file():
                    if (path / "adapter_config.json").is_file():
                        raise ConfigError("an adapter folder, not a model (no config.json)", where=str(path),
                                          hint="register it in .promptkit/models.yaml with model: BASE and "
                                               f"adapter: {path}")
                    raise ConfigError("not a transformers model folder (no config.json)", where=str(path),
                                      hint="give a folder with config.json and weights, a .gguf file, or a model alias")
                _regular_files(path)
                return path
            if path.exists() and not path.is_file():
                raise ConfigError("not a regular file (a FIFO, a device or a folder)", where=str(path),
                                  hint="give a .gguf file")
            if not path.is_file():
                raise ConfigError("GGUF file not found", where=str(path), hint="check the model path")
            gguf = path
        with _loading("the GGUF model", gguf, "the file may be truncated or of an unsupported architecture"):
            with gguf.open("rb") as f:
                if f.read(4) != b"GGUF":  # before announcing a 20 s conversion
                    raise ValueError("not a GGUF file (it does not start with GGUF)")
            return converted_gguf(gguf)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            _quiet()
            source = self.model_source()
            with _loading("the tokenizer", source, "the folder needs tokenizer files next to config.json"):
                tokenizer = AutoTokenizer.from_pretrained(str(source))
            if tokenizer.pad_token is None:
                if tokenizer.eos_token is None:  # batches could not be padded: every example would fail
                    raise ConfigError("the tokenizer has neither a pad nor an end-of-sequence token", where=str(source),
                                      hint="set eos_token (or pad_token) in the folder's tokenizer_config.json")
                tokenizer.pad_token = tokenizer.eos_token
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def hf_model(self) -> Any:
        if self._model is None:
            _torch_env()
            import torch
            from transformers import AutoModelForCausalLM

            _quiet()
            source = self.model_source()
            precision = self.precision
            torch.set_num_threads(self.threads)
            with _loading("the model", source, INCOMPLETE_MODEL):
                # weights are read straight into the target dtype (from a copy saved in it, for converted models)
                weights = in_dtype(source, precision.dtype)
                model: Any = AutoModelForCausalLM.from_pretrained(str(weights), dtype=getattr(torch, precision.dtype))
            if precision.device != "cpu":
                model.to(precision.device)
            adapter = self.opts.adapter
            if adapter:
                import logging

                # peft imports bitsandbytes when installed (qlora); its CPU backend warns about optional kernels
                logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
                from peft import PeftModel

                folder = Path(str(adapter)).expanduser()
                base = _adapter_config(folder).get("base_model_name_or_path")
                hint = "give a folder written by peft (adapter_config.json + weights) for this model"
                if isinstance(base, str) and base and base != self.model:  # e.g. weights of other shapes
                    hint += f"; its adapter_config.json names the base model {base}"
                _regular_files(folder)
                with _loading("the adapter", folder, hint):
                    model = PeftModel.from_pretrained(model, str(folder))

                self._soft_prompt = is_soft_prompt(model)
            model.eval()
            self._announce()
            self._model = model
        return self._model

    def _announce(self) -> None:
        """Show an automatic choice once per process (explicit ones were the user's)."""
        p = self.precision
        if p.reason != "as configured" and (p.device, p.dtype) not in _ANNOUNCED:
            _ANNOUNCED.add((p.device, p.dtype))
            print(f"promptkit: hf model on {p.device} in {p.dtype} ({p.reason}; set dtype/device to choose)",
                  file=sys.stderr)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def context_window(self) -> int | None:
        if self._model is not None:
            return getattr(self._model.config, "max_position_embeddings", None)
        import json

        # config.json read directly: transformers' AutoConfig import alone costs about a second
        source = self.model_source()
        with _loading("the model config", source, INCOMPLETE_MODEL):
            config = json.loads((source / "config.json").read_text(encoding="utf-8"))
        value = config.get("max_position_embeddings") if isinstance(config, dict) else None
        return value if isinstance(value, int) else None

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

    def encode_prompt(self, request: Request) -> list[int]:
        """The prompt's token ids exactly as the model reads them at eval time."""
        # A chat template writes its own special tokens; plain text gets the tokenizer's defaults.
        return list(self.tokenizer(self.prompt_text(request), add_special_tokens=request.text is not None)["input_ids"])

    def prompt_tokens(self, request: Request) -> int:
        return len(self.encode_prompt(request))

    def continuation_ids(self, context: list[int], prompt: str, text: str) -> list[int]:
        """Tokens of `text` as they follow `prompt` (tokenized jointly, as the model would see them)."""
        joint = self.tokenizer(prompt + text, add_special_tokens=False)["input_ids"]
        bare_context = context[1:] if context and context[0] == self.tokenizer.bos_token_id and (
            not joint or joint[0] != context[0]) else context
        if joint[: len(bare_context)] == bare_context and len(joint) > len(bare_context):
            return list(joint[len(bare_context):])
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _label_tokens(self, request: Request) -> tuple[list[int], dict[str, list[int]]]:
        context = self.encode_prompt(request)
        prompt = self.prompt_text(request)
        conts = {label: self.continuation_ids(context, prompt, request.label_prefix + label) for label in request.labels or []}
        if not context:
            raise ValueError("empty prompt")
        return context, conts

    @property
    def eos_ids(self) -> set[int]:
        """The tokens that end a generation: the model's generation config and the tokenizer's."""
        configured = self.hf_model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured]
        return {int(i) for i in [*ids, self.tokenizer.eos_token_id] if i is not None}

    # -- work -------------------------------------------------------------------------------
    def complete(self, requests: Sequence[Request]) -> list[Response]:
        if requests:
            self.hf_model  # noqa: B018 - a model that cannot load is one config error, not an error per example
            self.tokenizer  # noqa: B018
        return super().complete(requests)

    def _complete(self, requests: Sequence[Request]) -> list[Response]:
        _torch_env()
        import torch

        responses: list[Response | None] = [None] * len(requests)
        with torch.inference_mode():
            scoring = [i for i, r in enumerate(requests) if r.labels]
            generating = [i for i, r in enumerate(requests) if not r.labels]
            for i, response in zip(scoring, self._score([requests[i] for i in scoring]), strict=True):
                responses[i] = response
            for i, response in zip(generating, self._generate([requests[i] for i in generating]), strict=True):
                responses[i] = response
        return [r if r is not None else Response(error="no response") for r in responses]

    def _prefix_cache(self) -> Any:
        if self._prefixes is None:
            self._prefixes = _fast().PrefixCache()
        return self._prefixes

    def _batches(self, order: list[int], size: int) -> list[list[int]]:
        return [order[s: s + size] for s in range(0, len(order), size)]

    def _isolated(self, items: list[int], run: Any, results: dict[int, Any]) -> None:
        """Run a batch; if it fails, each example alone, so one bad example costs only itself."""
        try:
            results.update(zip(items, run(items), strict=True))
            return
        except Exception as e:  # noqa: BLE001 - failure is data
            if len(items) == 1:
                results[items[0]] = e
                return
        for i in items:
            self._isolated([i], run, results)

    def _score(self, requests: Sequence[Request]) -> list[Response]:
        score_batch = _fast().score_batch
        if self._soft_prompt:  # PeftModel.forward adds the virtual tokens; the fast path calls the decoder

            return softprompt.score(self, requests)

        prepared: dict[int, Any] = {}
        for i, request in enumerate(requests):
            try:
                prepared[i] = self._label_tokens(request)
            except Exception as e:  # noqa: BLE001
                prepared[i] = e
        ok = [i for i in range(len(requests)) if not isinstance(prepared[i], Exception)]
        size = {i: len(prepared[i][0]) + sum(len(c) - 1 for c in prepared[i][1].values()) for i in ok}
        model, pad, prefixes = self.hf_model, self.tokenizer.pad_token_id, self._prefix_cache()
        results: dict[int, Any] = {}

        def run(items: list[int]) -> list[dict[str, float]]:
            return score_batch(model, [prepared[i][0] for i in items], [prepared[i][1] for i in items], pad, prefixes)

        for items in self._batches(sorted(ok, key=size.__getitem__), self.forward_batch):
            self._isolated(items, run, results)
        responses = []
        for i in range(len(requests)):
            outcome = prepared[i] if isinstance(prepared[i], Exception) else results[i]
            if isinstance(outcome, Exception):
                responses.append(Response(error=first_line(outcome)))
                continue
            best = max(outcome, key=outcome.__getitem__)
            responses.append(Response(output=best, scores=outcome, tokens_in=len(prepared[i][0]),
                                      tokens_out=len(prepared[i][1][best])))
        return responses

    def _text(self, tokens: list[int], request: Request) -> str:
        text = str(self.tokenizer.decode(tokens, skip_special_tokens=True))
        for s in request.stop:
            if s and s in text:
                text = text[: text.index(s)]
        return text.strip()

    def _generate(self, requests: Sequence[Request]) -> list[Response]:
        GenSpec, generate_batch = _fast().GenSpec, _fast().generate_batch
        if self._soft_prompt:
            return softprompt.generate(self, requests)

        contexts: dict[int, Any] = {}
        for i, request in enumerate(requests):
            try:
                contexts[i] = self.encode_prompt(request)
                if not contexts[i]:
                    raise ValueError("empty prompt")
            except Exception as e:  # noqa: BLE001
                contexts[i] = e
        ok = [i for i in range(len(requests)) if not isinstance(contexts[i], Exception)]
        model, tokenizer, eos, prefixes = self.hf_model, self.tokenizer, self.eos_ids, self._prefix_cache()
        results: dict[int, Any] = {}

        def run(items: list[int]) -> list[list[int]]:
            specs = [GenSpec(requests[i].max_tokens, requests[i].stop, requests[i].temperature, requests[i].seed)
                     for i in items]
            return generate_batch(model, tokenizer, [contexts[i] for i in items], specs, eos, tokenizer.pad_token_id,
                                  prefixes)

        for items in self._batches(sorted(ok, key=lambda i: len(contexts[i])), self.generate_batch):
            self._isolated(items, run, results)
        responses = []
        for i, request in enumerate(requests):
            outcome = contexts[i] if isinstance(contexts[i], Exception) else results[i]
            if isinstance(outcome, Exception):
                responses.append(Response(error=first_line(outcome)))
                continue
            responses.append(Response(output=self._text(outcome, request), tokens_in=len(contexts[i]),
                                      tokens_out=len(outcome)))
        return responses

    # -- serving: what promptkit serve needs beyond complete() ---------------------------------
    def load(self) -> None:
        self.hf_model  # noqa: B018
        self.tokenizer  # noqa: B018

    def _all_logits(self, model: Any, batch: Any, mask: Any) -> Any:
        """Logits [B, W, V] in fp32. With a bf16 model the output head runs in fp32 (as for scoring), since
        logits rounded to bf16 before the softmax move log-probabilities by up to 0.06; soft-prompt adapters
        and models that post-process their logits use the model's own forward."""
        import torch

        decoder, next_token_logits = _fast().decoder, _fast().next_token_logits
        config = getattr(model, "config", None)
        own = self._soft_prompt or any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale"))
        if own or model.get_output_embeddings().weight.dtype == torch.float32:
            return model(input_ids=batch, attention_mask=mask).logits.float()
        hidden = decoder(model)(input_ids=batch, attention_mask=mask).last_hidden_state
        return next_token_logits(model, hidden.reshape(-1, hidden.shape[-1])).view(*hidden.shape[:2], -1)

    def token_logprobs(self, texts: Sequence[str], top: int) -> list[dict[str, Any]]:
        """Per-token log-probabilities of each text (the tokenizer's special tokens included), in
        the OpenAI completions `logprobs` format; `top` alternatives per token when > 0. One forward pass."""
        _torch_env()
        import torch

        tok, model = self.tokenizer, self.hf_model
        encoded = [tok(text, add_special_tokens=True, return_offsets_mapping=bool(tok.is_fast)) for text in texts]
        seqs: list[list[int]] = [list(e["input_ids"]) or [tok.eos_token_id] for e in encoded]
        width = max(len(ids) for ids in seqs)
        batch = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, ids in enumerate(seqs):  # right padding: positions need no shifting
            batch[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        if self.precision.device != "cpu":
            batch, mask = batch.to(self.precision.device), mask.to(self.precision.device)
        with torch.inference_mode():
            logprobs = torch.log_softmax(self._all_logits(model, batch, mask), dim=-1).cpu()
        names: dict[int, str] = {}

        def decoded(i: int) -> str:
            if i not in names:
                names[i] = tok.decode([i])
            return names[i]

        out: list[dict[str, Any]] = []
        for row, (ids, enc) in enumerate(zip(seqs, encoded, strict=True)):
            tokens = [decoded(i) for i in ids]
            if tok.is_fast and enc["input_ids"]:
                offsets = [int(start) for start, _ in enc["offset_mapping"]]
            else:
                offsets = [len(tok.decode(ids[:j])) for j in range(len(ids))]
            picked = logprobs[row, torch.arange(len(ids) - 1), torch.tensor(ids[1:], dtype=torch.long)].tolist()
            values: list[float | None] = [None, *picked]
            tops: list[dict[str, float] | None] = [None]
            if top and len(ids) > 1:  # one topk over the whole row; each token id decoded once
                best = torch.topk(logprobs[row, : len(ids) - 1], top, dim=-1)
                for values_j, indices_j in zip(best.values.tolist(), best.indices.tolist(), strict=True):
                    tops.append({decoded(i): v for v, i in zip(values_j, indices_j, strict=True)})
            out.append({"tokens": tokens, "token_logprobs": values, "text_offset": offsets,
                        "top_logprobs": tops if top else None})
        return out

    def generate(self, request: Request, logprobs: int | None = None) -> Generation:
        """One request's generation; with `logprobs`, each generated token's log-probability and its
        `logprobs` best alternatives (at least one). Ends at the provider's end-of-sequence tokens."""
        if logprobs is None:
            return super().generate(request)
        _torch_env()
        import torch

        tok, model, eos = self.tokenizer, self.hf_model, self.eos_ids
        ids = self.encode_prompt(request)
        sample = request.temperature > 0
        if sample and request.seed is not None:
            torch.manual_seed(request.seed)
        device = self.precision.device
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.tensor([ids], device=device),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
                max_new_tokens=request.max_tokens, do_sample=sample, temperature=request.temperature if sample else None,
                top_p=None, top_k=None, stop_strings=request.stop or None, tokenizer=tok if request.stop else None,
                pad_token_id=tok.pad_token_id, eos_token_id=sorted(eos), output_scores=True,
                return_dict_in_generate=True)
        new = out.sequences[0, len(ids):].tolist()
        n = next((k + 1 for k, t in enumerate(new) if t in eos), len(new))
        entries = []
        for k in range(n):
            scores = torch.log_softmax(out.scores[k][0].float(), dim=-1)
            best = torch.topk(scores, max(1, logprobs))
            entries.append({"token": tok.decode([new[k]]), "logprob": float(scores[new[k]]),
                            "top": {tok.decode([int(i)]): float(v) for v, i in zip(best.values, best.indices, strict=True)}})
        text = tok.decode([t for t in new[:n] if t not in eos], skip_special_tokens=True)
        for s in request.stop:
            if s in text:
                text = text[: text.index(s)]
        return Generation(text, len(ids), n, entries)

    def close(self) -> None:
        self._model = None
        self._prefixes = None


def _fast() -> Any:
    """The hf_fast module (batched scoring and generation), imported on the first model call."""
    from promptkit.providers import hf_fast  # start-up: hf_fast imports torch

    return hf_fast
