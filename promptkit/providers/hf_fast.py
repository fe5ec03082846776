"""Fast label scoring and greedy generation for causal LMs (torch imported lazily by the caller).

Every batch is laid out as  [shared prefix, from the KV cache] [left padding] [each row's suffix]
and run with an explicit 4D boolean attention mask, so that:
  - the prompt part every example shares (instruction, few-shot examples) is computed once;
  - one forward scores all labels of an example: the labels are packed after the context in the
    same row, each attending to the context and to itself only, at the positions it would have;
  - logits are computed only where a score is read (the vocabulary projection is the costliest
    matrix of a small model).
The model may run in bf16 (see promptkit.device): the scores' vocabulary projection and log-softmax are
computed in fp32 all the same, so label decisions follow fp32 ones. Inputs are built on the CPU and moved
to the model's device in one place (`_call`). The slow reference paths are in hf_reference."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences."""
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return n


class PrefixCache:
    """KV tensors of shared prompt prefixes (batch 1), reused by every batch that starts with them."""

    def __init__(self, size: int = 8, min_new: int = 2):
        self.entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self.size = size
        self.min_new = min_new  # fewer new prefix tokens than this are cheaper left in the rows

    def get(self, model: Any, prefix: Sequence[int]) -> tuple[int, KV | None]:
        """(tokens covered, KV) for the longest usable prefix of `prefix`."""
        best, best_key = 0, None
        for key in self.entries:
            n = common_prefix([key, prefix])
            if n > best:
                best, best_key = n, key
        kv = None if best_key is None else [(k[:, :, :best], v[:, :, :best]) for k, v in self.entries[best_key]]
        if best_key is not None:
            self.entries.move_to_end(best_key)
        if len(prefix) - best < self.min_new:
            return best, kv
        ids = torch.tensor([list(prefix[best:])])
        positions = torch.arange(best, len(prefix)).unsqueeze(0)
        mask = torch.ones((1, 1, len(prefix) - best, len(prefix)), dtype=torch.bool).tril(diagonal=best)
        cache = _cache(kv, 1)
        _call(model, cache, input_ids=ids, attention_mask=mask, position_ids=positions)
        full = _layers(cache)
        self.entries[tuple(prefix)] = full
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return len(prefix), full


def decoder(model: Any) -> Any:
    return model.get_decoder()


def _call(model: Any, cache: Any, **inputs: Any) -> Any:
    """The decoder's forward; the cache argument was renamed from past_key_values to cache in transformers 5.x."""
    dec = decoder(model)
    device = model.device
    if device.type != "cpu":
        inputs = {k: v.to(device) for k, v in inputs.items()}
    name = _CACHE_ARG.get(type(dec))
    if name is None:
        import inspect

        name = "cache" if "cache" in inspect.signature(dec.forward).parameters else "past_key_values"
        _CACHE_ARG[type(dec)] = name
    return dec(**inputs, **{name: cache}, use_cache=True)


_CACHE_ARG: dict[type, str] = {}


def _cache(kv: KV | None, batch: int, keep: bool = True) -> Any:
    """A cache holding KV (a shared prefix, batch 1) for BATCH rows. With KEEP false the forward reads the
    prefix but stores nothing: scoring needs no cache afterwards, and a growing one kept every layer's keys
    and values for the whole batch alive until the forward ended (about 120 MB at 64 rows of 40 tokens,
    half the default eval's transient memory)."""
    from transformers import DynamicCache

    cls = DynamicCache if keep else _read_only_cache()
    if kv is None:
        return cls()
    # expand() is a view: the first forward concatenates new keys into fresh tensors, the prefix stays shared.
    return cls(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv])


@lru_cache(maxsize=1)
def _read_only_cache() -> type:
    from transformers import DynamicCache

    class ReadOnlyCache(DynamicCache):
        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            layer: Any = self.layers[layer_idx] if layer_idx < len(self.layers) else None
            if layer is None or getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                return key_states, value_states
            return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)

    return ReadOnlyCache


def _layers(cache: Any) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


@dataclass
class Packed:
    """A left-padded batch of rows following a shared prefix of `past` tokens."""

    ids: torch.Tensor  # [B, W]
    positions: torch.Tensor  # [B, W]
    mask: torch.Tensor  # [B, 1, W, past + W] bool
    offsets: list[int]  # where each row's tokens start (its left padding)


