"""Reference-based text metrics for generation: exact match, BLEU (sacrebleu-compatible) and ROUGE-L.

BLEU is reported on a 0-1 scale (sacrebleu's score / 100). The run's value is corpus BLEU
(13a tokenization, up to 4-grams, one reference) with sacrebleu's 'exp' smoothing and effective
order, i.e. sacrebleu's `BLEU(smooth_method="exp", effective_order=True)`: a corpus of answers
shorter than 4 tokens is scored on the n-gram orders it has, instead of sacrebleu's default
corpus score of 0 (no 4-gram exists, so its precision is log(0)) however well the answers match.
The per-example values are sentence BLEU with the same smoothing, as sacrebleu's `sentence_bleu`. ROUGE-L is the
LCS F-measure of rouge-score (lower-cased alphanumeric tokens, no stemming), averaged."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from promptkit.metrics.base import MeanMetric, Metric, ProportionMetric
from promptkit.results import ExampleResult, MetricValue
from promptkit.stats import interval_of, resampled_sums

MAX_ORDER = 4

_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(text: str) -> list[str]:
    """The mteval-v13a tokenization that sacrebleu uses by default."""
    text = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in text:
        text = text.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    text = f" {text} "
    for pattern, repl in _13A:
        text = pattern.sub(repl, text)
    return text.split()


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1))


def bleu_stats(hypothesis: str, reference: str) -> list[float]:
    """Sufficient statistics: matches for n=1..4, hypothesis n-gram counts for n=1..4, hyp length, ref length."""
    hyp, ref = tokenize_13a(hypothesis), tokenize_13a(reference)
    correct, total = [], []
    for n in range(1, MAX_ORDER + 1):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        correct.append(sum(min(count, r[gram]) for gram, count in h.items()))
        total.append(max(0, len(hyp) - n + 1))
    return [*correct, *total, len(hyp), len(ref)]


def bleu_from_stats(stats: Sequence[float], effective_order: bool = False) -> float:
    """BLEU (0-1) from summed statistics, with sacrebleu's 'exp' smoothing."""
    correct, total = stats[:MAX_ORDER], stats[MAX_ORDER: 2 * MAX_ORDER]
    hyp_len, ref_len = stats[-2], stats[-1]
    if hyp_len == 0 or not any(correct):  # sacrebleu: no match at all scores 0
        return 0.0
    logs: list[float] = []
    smooth = 1.0
    order = MAX_ORDER
    for n in range(MAX_ORDER):
        if total[n] == 0:
            break
        if effective_order:
            order = n + 1
        if correct[n] == 0:
            smooth *= 2
            logs.append(math.log(1 / (smooth * total[n])))
        else:
            logs.append(math.log(correct[n] / total[n]))
    logs += [-9999999999.0] * (order - len(logs))  # sacrebleu's log(0)
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(sum(logs[:order]) / order)


class Bleu(Metric):
    name = "bleu"
    tasks = ("generation",)
    aggregate = "corpus"
    paired = "scores"  # sentence BLEU per example
    description = "corpus BLEU against the reference (0-1, sacrebleu's exp smoothing with effective order)"

    def compute(self, results: Sequence[ExampleResult], labels: Sequence[str] | None) -> list[MetricValue]:
        stats: list[list[float]] = []
        per_example: list[float | None] = []
        for r in results:
            if r.expected is None:
                per_example.append(None)
                continue
            row = bleu_stats("" if r.error is not None else r.output, r.expected)
            stats.append(row)
            per_example.append(bleu_from_stats(row, effective_order=True))
        if not stats:
            return []
        # effective order: short answers have no 4-grams, and must not make the corpus score 0
        corpus = bleu_from_stats([sum(column) for column in zip(*stats, strict=True)], effective_order=True)
        low, high = interval_of([bleu_from_stats(row, effective_order=True) for row in resampled_sums(stats).tolist()])
        return [MetricValue("bleu", corpus, True, low, high, interval="bootstrap", n=len(stats), kind=self.aggregate,
                            paired=self.paired, per_example=per_example)]


def rouge_tokens(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure: 2PR/(P+R) with P = LCS/len(hyp), R = LCS/len(ref)."""
    hyp, ref = rouge_tokens(hypothesis), rouge_tokens(reference)
    if not hyp or not ref:
        return 0.0
    lcs = lcs_length(hyp, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


class RougeL(MeanMetric):
    name = "rouge_l"
    tasks = ("generation",)
    description = "ROUGE-L F-measure against the reference, mean over examples"
    paired = "scores"

    def scores(self, results: Sequence[ExampleResult]) -> list[float | None]:
        return [None if r.expected is None else 0.0 if r.error is not None else rouge_l(r.output, r.expected)
                for r in results]


def normalize_answer(text: str) -> str:
    return " ".join(text.casefold().split())


class ExactMatch(ProportionMetric):
    name = "exact_match"
    tasks = ("generation",)
    description = "share of outputs equal to the reference (case and whitespace ignored)"
    paired = "scores"

    def judge(self, result: ExampleResult) -> bool | None:
        if result.expected is None:
            return None
        return result.error is None and normalize_answer(result.output) == normalize_answer(result.expected)
