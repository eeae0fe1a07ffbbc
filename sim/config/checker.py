"""Collecting located issues, and reading scalars the way people write them."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigIssue
from .model import _NAME_RE, _NUMBER_RE, SUM_TOLERANCE, KeyPath
from .yamlnodes import format_path


class _Checker:
    """Collects issues, locating each key path in the file or an override."""

    def __init__(
        self,
        source: str,
        lines: dict[KeyPath, int],
        overrides: dict[KeyPath, str],
        skip: set[KeyPath] = frozenset(),
    ):
        self.source = source
        self.lines = lines
        self.overrides = overrides
        self.skip = skip  # paths already reported while reading the YAML
        self.issues: list[ConfigIssue] = []
        self.notes: list[str] = []  # what was accepted but adjusted, for the resolved config

    def error(self, path: KeyPath, message: str) -> None:
        if any(path[:i] in self.skip for i in range(1, len(path) + 1)):
            return
        for i in range(len(path), -1, -1):
            if path[:i] in self.overrides:
                self.issues.append(ConfigIssue(self.overrides[path[:i]], None, format_path(path), message))
                return
        line = next((self.lines[path[:i]] for i in range(len(path), -1, -1) if path[:i] in self.lines), None)
        self.issues.append(ConfigIssue(self.source, line, format_path(path), message))

    # ---- scalar readers: return None after reporting an error

    def mapping(self, value: Any, path: KeyPath, allowed: Sequence[str], what: str) -> dict | None:
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of {what}, got {_describe(value)}")
            return None
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                tip = f"; did you mean '{hint[0]}'?" if hint else f" (allowed: {', '.join(allowed)})"
                self.error(path + (key,), f"unknown key{tip}")
        return value

    def integer(self, value: Any, path: KeyPath, lo: int, hi: int) -> int | None:
        number = _as_number(value)
        if number is None or isinstance(value, bool):
            self.error(path, f"must be a whole number, got {_describe(value)}")
            return None
        if isinstance(number, float):
            if not (math.isfinite(number) and number.is_integer()):
                self.error(path, f"must be a whole number, got {value!r}")
                return None
            number = int(number)
        if not lo <= number <= hi:
            self.error(path, f"must be between {lo:,} and {hi:,}, got {number:,}")
            return None
        return number

    def real(self, value: Any, path: KeyPath, lo: float, hi: float, *, open_lo: bool = False) -> float | None:
        number = _as_number(value)
        if number is None or isinstance(value, bool):
            self.error(path, f"must be a number, got {_describe(value)}")
            return None
        number = float(number)
        if not math.isfinite(number):
            self.error(path, f"must be a finite number, got {value!r}")
            return None
        if number < lo or number > hi or (open_lo and number == lo):
            bracket = "(" if open_lo else "["
            self.error(path, f"must be in {bracket}{lo:g}, {hi:g}], got {number!r}")
            return None
        return number

    def probabilities(self, value: list, path: KeyPath) -> list[float] | None:
        """Each entry a probability and their sum 1 within ``SUM_TOLERANCE`` (a note when it is
        off by more than rounding): the values as read, or None after an error."""
        probs = [self.real(v, path + (i,), 0.0, 1.0) for i, v in enumerate(value)]
        if any(v is None for v in probs):
            return None
        total = math.fsum(probs)
        if abs(total - 1.0) > SUM_TOLERANCE:
            self.error(path, f"probabilities sum to {total:.12g}, not 1 (tolerance {SUM_TOLERANCE:g})")
            return None
        if abs(total - 1.0) > 1e-12:
            self.notes.append(
                f"{format_path(path)}: probabilities summed to {total:.15g}; divided by that sum"
            )
        return probs

    def choice(self, value: Any, path: KeyPath, options: Sequence[str]) -> str | None:
        if isinstance(value, str) and value in options:
            return value
        hint = difflib.get_close_matches(str(value), options, n=1) if isinstance(value, str) else []
        tip = f"; did you mean '{hint[0]}'?" if hint else ""
        self.error(path, f"must be one of {', '.join(options)}, got {_describe(value)}{tip}")
        return None

    def name(self, value: Any, path: KeyPath) -> str | None:
        if not isinstance(value, str):
            self.error(path, f"must be a name (text), got {_describe(value)}; quote it")
            return None
        if not _NAME_RE.fullmatch(value) or value.startswith(".") or len(value) > 100:
            self.error(
                path,
                f"{value!r} is not a usable name: use 1-100 letters, digits, '.', '_' "
                "or '-', not starting with '.'",
            )
            return None
        return value

    def text(self, value: Any, path: KeyPath) -> str | None:
        if not isinstance(value, str):
            self.error(path, f"must be text, got {_describe(value)}")
            return None
        return value


def _as_number(value: Any) -> int | float | None:
    """A YAML number, or a string YAML 1.1 did not read as one (``1e6``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        text = value.strip().replace("_", "")
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()} (YAML reads yes/no/on/off/true/false as booleans)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value)
