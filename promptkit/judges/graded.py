"""Model-graded assertion types: `llm-rubric` and `factuality` (closed QA against the reference)."""

from __future__ import annotations

from typing import Any, ClassVar

from promptkit.assertions.base import Context, JudgedAssertion, Outcome
from promptkit.assertions.builtin import _check_template, render
from promptkit.judges import Judge, JudgeError, parse_object
from promptkit.results import Request


def example_input(ctx: Context) -> str:
    """The example's input as the judge sees it: its `text` field, else every input field."""
    variables = ctx.result.input
    value = variables.get("text")
    return value if isinstance(value, str) else "\n".join(f"{k}: {v}" for k, v in variables.items())


class LlmRubric(JudgedAssertion):
    name = "llm-rubric"
    description = "a judge model grades the output against the rubric in 'value' (score 0-1, pass, reason)"

    uses_threshold = True

    def setup(self) -> None:
        if not isinstance(self.spec.value, str) or not self.spec.value.strip():
            raise ValueError("llm-rubric needs the rubric text as 'value'")
        if self.spec.threshold is not None and not 0 <= self.spec.threshold <= 1:  # 70 would fail every output
            raise ValueError(f"llm-rubric: threshold {self.spec.threshold:g} is outside the judge's 0-1 scores")
        _check_template(self.spec.value)

    def templates(self) -> list[str]:
        return [self.spec.value]

    def judge_request(self, output: str, ctx: Context, judge: Judge) -> Request:
        variables = {"input": example_input(ctx), "output": output, "rubric": render(self.spec.value, ctx.row)}
        return judge.request("llm-rubric", variables, f"{ctx.result.id}:llm-rubric")

    def parse(self, answer: str) -> Outcome:
        data: dict[str, Any] = parse_object(answer, {"pass": bool, "score": (int, float), "reason": str})
        score = data["score"]
        if not 0 <= score <= 1:  # compared as written: float() of a 400-digit integer overflows
            raise JudgeError(f"judge score {str(score)[:20]} is outside 0..1")
        score = float(score)
        passed = data["pass"] if self.spec.threshold is None else score >= self.spec.threshold
        return Outcome(bool(passed), data["reason"].strip() or "(no reason given)", score)


class Factuality(JudgedAssertion):
    name = "factuality"
    description = "a judge model compares the output's facts with the reference (value, else the row's target)"
    VERDICTS: ClassVar[dict[str, str]] = {
        "A": "a consistent subset of the reference", "B": "a consistent superset of the reference",
        "C": "the same details as the reference", "D": "disagrees with the reference",
                "E": "differs in ways that do not matter"}

    def setup(self) -> None:
        if self.spec.value is not None and not isinstance(self.spec.value, str):
            raise ValueError("factuality's 'value' is the reference text (default: the row's target)")
        if isinstance(self.spec.value, str):
            _check_template(self.spec.value)

    def templates(self) -> list[str]:
        return [self.spec.value] if isinstance(self.spec.value, str) else []

    def judge_request(self, output: str, ctx: Context, judge: Judge) -> Request:
        reference = render(self.spec.value, ctx.row) if isinstance(self.spec.value, str) else (ctx.result.expected or "")
        variables = {"input": example_input(ctx), "output": output, "reference": reference}
        return judge.request("factuality", variables, f"{ctx.result.id}:factuality")

    def parse(self, answer: str) -> Outcome:
        data = parse_object(answer, {"verdict": str, "reason": str})
        verdict = data["verdict"].strip().upper()
        if verdict not in self.VERDICTS:
            raise JudgeError(f"judge verdict {data['verdict']!r} is not one of A-E")
        return Outcome(verdict != "D", f"{verdict}: {self.VERDICTS[verdict]}; {data['reason'].strip()}")
