"""The one error type users see: a message, where it happened, and how to fix it."""

from __future__ import annotations


class PromptkitError(Exception):
    """A problem the user can fix. The CLI prints it as one line and exits 2."""

    exit_code = 2

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split("\n"))  # always one line


class ConfigError(PromptkitError):
    """A prompt, suite or settings file is invalid."""


class NotFoundError(PromptkitError):
    """A prompt, version, dataset, model or run does not exist."""


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """A hint naming the closest known names, or listing them all."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known: " + ", ".join(sorted(known)) if known else "none are defined"


def first_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
