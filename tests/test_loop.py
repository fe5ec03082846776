"""The README's story, walked in one project through the real CLI (subprocess `python -m promptkit`):
write a prompt, publish four versions whose scores level off, eval each, `status` says plateaued
(with per-version scores and the paired test's numbers), `tune --backend lora` proceeds without
--force and registers an adapter, the adapter scores, `baseline bless` + `check` pass, and a worse
working copy fails `check` with exit 1.

The fake variant (default run) scores with a fake model that follows the keyword hints each prompt
version gives, and does a real LoRA step on a tiny random transformers model built here. The
model variant does everything with the embedded SmolLM2."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import run_cli
from tests.helpers.projects import ROOT
from tests.helpers.tiny_model import make_tiny_model

POS_CUES = ["great", "love", "superb", "excellent", "wonderful"]
NEG_CUES = ["broke", "awful", "terrible", "rude", "waste"]
THINGS = ["blender", "hotel", "phone", "pizza", "chair", "jacket", "laptop", "cafe"]

# Four versions: the hints grow then stop paying off (v3/v4 add one word over v1, within noise).
HINTS = {
    1: (POS_CUES[:4], NEG_CUES[:4], "Classify the sentiment of the review."),
    2: (POS_CUES[:4], NEG_CUES[:4], "Decide whether the review below is positive or negative."),
    3: (POS_CUES, NEG_CUES[:4], "Classify the sentiment of the review."),
    4: (POS_CUES, NEG_CUES[:4], "Read the review and classify its sentiment."),
}
ENV = {"COLUMNS": "200"}


def _rows() -> list[dict[str, str]]:
    rows = []
    for i in range(4):
        for cue_p, cue_n in zip(POS_CUES, NEG_CUES, strict=True):
            thing = THINGS[(i * 5 + POS_CUES.index(cue_p)) % len(THINGS)]
            rows.append({"text": f"The {thing} was {cue_p}, visit {i}.", "label": "positive", "split": "test"})
            rows.append({"text": f"The {thing} was {cue_n}, visit {i}.", "label": "negative", "split": "test"})
    for i, (cue_p, cue_n) in enumerate(zip(POS_CUES * 2, NEG_CUES * 2, strict=True)):
        rows.append({"text": f"My {THINGS[i % 8]} is {cue_p} indeed.", "label": "positive", "split": "train"})
        rows.append({"text": f"My {THINGS[i % 8]} is {cue_n} indeed.", "label": "negative", "split": "train"})
    return rows


def _prompt_yaml(instruction: str, model: str) -> str:
    return ("description: Sentiment of a short review.\nstyle: text\nslots:\n"
            f"  instruction: |-\n    {instruction.replace(chr(10), chr(10) + '    ')}\n"
            "  task: |-\n    Review: {{ text }}\n    Sentiment:\n"
            f"labels: [negative, positive]\nsettings: {{model: {model}, temperature: 0, max_tokens: 3}}\n")


def _hinted(version: int) -> str:
    pos, neg, sentence = HINTS[version]
    return f"{sentence}\npositive words: {', '.join(pos)}\nnegative words: {', '.join(neg)}"


def write_project(root: Path, model: str) -> Path:
    (root / "prompts" / "review").mkdir(parents=True)
    (root / "evals" / "data").mkdir(parents=True)
    (root / "evals" / "data" / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    (root / "evals" / "review.yaml").write_text(
        "prompt: review\ntask: classification\ndataset:\n  path: data/reviews.jsonl\n  fields: {text: text}\n"
        f"  target: label\n  split_field: split\nsplit: test\nmodel: {model}\nmetrics: [accuracy, f1]\n"
        "thresholds:\n  max_drop: 0.05\n")
    return root


def cli(root: Path, *args: str, code: int = 0) -> str:
    result = run_cli(*args, cwd=root, env=ENV)
    assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout + result.stderr


def publish_versions(root: Path, texts: dict[int, str], model: str) -> None:
    for number, instruction in texts.items():
        (root / "prompts" / "review" / "prompt.yaml").write_text(_prompt_yaml(instruction, model))
        cli(root, "prompt", "new-version", "review", "-m", f"version {number}")


def scores_by_version(root: Path, model: str) -> dict[int, tuple[float, str]]:
    """(accuracy, run id) of each version's largest eval with MODEL, read from the run store, not from the CLI."""
    from promptkit.runs import RunStore

    store = RunStore(root / ".promptkit" / "runs.db")
    found: dict[int, tuple[float, str, int]] = {}
    for run in store.runs(prompt="review"):  # newest first; the full 40-row eval beats tune's 8-row one
        match = re.search(r"@v(\d)$", run.settings["prompt"])
        examples = int(run.settings["examples"])
        if match and run.settings["model"] == model and examples > found.get(int(match.group(1)), (0, "", 0))[2]:
            found[int(match.group(1))] = (run.metric("accuracy") or 0.0, run.id, examples)
    store.close()
    return {n: (value, run_id) for n, (value, run_id, _) in found.items()}


