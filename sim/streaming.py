"""Summaries accumulated block by block, in memory that does not grow with replicates.

With ``save_replicates: false`` the replicates are never held together.  Each
task folds its blocks into an :class:`Accumulator`, and accumulators merge in
task order (so the result does not depend on how tasks were scheduled):

- counts, means and sums of squared deviations merge exactly by Chan et al.'s
  pairwise formulas, minima and maxima and coverage counts trivially;
- quantiles come from two fixed-bin histograms per (n, estimator): a fine one
  over the exact mean ± 12 exact sd (where the exact sd is known and positive;
  widened by a hair so that values on its edges fall inside) and a coarse
  one, over the estimator's a-priori range (llr lies between the smallest and
  largest log p/q, and so on), of the values outside that window.  A quantile
  is reported as the middle of the smallest interval known to contain it, and
  ``quantile_error`` in ``summary.csv`` is that interval's half-width: an
  upper bound on the distance to the exact quantile (numpy's linear
  interpolation).

Blocks arrive one checkpoint at a time (:class:`BlockFold`), values laid out
(estimators, replicates), so that their statistics are taken while they are
still in a core's cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import registry
from .distributions import Pair

BINS = 2048
#: Narrowest histogram window: BINS/width stays finite (and far from overflow).
MIN_WIDTH = 2.0**-1000
HISTOGRAM_WINDOW_SD = 12.0


@dataclass
class Accumulator:
    """Streaming statistics, per (n, estimator), of replicated values."""

    count: int
    mean: np.ndarray
    m2: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    fine: np.ndarray
    coarse: np.ndarray
    covered: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> Accumulator:
        return cls(
            0,
            np.zeros(shape),
            np.zeros(shape),
            np.full(shape, np.inf),
            np.full(shape, -np.inf),
            np.zeros((*shape, BINS + 2), dtype=np.int64),  # + below, above the window
            np.zeros((*shape, BINS), dtype=np.int64),
            np.zeros(shape[0], dtype=np.int64),
        )

    def merge(self, other: Accumulator) -> None:
        """Fold another accumulator in (Chan's pairwise update; deterministic in order)."""
        self._merge_moments(other.count, other.mean, other.m2, other.minimum, other.maximum)
        self.fine += other.fine
        self.coarse += other.coarse
        self.covered += other.covered

    def _merge_moments(self, n_b: int, mean, m2, minimum, maximum) -> None:
        """Chan's pairwise update of count, mean and m2: exact up to rounding."""
        if n_b == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = n_b, np.array(mean), np.array(m2)
            self.minimum, self.maximum = np.array(minimum), np.array(maximum)
            return
        n_a = self.count
        n = n_a + n_b
        delta = mean - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2 + delta**2 * (n_a * n_b / n)
        self.count = n
        self.minimum = np.minimum(self.minimum, minimum)
        self.maximum = np.maximum(self.maximum, maximum)

    def arrays(self) -> dict[str, np.ndarray]:
        """The state as arrays, to send between processes and store for resuming.

        Counts travel in the smallest unsigned type that holds them: a task's
        histograms (at most 32,768 replicates) fit 16 bits, a quarter of the
        bytes to pickle and compress.
        """
        out = {}
        for k, v in self.__dict__.items():
            v = np.asarray(v)
            if k in _COUNTS:
                v = v.astype(np.min_scalar_type(int(v.max(initial=0))))
            out[k] = v
        return out

    @classmethod
    def from_arrays(cls, arrays) -> Accumulator:
        """The accumulator whose :meth:`arrays` these are (counts widened back to int64)."""
        state = {}
        for k in cls.__dataclass_fields__:
            if k == "count":
                state[k] = int(arrays[k])
            else:
                state[k] = np.array(arrays[k], dtype=np.int64 if k in _COUNTS else float)
        return cls(**state)


class BlockFold:
    """One block's statistics, gathered one checkpoint at a time as they are computed.

    Folding each checkpoint's values while they are still in a core's cache,
    instead of a whole block (megabytes) afterwards, saves the memory traffic
    that otherwise slows parallel workers down.  Histograms go straight into
    the accumulator; the block's moments are merged by :meth:`close`.
    """

    def __init__(self, acc: Accumulator, ranges: Ranges, rows: int):
        self.acc, self.ranges, self.rows = acc, ranges, rows
        shape = acc.mean.shape
        self.mean, self.m2 = np.empty(shape), np.empty(shape)
        self.minimum, self.maximum = np.empty(shape), np.empty(shape)

    def add(self, j: int, v: np.ndarray, covered: np.ndarray | None) -> None:
        """Checkpoint ``j``'s values (estimators, rows) and coverage flags (rows,) or None.

        Values of estimators with a :attr:`Ranges.exponent` are scaled in place.
        """
        if self.ranges.exponent is not None:
            for e in np.flatnonzero(self.ranges.exponent[j]):
                v[e] = np.ldexp(v[e], -self.ranges.exponent[j, e])
        self.mean[j] = v.mean(axis=-1)
        deviation = v - self.mean[j][:, None]
        self.m2[j] = np.square(deviation, out=deviation).sum(axis=-1)  # pairwise, like the mean
        self.minimum[j], self.maximum[j] = v.min(axis=-1), v.max(axis=-1)
        at, vj = slice(j, j + 1), v[None]
        fine, outside = self.ranges.histogram_fine(vj, at)
        self.acc.fine[at] += fine
        if outside is not None:
            self.acc.coarse[at] += self.ranges.histogram_coarse(vj, outside, at)
        if covered is not None:
            self.acc.covered[j] += np.count_nonzero(covered)

    def close(self) -> None:
        self.acc._merge_moments(self.rows, self.mean, self.m2, self.minimum, self.maximum)


#: Accumulator fields that hold counts.
_COUNTS = ("fine", "coarse", "covered")


#: Tilted replicates whose bound is below this are accumulated scaled up by a
#: power of two (see :attr:`Ranges.exponent`): their squares would underflow.
TINY = 2.0**-400


@dataclass(frozen=True)
class Ranges:
    """Histogram ranges per (n, estimator), in the experiment's units.

    ``exponent`` holds, per (n, estimator), the k such that values are
    accumulated as v·2⁻ᵏ (and the ranges are given in those units): 0 except
    for ``p_wrong_tilted`` where its bound e^(−nC) is below :data:`TINY`
    (yet above the smallest double), so that the squares of values of 1e-200
    do not underflow to an sd of 0.  Powers of two scale exactly, so nothing
    else changes by a bit.
    """

    fine_lo: np.ndarray
    fine_hi: np.ndarray
    coarse_lo: np.ndarray
    coarse_hi: np.ndarray
    exponent: np.ndarray | None = None

    @classmethod
    def for_case(cls, pair: Pair, checkpoints, estimators, units: str) -> Ranges:
        """The windows of one case: a-priori bounds, narrowed to the exact mean ± 12 sd where known."""
        specs = registry.specs(estimators)
        shape = (len(checkpoints), len(specs))
        coarse_lo, coarse_hi = _bounds(pair, checkpoints, specs)
        exponent = np.zeros(shape, dtype=np.int64)
        for e, spec in enumerate(specs):
            for j, hi in enumerate(coarse_hi[:, e]):
                if spec.tilted and 0.0 < hi < TINY:
                    exponent[j, e] = math.frexp(hi)[1]  # hi·2⁻ᵏ in [½, 1)
        fine_lo, fine_hi = np.array(coarse_lo), np.array(coarse_hi)
        for e, spec in enumerate(specs):
            for j, n in enumerate(checkpoints):
                m = spec.moments(pair, int(n))
                if m.sd > 0:
                    fine_lo[j, e] = max(coarse_lo[j, e], m.mean - HISTOGRAM_WINDOW_SD * m.sd)
                    fine_hi[j, e] = min(coarse_hi[j, e], m.mean + HISTOGRAM_WINDOW_SD * m.sd)
        # Widened by a hair, so that a value on an edge (often an a-priori
        # bound itself, or the only value of a constant estimator) falls in
        # the window whatever its last bits of rounding.
        hair = (fine_hi - fine_lo) * 2.0**-20 + 1e-12 * np.maximum(abs(fine_lo), abs(fine_hi))
        fine_lo -= hair
        fine_hi += hair
        fine_hi, coarse_hi = _at_least_min_width(fine_lo, fine_hi), _at_least_min_width(coarse_lo, coarse_hi)
        divisor = registry.divisors(estimators, units)
        scaled = (np.ldexp(a / divisor, -exponent) for a in (fine_lo, fine_hi, coarse_lo, coarse_hi))
        return cls(*scaled, exponent=exponent if exponent.any() else None)

    def histogram_fine(self, v: np.ndarray, at: slice = slice(None)) -> tuple[np.ndarray, np.ndarray | None]:
        """Counts of values ``v`` (n, estimators, rows) in the window's bins.

        ``at`` selects the checkpoints ``v`` holds.  Bin 0 counts the values
        below the window and bin BINS + 1 those above it.  Returns the counts
        and the mask of values outside the window, or None when there are
        none (the common case).
        """
        j, e, _ = v.shape
        t = _positions(v, self.fine_lo[at], self.fine_hi[at], shift=1.0)
        np.clip(t, 0.0, BINS + 1.0, out=t)  # then truncation is floor
        idx = t.astype(np.int32)  # a faster conversion than to int64
        idx += (np.arange(j * e, dtype=np.int32) * (BINS + 2)).reshape(j, e, 1)
        counts = np.bincount(idx.ravel(), minlength=j * e * (BINS + 2)).reshape(j, e, BINS + 2)
        if not (counts[..., 0].any() or counts[..., BINS + 1].any()):
            return counts, None
        return counts, (t < 1.0) | (t >= BINS + 1.0)

    def histogram_coarse(self, v: np.ndarray, outside: np.ndarray, at: slice = slice(None)) -> np.ndarray:
        """Counts over the a-priori range of the values ``v`` outside the window only."""
        j, e, _ = v.shape
        jj, ee, r = np.nonzero(outside)
        lo, hi = self.coarse_lo[at], self.coarse_hi[at]
        t = _positions(v[jj, ee, r], lo[jj, ee], hi[jj, ee])
        b = np.clip(t, 0.0, BINS - 1.0).astype(np.intp) + (jj * e + ee) * BINS
        return np.bincount(b, minlength=j * e * BINS).reshape(j, e, BINS)

    def quantiles(self, acc: Accumulator, probs) -> tuple[np.ndarray, np.ndarray]:
        """Quantile estimates and their error bounds, shaped (len(probs), n, estimators)."""
        count = acc.count
        shape = acc.mean.shape
        est = np.zeros((len(probs), *shape))
        err = np.zeros((len(probs), *shape))
        fine_width = (self.fine_hi - self.fine_lo) / BINS
        coarse_width = (self.coarse_hi - self.coarse_lo) / BINS
        cum_fine = np.cumsum(acc.fine, axis=-1)
        cum_coarse = np.cumsum(acc.coarse, axis=-1)
        for i, q in enumerate(probs):
            pos = (count - 1) * q
            ranks = (math.floor(pos), math.ceil(pos))
            lo = np.full(shape, np.inf)
            hi = np.full(shape, -np.inf)
            window_count = cum_fine[..., BINS] - cum_fine[..., 0]
            for rank in ranks:
                # rank-th order statistic (0-based): first bin whose cumulative count exceeds it
                b_f = np.argmax(cum_fine > rank, axis=-1)
                in_window = (b_f >= 1) & (b_f <= BINS)
                f_lo = self.fine_lo + (b_f - 1) * fine_width
                # outside the window: its rank among the out-of-window values, in the coarse bins
                outside_rank = np.where(b_f == 0, rank, rank - window_count)
                b_c = np.argmax(cum_coarse > outside_rank[..., None], axis=-1)
                c_lo = self.coarse_lo + b_c * coarse_width
                left = np.where(in_window, f_lo, c_lo)
                right = np.where(in_window, f_lo + fine_width, c_lo + coarse_width)
                lo = np.minimum(lo, left)
                hi = np.maximum(hi, right)
            lo = np.clip(lo, acc.minimum, acc.maximum)
            hi = np.clip(hi, acc.minimum, acc.maximum)
            est[i] = (lo + hi) / 2
            err[i] = (hi - lo) / 2
        return est, err


def _positions(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """(values − lo)/(hi − lo)·BINS + shift, with bounds broadcast over a last axis of rows.

    ``values`` is (n, estimators, rows) with (n, estimators) bounds, or flat
    with bounds of the same shape.
    """
    if values.ndim == 3:
        lo, hi = lo[..., None], hi[..., None]
    scale = BINS / np.where(hi > lo, hi - lo, 1.0)
    t = np.multiply(values, scale)
    t -= lo * scale - shift
    return t


def _bounds(pair: Pair, checkpoints, specs) -> tuple[np.ndarray, np.ndarray]:
    """(checkpoints, estimators) a-priori bounds of every value (:meth:`sim.registry.Estimator.bounds_at`).

    Some grow with n: a tilted replicate's value w·1{llr_n ≤ 0} ≤ Z^n =
    exp(−n·C), widened for rounding (:func:`sim.decision.tilted_bound`), and
    the jackknife's range.
    """
    shape = (len(checkpoints), len(specs))
    lo, hi = np.zeros(shape), np.zeros(shape)
    for e, spec in enumerate(specs):
        lo[:, e], hi[:, e] = spec.bounds_at(pair, checkpoints)
    return lo, hi


def _at_least_min_width(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``hi``, moved up where the window is narrower than :data:`MIN_WIDTH`.

    A window narrower than MIN_WIDTH (a tilted bound e^(−nC) of 1e-322) would
    make BINS/width overflow: widening it only coarsens its bins, never loses
    a value.  An empty window, lo = hi, is left alone: one value, no bins.
    """
    return np.where((hi > lo) & (hi - lo < MIN_WIDTH), lo + MIN_WIDTH, hi)
