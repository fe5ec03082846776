"""`--search`: successive halving over LoRA rank, learning rate, target modules and epochs.

The time budget is split evenly between rounds. In each round every surviving candidate trains from
scratch for (round budget / survivors) seconds and is ranked by its validation loss; the better half
goes on, with twice the time each. The last survivor then races the run's own settings (the defaults,
or the flags given): both train with a full round's budget and the lower validation loss becomes the
run's adapter, so a search never hands back settings that validate worse than not searching (short
early rounds are noisy: a 25-step trial can knock out settings that win a full run). The whole search
is recorded in the adapter's manifest."""

from __future__ import annotations

import itertools
import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from promptkit.errors import ConfigError
from promptkit.tune.trainset import TrainRow

SPACE: dict[str, list[Any]] = {
    "r": [4, 8, 16],
    "lr": [1e-4, 3e-4, 1e-3],
    "target_modules": [["q_proj", "v_proj"], ["all-linear"]],
    "epochs": [1, 2, 3],
}


@dataclass
class Trial:
    round: int
    settings: dict[str, Any]
    seconds_budget: float
    steps: int
    val_loss: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    winner: dict[str, Any]  # the last survivor of the halving rounds
    final_budget: float  # seconds for each finalist's training
    trials: list[Trial]
    own: dict[str, Any] | None = None  # the run's own settings, the winner's rival in the final
    final: list[dict[str, Any]] | None = None  # the finalists' settings and validation losses
    kept: str = "winner"  # or "own"

    def to_dict(self) -> dict[str, Any]:
        return {"winner": self.winner, "final_budget_s": round(self.final_budget, 1), "own": self.own,
                "final": self.final, "kept": self.kept, "trials": [t.to_dict() for t in self.trials], "space": SPACE}


def candidates(n: int, seed: int, first: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """N distinct settings drawn (seeded) from SPACE; FIRST (the run's own settings) leads when given, so
    the search always races the defaults and keeps them unless something beats them on validation."""
    grid = [dict(zip(SPACE, values, strict=True)) for values in itertools.product(*SPACE.values())]
    random.Random(seed).shuffle(grid)
    if first is not None:
        grid = [first] + [g for g in grid if g != first]
    return grid[:n]


def successive_halving(train: Callable[..., dict[str, Any]], provider: Any, train_rows: Sequence[TrainRow],
                       val_rows: Sequence[TrainRow], base: Any,
                       budget: float, trials: int, work_dir: Path,
                       notify: Callable[[str], None] = lambda m: None) -> SearchResult:
    """The winning settings. `train` is the LoRA trainer (tune.lora.train_lora), passed in by the tuner."""
    if not val_rows:
        raise ConfigError("--search ranks settings by validation loss, and the training set is too small to hold "
                          "rows out", hint="use at least 4 training rows, or drop --search")
    if budget <= 0:
        raise ConfigError("--search needs a positive --time-budget", hint="e.g. --time-budget 900 (seconds)")
    if trials < 2:
        raise ConfigError(f"--search-trials must be at least 2, got {trials}", hint="e.g. --search-trials 8")
    own = {key: getattr(base, key) for key in SPACE} | {"lr": base.learning_rate(), "target_modules": list(base.target_modules)}
    alive = candidates(trials, base.seed, own)
    rounds = math.ceil(math.log2(len(alive))) + 1  # the last round is the final: winner and own settings
    per_round = budget / (rounds + 1)  # the final trains two
    log: list[Trial] = []
    for number in range(rounds - 1):
        each = per_round / len(alive)
        scored = []
        for index, settings in enumerate(alive):
            out = work_dir / f"round{number}-{index}"
            shutil.rmtree(out, ignore_errors=True)
            trial = replace(base, **settings, time_budget=each, checkpoint_every=0)
            metrics = train(provider, train_rows, val_rows, out, trial)
            shutil.rmtree(out, ignore_errors=True)
            log.append(Trial(number, settings, round(each, 1), int(metrics["steps"]), metrics["best_val_loss"]))
            scored.append((metrics["best_val_loss"] if metrics["best_val_loss"] is not None else math.inf, index))
            notify(f"search round {number + 1}/{rounds - 1}: {_describe(settings)} -> val loss "
                   f"{metrics['best_val_loss']:.4f} in {metrics['steps']} steps")
        keep = max(1, len(alive) // 2)
        alive = [alive[i] for _, i in sorted(scored)[:keep]]
    shutil.rmtree(work_dir, ignore_errors=True)
    return SearchResult(alive[0], per_round, log, own=own)


def _describe(settings: dict[str, Any]) -> str:
    return (f"r={settings['r']} lr={settings['lr']:g} targets={','.join(settings['target_modules'])} "
            f"epochs={settings['epochs']}")