def paired(root: Path, run_a: str, run_b: str) -> tuple[int, int, float]:
    """(fixed, broken, exact two-sided McNemar p) between two runs, computed here from the raw outcomes."""
    from promptkit.runs import RunStore

    store = RunStore(root / ".promptkit" / "runs.db")
    a = {r.id: r.correct for r in store.results(run_a)}
    b = {r.id: r.correct for r in store.results(run_b)}
    store.close()
    fixed = sum(1 for k in a if b.get(k) and not a[k])
    broken = sum(1 for k in a if a[k] and k in b and not b[k])
    n = fixed + broken
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(min(fixed, broken) + 1)) / 2**n) if n else 1.0
    return fixed, broken, p


def assert_status_plateaued(root: Path, model: str) -> list[str]:
    """Status's verdict, per-version lines and paired test, checked against the run store; returns its lines."""
    out = cli(root, "status", "review", "--no-estimate")
    scores = scores_by_version(root, model)
    assert sorted(scores) == [1, 2, 3, 4], scores
    assert "verdict: plateaued" in out and "not plateaued" not in out, out
    for number, (value, run_id) in scores.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(f"v{number} "))
        assert f"{value:.1%}" in line and run_id in line and " - " in line, (line, out)  # score, run, interval
    base = max((1,), key=lambda n: scores[n][0])
    top = max((2, 3, 4), key=lambda n: scores[n][0])
    gain = (scores[top][0] - scores[base][0]) * 100
    assert f"gain: {gain:+.1f} points of accuracy" in out, out
    fixed, broken, p = paired(root, scores[base][1], scores[top][1])
    assert f"paired McNemar v{base} -> v{top} on 40 shared examples: {fixed} fixed, {broken} broken, p={p:.3g}" in out, out
    return [line for line in out.splitlines() if re.match(r"\s*(v\d |verdict|gain|paired)", line)]


def tune_and_check(root: Path, worse_instruction: str, model: str, tune_args: list[str]) -> None:
    """From the plateau on: tune without --force, score the adapter, bless, check, a worse copy fails."""
    before = assert_status_plateaued(root, model)
    out = cli(root, "tune", "review", "--backend", "lora", "--max-steps", "2", "--batch-size", "4", "--limit", "8",
              "--eval-limit", "8", "--threads", "1", *tune_args)
    assert "has plateaued" in out and "registered as 'review-lora'" in out, out
    assert "FutureWarning" not in out and "Warning" not in out, out
    registry = (root / ".promptkit" / "models.yaml").read_text()
    assert "review-lora" in registry and "adapter:" in registry
    out = cli(root, "eval", "review", "--model", "review-lora", "--limit", "8")
    assert re.search(r"accuracy\s*│\s*\d+\.\d%", out) and "Warning" not in out, out
    # tune's and the adapter's runs are not part of the prompt's history: verdict and numbers unchanged
    assert assert_status_plateaued(root, model) == before

    out = cli(root, "baseline", "bless", "review")
    assert "blessed review@v4" in out, out
    cli(root, "check")  # the working copy is v4: passes
    (root / "prompts" / "review" / "prompt.yaml").write_text(_prompt_yaml(worse_instruction, model))
    out = cli(root, "check", code=1)
    assert "accuracy" in out


