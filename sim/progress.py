"""The progress bars of a run: blocks simulated, rows written; rate and ETA on one line of stderr."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


class Progress:
    """A one-line progress bar on stderr: units done (blocks of cases × blocks, rows written), rate and ETA.

    Shown only when stderr is a terminal, ``quiet`` is False and the work has
    lasted ``delay`` seconds (or, with ``final``, once it is complete); a
    non-terminal stderr gets nothing.
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        unit: str = "blocks",
        delay: float = 1.0,
        final: bool = True,
    ):
        self.total, self.label, self.unit, self.delay, self.final = total, label, unit, delay, final
        self.stream = stream or sys.stderr
        self.enabled = not quiet and total > 0 and getattr(self.stream, "isatty", lambda: False)()
        self.done = 0
        self.start = time.monotonic()
        self.shown = False

    def update(self, count: int = 1) -> None:
        """Count ``count`` more blocks done; redraw the bar."""
        self.done += count
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        if elapsed < self.delay and (self.done < self.total or not self.final):
            return
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        width = 28
        filled = int(width * self.done / self.total)
        eta_text = f"{eta:5.0f}s" if math.isfinite(eta) else "    ?"
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.unit} "
            f"{rate:6.1f}/s ETA {eta_text}"
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """End the bar's line, if it was drawn."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
