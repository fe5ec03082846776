"""--search: successive halving on the validation split within the time budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.tune.search import SPACE, candidates
from tests.helpers.cli import run_cli
from tests.helpers.projects import tune_project


def test_candidates_are_distinct_seeded_and_from_the_space() -> None:
    first = candidates(8, seed=0)
    assert first == candidates(8, seed=0) and first != candidates(8, seed=1)
    assert len({json.dumps(c, sort_keys=True) for c in first}) == 8
    for c in first:
        assert all(c[key] in values for key, values in SPACE.items())
    defaults = {"r": 8, "lr": 3e-4, "target_modules": ["q_proj", "v_proj"], "epochs": 1}
    led = candidates(8, seed=0, first=defaults)
    assert led[0] == defaults and len({json.dumps(c, sort_keys=True) for c in led}) == 8


@pytest.mark.parametrize("extra, needle", [
    (["--search"], "--time-budget"),
    (["--search", "--time-budget", "10", "--method", "ia3"], "does not apply"),
])
def test_search_misuse_is_one_line(tmp_path: Path, extra: list[str], needle: str) -> None:
    root = tune_project(tmp_path)
    result = run_cli("tune", "review", "--force", "--no-eval", *extra, cwd=root)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr


@pytest.mark.model
def test_search_records_trials_and_trains_the_winner(tmp_path: Path) -> None:
    root = tune_project(tmp_path)
    result = run_cli("tune", "review", "--force", "--no-eval", "--search", "--search-trials", "2", "--time-budget", "4",
                     "--limit", "12", "--batch-size", "2", "--threads", "1", cwd=root)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((root / ".promptkit" / "adapters" / "review-lora" / "manifest.json").read_text())
    search = manifest["search"]
    assert len(search["trials"]) == 2 and all(t["val_loss"] is not None and t["steps"] >= 1 for t in search["trials"])
    best = min(search["trials"], key=lambda t: t["val_loss"])
    assert search["winner"] == best["settings"]
    assert search["own"] == search["trials"][0]["settings"]  # the run's own settings race first
    if search["winner"] != search["own"]:  # the final: winner against the own settings, the lower loss kept
        losses = [f["val_loss"] for f in search["final"]]
        assert search["kept"] == ("own" if losses[1] <= losses[0] else "winner")
        assert manifest["metrics"]["best_val_loss"] == min(losses)
    kept = search["own"] if search["kept"] == "own" else search["winner"]
    for key, value in kept.items():
        assert manifest["hyperparameters"][key] == value
    assert manifest["metrics"]["best_val_loss"] is not None and "search winner" in result.stderr
    adapter = root / ".promptkit" / "adapters" / "review-lora"
    assert not (adapter / "search").exists() and not (adapter / "search-own").exists()


@pytest.mark.parametrize(("winner_loss", "own_loss", "kept"), [(0.2, 0.3, "winner"), (0.3, 0.2, "own"),
                                                                (0.2, 0.2, "own"), (None, 0.5, "own")])
def test_the_final_keeps_the_lower_validation_loss(tmp_path: Path, winner_loss: float | None, own_loss: float,
                                                   kept: str) -> None:
    from promptkit.tune.lora import LoraSettings, _final
    from promptkit.tune.search import SearchResult

    out = tmp_path / "adapter"
    (out / "search-own").mkdir(parents=True)
    (out / "adapter_model.safetensors").write_text("winner")
    (out / "search-own" / "adapter_model.safetensors").write_text("own")
    search = SearchResult({"r": 16}, 10.0, [], own={"r": 8})
    winner, own = LoraSettings(r=16), LoraSettings(r=8)
    settings, metrics = _final(search, out, winner, {"best_val_loss": winner_loss}, own, {"best_val_loss": own_loss},
                               lambda m: None)
    assert search.kept == kept and settings.r == (8 if kept == "own" else 16)
    assert metrics["best_val_loss"] == (own_loss if kept == "own" else winner_loss)
    assert (out / "adapter_model.safetensors").read_text() == kept
    assert not (out / "search-own").exists()
    assert [f["val_loss"] for f in search.final or []] == [winner_loss, own_loss]