def test_loop_with_fake_model(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", "hinted")
    (root / ".promptkit").mkdir()
    (root / ".promptkit" / "models.yaml").write_text("hinted: {provider: fake, model: hinted, options: {hints: true}}\n")
    tiny = make_tiny_model(tmp_path / "tiny", [r["text"] for r in _rows()])
    publish_versions(root, {n: _hinted(n) for n in HINTS}, "hinted")
    out = cli(root, "eval", "review@v1", "review@v2", "review@v3", "review@v4")
    assert "review@v4" in out
    tune_and_check(root, "Classify the sentiment of the review.", "hinted", ["--base-model", str(tiny)])


def test_loop_full_fine_tune_to_an_exported_model(tmp_path: Path) -> None:
    """Plateau -> `tune --method full` (no --force) -> the tuned model scored by name -> exported -> the
    exported folder scored as hf:DIR with the same numbers; the prompt's history is untouched."""
    root = write_project(tmp_path / "project", "hinted")
    (root / ".promptkit").mkdir()
    (root / ".promptkit" / "models.yaml").write_text("hinted: {provider: fake, model: hinted, options: {hints: true}}\n")
    tiny = make_tiny_model(tmp_path / "tiny", [r["text"] for r in _rows()])
    publish_versions(root, {n: _hinted(n) for n in HINTS}, "hinted")
    cli(root, "eval", "review@v1", "review@v2", "review@v3", "review@v4")
    before = assert_status_plateaued(root, "hinted")
    out = cli(root, "tune", "review", "--method", "full", "--max-steps", "2", "--batch-size", "4", "--limit", "8",
              "--eval-limit", "8", "--threads", "1", "--base-model", str(tiny))
    assert "has plateaued" in out and "registered as 'review-full'" in out and "Warning" not in out, out
    entry = yaml.safe_load((root / ".promptkit" / "models.yaml").read_text())["review-full"]
    assert entry["method"] == "full" and "adapter" not in entry and Path(entry["model"], "config.json").is_file()
    by_name = cli(root, "eval", "review", "--model", "review-full", "--limit", "8")
    cli(root, "tune", "export", "review-full", "--out", str(tmp_path / "exported"))
    exported = cli(root, "eval", "review", "--model", f"hf:{tmp_path / 'exported'}", "--limit", "8")
    accuracy = [re.search(r"accuracy\s*│\s*(\d+\.\d%)", text) for text in (by_name, exported)]
    assert accuracy[0] and accuracy[1] and accuracy[0].group(1) == accuracy[1].group(1), (by_name, exported)
    assert assert_status_plateaued(root, "hinted") == before


# Four plain completion prompts for the embedded model: all close to each other on these reviews.
REAL_VERSIONS = {  # measured: 95%, 77.5%, 82.5%, 100% on the 40 test rows; v4 vs v1 is 2 fixed, 0 broken
    1: "Decide whether this review is positive or negative.",
    2: "Classify the sentiment of the customer review as positive or negative.",
    3: "Classify the sentiment of the review as positive or negative.",
    4: "Is the following review positive or negative?",
}


@pytest.mark.model
def test_loop_with_embedded_model(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", "smollm2")
    publish_versions(root, REAL_VERSIONS, "smollm2")
    out = cli(root, "eval", "review@v1", "review@v2", "review@v3", "review@v4")
    assert "review@v4" in out
    tune_and_check(root, "Label every review negative. Reviews here are always negative.",
                   "smollm2", [])


def test_readme_tells_the_loop() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "promptkit status" in readme and "verdict: plateaued" in readme