def pack(rows: Sequence[Sequence[int]], past: int, pad: int, segments: Sequence[Sequence[int]] | None = None,
         restart: Sequence[Sequence[int]] | None = None) -> Packed:
    """Rows of tokens after `past` shared tokens. segments[r][j]: 0 for context, k >= 1 for label k
    (attends to the context and its own tokens only); restart[r][j]: its position within the row."""
    width = max(len(r) for r in rows)
    batch = len(rows)
    ids = torch.full((batch, width), pad, dtype=torch.long)
    seg = torch.full((batch, width), -1, dtype=torch.long)
    pos = torch.zeros((batch, width), dtype=torch.long)
    offsets = []
    for r, row in enumerate(rows):
        off = width - len(row)
        offsets.append(off)
        ids[r, off:] = torch.tensor(list(row), dtype=torch.long)
        seg[r, off:] = torch.tensor(list(segments[r])) if segments else 0
        pos[r, off:] = past + (torch.tensor(list(restart[r])) if restart else torch.arange(len(row)))
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    segq, segk = seg[:, :, None], seg[:, None, :]
    allowed = causal & (segk != -1) & ((segk == 0) | (segk == segq))
    allowed |= torch.eye(width, dtype=torch.bool)  # padding rows see themselves: no all-masked row, no NaN
    mask = torch.cat([torch.ones((batch, width, past), dtype=torch.bool), allowed], dim=-1).unsqueeze(1)
    return Packed(ids, pos, mask, offsets)


def run(model: Any, batch: Packed, kv: KV | None, use_cache: bool = False) -> tuple[torch.Tensor, Any]:
    """Final hidden states [B, W, H] (and the cache when asked)."""
    cache = _cache(kv, batch.ids.shape[0], keep=use_cache)
    out = _call(model, cache, input_ids=batch.ids, attention_mask=batch.mask, position_ids=batch.positions)
    return out.last_hidden_state, (cache if use_cache else None)


