"""Exceptions raised by sim.

Every exception the library raises on purpose derives from :class:`SimError`,
so a caller can catch that one class::

    SimError
    ├── ConfigError   an experiment config or ``--set`` override is invalid;
    │                 carries every :class:`ConfigIssue` found (CLI exit 2)
    ├── OutputError   the output folder cannot be used: not writable, or
    │                 it already exists and overwriting was refused (exit 2)
    ├── ResultsError  a results folder to plot or check is missing or
    │                 malformed (exit 2)
    └── RunError      something failed while simulating or writing (exit 1)
"""

from __future__ import annotations

from dataclasses import dataclass


class SimError(Exception):
    """Base class of every error sim raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where it is and what is wrong.

    Attributes
    ----------
    source : str
        The file name, or ``--set KEY`` for a command-line override.
    line : int or None
        1-based line in ``source``, when known.
    path : str
        The key path, e.g. ``cases[1].q``; empty for the whole document.
    message : str
        What is wrong, in words a user can act on.
    """

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if not self.path or self.source == f"--set {self.path}":
            return f"{where}: {self.message}"
        return f"{where}: {self.path}: {self.message}"


class ConfigError(SimError):
    """An invalid config; ``issues`` lists every problem found in it."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        # Per source in order of first appearance, then by line.
        # Once each (an override applies to every config), per source in order
        # of first appearance, then by line.
        issues = list(dict.fromkeys(issues))
        order = {s: i for i, s in reversed(list(enumerate(i.source for i in issues)))}
        self.issues = sorted(issues, key=lambda i: (order[i.source], i.line or 0))
        super().__init__("\n".join(str(i) for i in self.issues))


class OutputError(SimError):
    """The output location cannot be used."""


class ResultsError(SimError):
    """A results folder is missing files or holds malformed ones."""


class RunError(SimError):
    """A failure while running an experiment."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line for the user: its type and the first line of its message.

    >>> one_line(ValueError("bad value\nmore detail"))
    'ValueError: bad value'
    >>> one_line(MemoryError())
    'MemoryError'
    """
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"
