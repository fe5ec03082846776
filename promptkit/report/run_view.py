"""One run as the HTML report and `promptkit view` both show it: built from a run just made
(EvalRun) or from the run store (RunRecord + results), so the static report and the app never drift."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptkit.metrics.classification import confusion
from promptkit.results import EvalRun, ExampleResult, MetricValue, per_example_values

if TYPE_CHECKING:
    from promptkit.runs import RunRecord

RenderFn = Callable[["ExampleResult"], "str | None"]


@dataclass
class RunView:
    run_id: str | None
    status: str
    settings: dict[str, Any]
    metrics: list[MetricValue]
    results: list[ExampleResult]
    confusion: dict[str, dict[str, int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    finished: str | None = None
    render_prompt: RenderFn | None = None  # the rendered prompt of an example, where the version is known
    example_link: Callable[[ExampleResult], str] | None = None  # else a link to a page that shows it (the app)

    @property
    def title(self) -> str:
        return f"promptkit · {self.settings.get('prompt')} on {self.settings.get('model')}"

    def example_metrics(self) -> list[dict[str, float]]:
        """Per example, its per-example metric values by name (only runs just made carry them)."""
        return per_example_values(self.metrics, len(self.results))


def view_of_run(run: EvalRun) -> RunView:
    version = run.plan.version

    def render(result: ExampleResult) -> str | None:
        try:
            return str(version.template.render(result.input).as_text())
        except Exception:  # noqa: BLE001 - shown as "not available", never kills the report
            return None

    return RunView(run.run_id, run.status, run.plan.settings(), list(run.metrics), list(run.results), run.confusion,
                   dict(run.extra), render_prompt=render)


def metric_of(entry: dict[str, Any]) -> MetricValue:
    known = {k: entry[k] for k in ("name", "value", "higher_is_better", "low", "high", "unit", "interval", "n", "kind", "note")
             if k in entry}
    known["value"] = float("nan") if known.get("value") is None else known["value"]
    return MetricValue(**known)


def view_of_record(record: RunRecord, results: list[ExampleResult], render_prompt: RenderFn | None = None) -> RunView:
    """A stored run; its confusion matrix is recomputed from its results and label set."""

    labels = record.settings.get("labels")
    matrix = confusion(results, labels) if record.settings.get("task") == "classification" and labels else None
    return RunView(record.id, record.status, record.settings, [metric_of(m) for m in record.metrics], results, matrix,
                   record.extra, record.created, record.finished, render_prompt)


def prompt_renderer(project: Any, settings: dict[str, Any]) -> RenderFn | None:
    """Re-renders examples with the run's prompt version, if the library still holds it unchanged."""
    try:
        version = project.library.resolve(str(settings.get("prompt")))
    except Exception:  # noqa: BLE001 - a missing or broken prompt only loses the rendered-prompt column
        return None
    if version.hash != settings.get("prompt_hash"):
        return None

    def render(result: ExampleResult) -> str | None:
        try:
            return str(version.template.render(result.input).as_text())
        except Exception:  # noqa: BLE001 - shown as "not available", never kills the page
            return None

    return render
