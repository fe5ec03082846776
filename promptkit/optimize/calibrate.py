"""Per-label biases added to label log-likelihoods, fitted to maximize accuracy on validation rows.

A small model leans towards one label whatever the input ("Calibrate Before Use", Zhao et al. 2021);
shifting the decision by a constant per label undoes much of that. The fit is exact for two labels
(the best threshold on the score difference) and coordinate ascent for more."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any


def _rows(results: Sequence[Any], labels: Sequence[str]) -> list[tuple[list[float], int]]:
    rows = []
    for r in results:
        if r.scores and r.expected in labels and all(label in r.scores for label in labels):
            rows.append(([float(r.scores[label]) for label in labels], labels.index(r.expected)))
    return rows


def accuracy_with(rows: Sequence[tuple[list[float], int]], bias: Sequence[float]) -> float:
    if not rows:
        return 0.0
    hits = 0
    for scores, truth in rows:
        adjusted = [s + b for s, b in zip(scores, bias, strict=True)]
        hits += max(range(len(adjusted)), key=adjusted.__getitem__) == truth
    return hits / len(rows)


def fit_bias(results: Sequence[Any], labels: Sequence[str], sweeps: int = 3) -> dict[str, float]:
    """Biases (first label 0) that maximize accuracy on `results`' raw label scores."""
    rows = _rows(results, labels)
    bias = [0.0] * len(labels)
    if not rows:
        return dict.fromkeys(labels, 0.0)
    for _ in range(sweeps):
        changed = False
        for j in range(1, len(labels)):
            # where label j starts or stops winning each row: the candidate thresholds
            edges = sorted({max(s[k] + bias[k] for k in range(len(labels)) if k != j) - s[j] for s, _ in rows})
            trials = [edges[0] - 1.0] + [(a + b) / 2 for a, b in itertools.pairwise(edges)] + [edges[-1] + 1.0]
            best, best_acc = bias[j], accuracy_with(rows, bias)
            for t in trials:
                trial = [*bias[:j], t, *bias[j + 1:]]
                acc = accuracy_with(rows, trial)
                # ties go to the smallest correction
                if acc > best_acc + 1e-12 or (abs(acc - best_acc) <= 1e-12 and abs(t) < abs(best)):
                    best, best_acc = t, acc
            if best != bias[j]:
                bias[j], changed = best, True
        if not changed:
            break
    return {label: round(b, 4) for label, b in zip(labels, bias, strict=True)}


def cross_fitted_accuracy(results: Sequence[Any], labels: Sequence[str]) -> tuple[int, int]:
    """(correct, n) when each half's bias is fitted on the other half: an honest score for
    'this prompt plus a fitted bias' (fitting and scoring on the same rows would flatter it)."""
    import random

    rows_results = [r for r in results if r.scores]
    order = list(range(len(rows_results)))
    random.Random(0).shuffle(order)  # seeded halves: rows in file order may alternate by label
    halves = [[rows_results[i] for i in order[0::2]], [rows_results[i] for i in order[1::2]]]
    correct = n = 0
    for fit_on, score_on in ((halves[0], halves[1]), (halves[1], halves[0])):
        bias = fit_bias(fit_on, labels)
        rows = _rows(score_on, labels)
        correct += round(accuracy_with(rows, [bias[label] for label in labels]) * len(rows))
        n += len(rows)
    # failed rows count as wrong
    failed = len(results) - len(rows_results)
    return correct, n + failed
