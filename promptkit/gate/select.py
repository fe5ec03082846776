"""Which suites a check runs: named targets (suites, suite files, prompt refs), and with
--changed-since only those whose prompt, dataset, suite file or baseline changed since a git ref."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from promptkit.errors import ConfigError
from promptkit.gate.baseline import baseline_path
from promptkit.project import Project, Suite


def changed_files(root: Path, ref: str) -> set[str]:
    """Paths (relative to `root`) changed since git REF, uncommitted and untracked files included."""
    if ref.startswith("-"):  # git would read it as an option: '--output=FILE' truncates FILE
        raise ConfigError(f"--changed-since {ref[:80]!r} is not a git ref", hint="e.g. --changed-since origin/main")

    def git(*args: str) -> list[str]:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60,
                                 errors="surrogateescape")  # file names as Path spells them, any bytes
        except (OSError, subprocess.SubprocessError) as e:
            raise ConfigError(f"cannot run git: {e}", hint="--changed-since needs git") from None
        if out.returncode != 0:
            raise ConfigError(f"git {' '.join(args)} failed: {out.stderr.strip() or out.returncode}",
                              where=str(root), hint="give a commit, branch or tag that exists (fetch it in CI)")
        return [name for name in out.stdout.split("\0") if name]

    # -z: names as they are; without it git quotes a name with non-ASCII letters ("donn\303\251es.jsonl"),
    # which then matches no suite input, and a changed dataset would pass as unchanged
    return set(git("diff", "-z", "--name-only", "--relative", ref, "--")) | set(
        git("ls-files", "-z", "--others", "--exclude-standard"))


def suite_inputs(project: Project, suite: Suite) -> list[str]:
    """Files and folders (relative to the project) whose change affects a suite."""
    root = project.root.resolve()
    paths = [suite.path, project.library.root / suite.config.prompt, suite.dataset_path(), baseline_path(project, suite)]
    out = []
    for p in paths:
        try:
            out.append(Path(p).resolve().relative_to(root).as_posix())
        except ValueError:
            continue
    return out


def select(project: Project, targets: Sequence[str]) -> list[tuple[Suite, str | None]]:
    """(suite, prompt selector) for each target: a suite name or file, or a prompt ref
    (all suites naming it; a ref with @selector checks that version instead of the working copy)."""
    suites = project.suites()
    if not targets:
        return [(s, None) for s in suites]
    chosen: list[tuple[Suite, str | None]] = []
    for target in targets:
        path = Path(target)
        is_file = path.suffix in (".yaml", ".yml")
        by_name = [s for s in suites if s.name == target or (is_file and s.path.resolve() == path.resolve())]
        if by_name:
            chosen += [(s, None) for s in by_name]
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            chosen.append((project.suite(target), None))
            continue
        folder, selector = project.library.folder(target)  # NotFoundError names the prompt
        naming = [s for s in suites if s.config.prompt == folder.name]
        if not naming:
            raise ConfigError(f"no eval suite names prompt {folder.name!r}", where=str(project.evals_dir),
                              hint=f"add evals/{folder.name}.yaml with 'prompt: {folder.name}'")
        chosen += [(s, selector) for s in naming]
    unique: dict[str, tuple[Suite, str | None]] = {}
    for suite, selector in chosen:
        unique.setdefault(suite.name, (suite, selector))
    return list(unique.values())


def changed_since(project: Project, selected: list[tuple[Suite, str | None]],
                  ref: str) -> tuple[list[tuple[Suite, str | None]], list[str]]:
    """The selected suites with an input changed since git REF, and the names of the others."""
    changed = changed_files(project.root, ref)
    kept, skipped = [], []
    for suite, selector in selected:
        inputs = suite_inputs(project, suite)
        if any(c == p or c.startswith(p.rstrip("/") + "/") for c in changed for p in inputs):
            kept.append((suite, selector))
        else:
            skipped.append(suite.name)
    return kept, skipped
