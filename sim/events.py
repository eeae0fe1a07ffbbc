"""The events behind the probability columns: the sample favours q, the llr covers KL.

Both are decided per row of a block from the path's counts and its llr: for
a coin on the integer number of heads, exactly as in their exact
probabilities (:mod:`sim.decision`, :mod:`sim.exact`); otherwise on the llr,
allowing for rounding.
"""

from __future__ import annotations

import math

import numpy as np

from .decision import coin_wrong_bound
from .distributions import TIE, Pair
from .estimators import SupportArrays
from .exact import Z95, coin_coverage_bounds


def llr_wrong(counts: np.ndarray, n: int, llr: np.ndarray, pair: Pair, arrays: SupportArrays) -> np.ndarray:
    """Whether llr_n ≤ 0 (the sample favours q), per row: the event behind ``p_wrong``.

    For a coin the event is decided on the integer number of heads (see
    :func:`sim.decision.coin_wrong_bound`), as in its exact probability;
    otherwise an llr within rounding of 0 counts as a tie, i.e. as ≤ 0.
    """
    if pair.family == "coin" and 0.0 < pair.p.heads < 1.0:
        side, h = coin_wrong_bound(pair.p.heads, pair.q.heads, n)
        heads = counts[:, int(np.flatnonzero(arrays.index == 0)[0])]
        return heads <= h if side == "le" else heads >= h
    tolerance = TIE * float(np.max(np.abs(arrays.log_ratio), initial=0.0))
    return llr <= tolerance


def llr_covered(counts: np.ndarray, n: int, llr: np.ndarray, pair: Pair, arrays: SupportArrays) -> np.ndarray:
    """Whether |llr − KL| ≤ 1.96 σ/√n, per row: the event behind ``coverage95``.

    For a coin the event is decided on the integer number of heads (see
    :func:`sim.exact.coin_coverage_bounds`), exactly as in its exact
    probability; otherwise on the llr values, allowing for rounding.
    """
    sigma, kl = pair.llr_sigma, pair.kl_pq
    if pair.family == "coin" and sigma > 0 and 0.0 < pair.p.heads < 1.0:
        lo, hi = coin_coverage_bounds(pair.p.heads, n)
        heads = counts[:, int(np.flatnonzero(arrays.index == 0)[0])]
        return (heads >= lo) & (heads <= hi)
    return np.abs(llr - kl) <= Z95 * sigma / math.sqrt(n) + 1e-12 * max(1.0, abs(kl))
