"""Replicates chosen by target precision: ``replicates: {mcse: 0.001, max: 1000000}``.

A case runs in rounds of whole blocks (:mod:`sim.tasks`: a block's replicates depend only on the
seed, the case and the block's number, never on how many there are), until every summary row
asked for (``estimators``, default ``llr``, at every n) has an MCSE ≤ ``mcse``, or the case has
``max`` replicates.  The first round is one block (or ``max``, if smaller).  After each round the
next count is predicted from the worst row, R·(MCSE/target)²·1.2, in whole blocks, at least one
block more and at most 8 times as many, never beyond ``max``.  Every decision reads only the
values of the replicates made so far, in replicate order, so the same config gives the same
counts, and the same bytes, for any number of workers and any executor; ``sim check`` replays
the rule on ``replicates.csv.gz`` and must find the count each case has.

Rows asked for are judged with a margin of 10⁻⁹ (MCSE ≤ target·(1 − 10⁻⁹)), so that the MCSE
``summary.csv`` shows, computed in another order, is within the target too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Predicted counts are inflated by this factor (an MCSE estimated from R replicates is itself noisy).
GROWTH_MARGIN = 1.2
#: One round at most multiplies a case's replicates by this (an early sd can be far off).
MAX_GROWTH = 8
#: A row meets the target when MCSE ≤ target·(1 − STOP_MARGIN).
STOP_MARGIN = 1e-9


@dataclass(frozen=True)
class Precision:
    """A target MCSE for the rows of some estimators, at every n.

    Attributes
    ----------
    mcse : float
        The target, in the experiment's units.
    estimators : tuple of str
        Whose rows must meet it.
    max : int
        The most replicates a case may have.
    """

    mcse: float
    estimators: tuple[str, ...]
    max: int

    def to_dict(self) -> dict:
        return {"mcse": self.mcse, "max": self.max, "estimators": list(self.estimators)}


def first_count(precision: Precision, block: int) -> int:
    """Replicates of a case's first round: one block, or ``max`` if smaller."""
    return min(precision.max, block)


def worst(mcse: np.ndarray, precision: Precision) -> float:
    """The largest MCSE / target over the rows asked for (inf where an MCSE is not finite)."""
    ratio = np.asarray(mcse, dtype=float) / precision.mcse
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    return float(np.max(ratio, initial=0.0))


def next_count(precision: Precision, done: int, block: int, mcse: np.ndarray) -> int | None:
    """The replicates a case should have after its next round, or None when it is done."""
    ratio = worst(mcse, precision)
    if ratio <= 1.0 - STOP_MARGIN or done >= precision.max:
        return None
    want = done * ratio * ratio * GROWTH_MARGIN if math.isfinite(ratio) else math.inf
    want = min(want, done * MAX_GROWTH, precision.max)
    blocks = max(math.ceil(want / block), done // block + 1)
    return min(precision.max, blocks * block)


def asked(values: np.ndarray, estimators: Sequence[str], precision: Precision) -> np.ndarray:
    """The MCSE of every row asked for, from replicates ``(R, n, estimators)`` in replicate order.

    Computed on a contiguous copy of the columns asked for, so that the pipeline and ``sim check``
    (reading ``replicates.csv.gz``) decide alike.
    """
    columns = [estimators.index(e) for e in precision.estimators]
    x = np.ascontiguousarray(values[:, :, columns], dtype=float)
    r = x.shape[0]
    if r < 2:
        return np.full(x.shape[1:], np.inf)
    with np.errstate(invalid="ignore"):
        return x.std(axis=0, ddof=1) / math.sqrt(r)


def replay(values: np.ndarray, estimators: Sequence[str], precision: Precision, block: int) -> int:
    """The count the rule stops at on these replicates (in order), as the pipeline decided it."""
    count = first_count(precision, block)
    while count <= values.shape[0]:
        nxt = next_count(precision, count, block, asked(values[:count], estimators, precision))
        if nxt is None:
            return count
        count = nxt
    return count  # more than there are: the table is short, which the check reports


def shortfall_notes(precision: Precision | None, summary: pd.DataFrame) -> list[str]:
    """One note per case whose rows asked for did not reach the target by ``max`` replicates."""
    if precision is None:
        return []
    rows = summary[summary.estimator.isin(precision.estimators)]
    notes = []
    for case, part in rows.groupby("case", sort=False):
        short = part[~(part.mcse <= precision.mcse)]
        if len(short):
            top = short.loc[short.mcse.fillna(np.inf).idxmax()]
            notes.append(
                f"case {case}: {len(short)} row(s) asked for reached max = {precision.max:,} replicates "
                f"with an MCSE above {precision.mcse:g} (largest {top.mcse:.3g}: {top.estimator} at "
                f"n = {int(top.n):,})"
            )
    return notes
