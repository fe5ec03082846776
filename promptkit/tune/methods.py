"""The local tuning methods (`--method`): each turns the trainer's settings into a validated peft config.

The peft methods save an adapter folder (adapter_config.json + weights) that `PeftModel.from_pretrained`
loads, so the hf provider evaluates and serves every one the same way. LoRA and IA3 change the model's
weights and can be merged into a plain transformers folder; prompt and prefix tuning add virtual tokens
in front of the input and cannot. `full` trains every weight of the base model (what hosted fine-tuning
does) and saves a plain transformers folder: no peft at all, affordable on a small model."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promptkit.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Method:
    name: str
    default_lr: float
    mergeable: bool  # merge_and_unload gives a plain model
    soft_prompt: bool  # virtual tokens in front of the input
    build: Callable[[Any, Any], Any]  # (settings, provider) -> peft config
    check: Callable[[Any], None]
    quantized: bool = False  # the base model is loaded in 4 bits
    summary: str = ""
    init: Callable[[Any, Any, Any], None] | None = None  # (peft model, settings, provider): starting weights
    revision: int = 1  # raised when the method trains differently: `tune compare` then retrains, not reuses
    full: bool = False  # every weight is trained; the result is a model folder, not an adapter
    # training tokens/s relative to LoRA's, whose speed a project measures (the estimate scales it): measured
    # side by side in `tune compare` (README, Methods), full fine-tuning in the defaults study
    relative_speed: float = 1.0


def _positive(name: str, value: Any, flag: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}", hint=f"pass {flag} N")


def _check_lora(settings: Any) -> None:
    _positive("the LoRA rank", settings.r, "--r")
    _positive("the LoRA alpha", settings.alpha, "--alpha")
    if not 0.0 <= float(settings.dropout) < 1.0:
        raise ConfigError(f"the dropout must be in [0, 1), got {settings.dropout!r}", hint="pass --dropout 0.05")
    _check_targets(settings.target_modules)


def _check_targets(targets: Any) -> None:
    if targets is not None and (not targets or not all(isinstance(t, str) and t.strip() for t in targets)):
        raise ConfigError(f"target modules must be module names, got {targets!r}",
                          hint="e.g. --target-modules q_proj,v_proj, or all-linear")


def _check_soft(settings: Any) -> None:
    _positive("the number of virtual tokens", settings.virtual_tokens, "--virtual-tokens")
    if settings.virtual_tokens > 512:
        raise ConfigError(f"{settings.virtual_tokens} virtual tokens is more than the 512 allowed",
                          hint="pass --virtual-tokens 20")


def _targets(settings: Any, default: list[str]) -> Any:
    targets = list(settings.target_modules) if settings.target_modules else default
    return "all-linear" if targets == ["all-linear"] else targets


def _lora(settings: Any, provider: Any) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=_targets(settings, ["q_proj", "v_proj"]), task_type="CAUSAL_LM")


IA3_TARGETS = ["k_proj", "v_proj", "down_proj"]


def _ia3(settings: Any, provider: Any) -> Any:
    from peft import IA3Config

    targets = _targets(settings, IA3_TARGETS)
    # IA3 scales the input of feed-forward layers and the output of the others.
    feedforward = [t for t in targets if t in ("down_proj", "fc2", "c_proj")] if isinstance(targets, list) else None
    return IA3Config(target_modules=targets, feedforward_modules=feedforward, task_type="CAUSAL_LM")


def _prompt_tuning(settings: Any, provider: Any) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit

    if settings.init_text:  # starting from real token embeddings converges much faster than random ones
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=settings.virtual_tokens,
                                  prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=settings.init_text,
                                  tokenizer_name_or_path=str(provider.model_source()))
    return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=settings.virtual_tokens)


def _prefix_tuning(settings: Any, provider: Any) -> Any:
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=settings.virtual_tokens)


def _init_prefix(model: Any, settings: Any, provider: Any) -> None:
    """Prefix tuning's keys and values start as the base model's own for INIT_TEXT (repeated to fill the
    virtual tokens), as if that text stood before every input. peft's random start swamps the model's
    attention: the first loss was 10 and one epoch on amazon ended at chance on yelp (52%)."""
    import torch

    from promptkit.providers.hf_fast import _layers  # hf_fast imports torch: only when training

    if not settings.init_text:
        return
    config = model.active_peft_config
    ids = provider.tokenizer(settings.init_text, add_special_tokens=False)["input_ids"] or [0]
    n = config.num_virtual_tokens
    ids = (ids * -(-n // len(ids)))[:n]
    with torch.no_grad():
        out = model.get_base_model()(input_ids=torch.tensor([ids]), use_cache=True)
        # peft reads the weight [n, 2 * layers * heads * head_dim] as (layer, key|value, head, dim) per token
        parts = [t[0] for kv in _layers(out.past_key_values) for t in kv]  # 2 * layers x [heads, n, dim]
        weight = torch.stack(parts).permute(2, 0, 1, 3).reshape(n, -1)
        model.prompt_encoder[model.active_adapter].embedding.weight.copy_(weight)


def _no_peft(settings: Any, provider: Any) -> None:
    return None


METHODS: dict[str, Method] = {
    "lora": Method("lora", 3e-4, True, False, _lora, _check_lora, summary="low-rank updates of q/v"),
    "qlora": Method("qlora", 3e-4, True, False, _lora, _check_lora, quantized=True, relative_speed=0.9,
                    summary="LoRA on a 4-bit base (bitsandbytes)"),
    "ia3": Method("ia3", 3e-3, True, False, _ia3, lambda s: _check_targets(s.target_modules), relative_speed=1.15,
                  summary="learned scaling of k/v/down"),
    "prompt-tuning": Method("prompt-tuning", 3e-2, False, True, _prompt_tuning, _check_soft, relative_speed=0.6,
                            summary="trained virtual tokens before the input"),
    "prefix-tuning": Method("prefix-tuning", 1e-2, False, True, _prefix_tuning, _check_soft, relative_speed=0.9,
                            summary="trained keys/values per layer", init=_init_prefix, revision=2),
    "full": Method("full", 2e-5, True, False, _no_peft, lambda s: None, full=True, relative_speed=0.5,
                   summary="every weight trained: a full model folder"),
}


def method_of(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown tuning method {name!r}", hint=did_you_mean(name, list(METHODS)))
    return METHODS[name]


def qlora_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def validate(settings: Any) -> Method:
    """The settings' method, after checking its hyper-parameters and the shared ones."""
    method = method_of(settings.method)
    method.check(settings)
    if settings.lr is not None and not (0 < float(settings.lr) < 1):
        raise ConfigError(f"the learning rate must be in (0, 1), got {settings.lr!r}", hint="e.g. --lr 3e-4")
    _positive("the batch size", settings.batch_size, "--batch-size")
    _positive("the number of epochs", settings.epochs, "--epochs")
    if settings.max_steps is not None:
        _positive("--max-steps", settings.max_steps, "--max-steps")
    budget = settings.time_budget
    if budget is not None and not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ConfigError(f"the time budget must be a finite number of seconds > 0, got {budget!r}",
                          hint="e.g. --time-budget 600")
    if not 0.0 <= float(settings.warmup) < 1.0:
        raise ConfigError(f"the warm-up fraction must be in [0, 1), got {settings.warmup!r}", hint="e.g. 0.05")
    if not 0.0 <= float(settings.val_fraction) < 1.0:
        raise ConfigError(f"the validation fraction must be in [0, 1), got {settings.val_fraction!r}")
    if method.quantized and not qlora_available():
        raise ConfigError("qlora needs bitsandbytes, which is not installed here",
                          hint="pip install bitsandbytes, or use --method lora")
    return method


def load_base(source: str, method: Method, dtype: Any = None) -> Any:
    """The base model for training: in DTYPE (fp32 by default), or 4-bit NF4 for qlora (bitsandbytes' CPU backend)."""
    import torch
    from transformers import AutoModelForCausalLM

    if not method.quantized:
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32)
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, quantization_config=quant, device_map="cpu")
    except (ImportError, RuntimeError, ValueError) as e:
        raise ConfigError(f"qlora cannot load a 4-bit model on this machine: {str(e).splitlines()[0]}",
                          hint="use --method lora") from None
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