def logprobs(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the next token for hidden states [N, H], in fp32 whatever the model's dtype:
    a bf16 projection rounds logits near 20 by up to +-0.06, enough to flip close label decisions."""
    return torch.log_softmax(next_token_logits(model, hidden), dim=-1)


def next_token_logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """Logits [A, V] in fp32 for greedy decoding. With a bf16 head, rounding the logits (up to +-0.06 near
    20) flipped the argmax between close tokens, and one flipped token changes the rest of the output:
    only 59% of greedy outputs matched fp32 (95% on the headline suite; 100% with this head). The head's
    weight is kept once more in fp32 (the 135M model: 113 MB), as casting it at every step would cost
    more than the product itself."""
    head = model.get_output_embeddings()
    if head.weight.dtype == torch.float32:
        return head(hidden).float()
    cached = getattr(head, "_promptkit_fp32", None)
    if cached is None or cached[0] is not head.weight:
        cached = (head.weight, head.weight.detach().float(), None if head.bias is None else head.bias.detach().float())
        head._promptkit_fp32 = cached  # with the weight it was made from, to notice a swapped head
    logits = hidden.float() @ cached[1].T
    return logits if cached[2] is None else logits + cached[2]


def score_batch(model: Any, contexts: Sequence[Sequence[int]], conts: Sequence[dict[str, list[int]]],
                pad: int, prefix_cache: PrefixCache) -> list[dict[str, float]]:
    """Total log-likelihood of each label after its context: one forward for the whole batch."""
    shared = min(common_prefix(contexts), min(len(c) for c in contexts) - 1)
    past, kv = prefix_cache.get(model, contexts[0][:shared]) if shared > 0 else (0, None)
    rows, segments, restart = [], [], []
    for ctx, labels in zip(contexts, conts, strict=True):
        rest = list(ctx[past:])
        row, seg, pos = list(rest), [0] * len(rest), list(range(len(rest)))
        if any(len(c) > 1 for c in labels.values()):  # single-token labels are all read off the last context position
            for k, cont in enumerate(labels.values(), start=1):
                row += cont[:-1]
                seg += [k] * (len(cont) - 1)
                pos += range(len(rest), len(rest) + len(cont) - 1)
        rows.append(row)
        segments.append(seg)
        restart.append(pos)
    batch = pack(rows, past, pad, segments, restart)
    hidden, _ = run(model, batch, kv)
    width = batch.ids.shape[1]
    # Where each label token is predicted: the last context position, then the label's own positions.
    wanted: list[list[list[int]]] = []
    flat: list[tuple[int, int]] = []
    for r, (ctx, labels) in enumerate(zip(contexts, conts, strict=True)):
        last = batch.offsets[r] + len(ctx) - past - 1
        start = last + 1
        per_label = []
        for cont in labels.values():
            where = [last, *range(start, start + len(cont) - 1)]
            start += len(cont) - 1
            per_label.append([len(flat) + j for j in range(len(where))])
            flat += [(r, w) for w in where]
        wanted.append(per_label)
    assert all(w < width for _, w in flat)
    rows_idx = torch.tensor([r for r, _ in flat])
    cols_idx = torch.tensor([w for _, w in flat])
    lp = logprobs(model, hidden[rows_idx, cols_idx])  # [N, V]
    scores = []
    for r, labels in enumerate(conts):
        out = {}
        for (label, cont), idx in zip(labels.items(), wanted[r], strict=True):
            out[label] = float(lp[torch.tensor(idx), torch.tensor(cont)].sum())
        scores.append(out)
    return scores


@dataclass
class GenSpec:
    max_tokens: int
    stop: Sequence[str]
    temperature: float = 0.0
    seed: int | None = None


def _finished(text: str, stop: Sequence[str]) -> bool:
    return any(s and s in text for s in stop)


def generate_batch(model: Any, tokenizer: Any, contexts: Sequence[Sequence[int]], specs: Sequence[GenSpec],
                   eos: set[int], pad: int, prefix_cache: PrefixCache) -> list[list[int]]:
    """Greedy (or seeded sampling) decoding of a left-padded batch; rows leave the batch as they stop
    (eos, a stop string, or max_tokens) and the loop ends when every row has stopped."""
    shared = min(common_prefix(contexts), min(len(c) for c in contexts) - 1)
    past, kv = prefix_cache.get(model, contexts[0][:shared]) if shared > 0 else (0, None)
    batch = pack([c[past:] for c in contexts], past, pad)
    hidden, cache = run(model, batch, kv, use_cache=True)
    last = hidden[:, -1]
    valid = batch.mask[:, 0, -1, :].clone()  # [B, past + W]: which keys each row sees
    next_pos = torch.tensor([len(c) for c in contexts])  # position of each row's next token
    generators = [torch.Generator().manual_seed(s.seed) if s.temperature > 0 and s.seed is not None else None for s in specs]
    out: list[list[int]] = [[] for _ in contexts]
    active = list(range(len(contexts)))
    while active:
        lp = next_token_logits(model, last)  # [A, V] fp32
        tokens = lp.argmax(dim=-1).tolist()
        for a, r in enumerate(active):
            spec = specs[r]
            if spec.temperature > 0:
                probs = torch.softmax(lp[a].cpu() / spec.temperature, dim=-1)
                tokens[a] = int(torch.multinomial(probs, 1, generator=generators[r]))
        keep = []
        for a, (r, tok) in enumerate(zip(active, tokens, strict=True)):
            out[r].append(tok)
            spec = specs[r]
            done = tok in eos or len(out[r]) >= spec.max_tokens or (
                bool(spec.stop) and _finished(tokenizer.decode(out[r], skip_special_tokens=True), spec.stop))
            if not done:
                keep.append(a)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep)
            cache.batch_select_indices(index)
            valid, next_pos = valid[index], next_pos[index]
            tokens = [tokens[a] for a in keep]
            active = [active[a] for a in keep]
        valid = torch.cat([valid, torch.ones((len(active), 1), dtype=torch.bool)], dim=-1)
        hidden = _call(model, cache, input_ids=torch.tensor(tokens).unsqueeze(1), attention_mask=valid[:, None, None, :],
                       position_ids=next_pos.unsqueeze(1)).last_hidden_state
        next_pos = next_pos + 1
        last = hidden[:, -1]
    return out
