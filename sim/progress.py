"""The progress bar of a run: blocks done, rate and ETA on one line of stderr."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


class Progress:
    """A one-line progress bar on stderr: blocks done (of cases × blocks), rate and ETA.

    Shown only when stderr is a terminal, ``quiet`` is False and the run has
    lasted a second; a non-terminal stderr gets nothing.
    """

    def __init__(self, total: int, label: str, *, quiet: bool = False, stream: TextIO | None = None):
        self.total, self.label = total, label
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
        if elapsed < 1.0 and self.done < self.total:
            return
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        width = 28
        filled = int(width * self.done / self.total)
        eta_text = f"{eta:5.0f}s" if math.isfinite(eta) else "    ?"
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} blocks "
            f"{rate:6.1f}/s ETA {eta_text}"
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """End the bar's line, if it was drawn."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
