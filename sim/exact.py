"""Exact sampling distributions of the estimators at sample size n.

Everything here is in nats and exact up to double-precision rounding; where a
quantity is not known exactly it is ``nan`` (never an approximation).

``llr``, ``cross_entropy``, ``entropy``
    Means of n i.i.d. terms: mean = the target, sd = σ/√n, and the fourth
    central moment (μ4 + 3(n − 1)σ⁴)/n³ from the per-sample moments.
``plugin_kl``
    E[KL(p̂‖q)] = KL(p‖q) + Σ_k E[p_k h(C_k/(n p_k) − 1)] with each count
    C_k ~ Binomial(n, p_k) marginally; every summand is non-negative, so the
    bias is exact to rounding.  For coins the whole law of the estimator is a
    function of the number of heads, so its sd and fourth moment are exact too.
``coverage95`` (llr)
    For a coin, llr − KL = (H − np)(ℓ_H − ℓ_T)/n, so |llr − KL| ≤ 1.96σ/√n
    exactly when |H − np| ≤ 1.96·√(np(1 − p)): a Binomial probability over
    integer head counts, with no rounded floats deciding ties.

Binomial sums
-------------
A sum E[g(C)] over C ~ Binomial(n, p) is taken over C within 12 sd (+15) of
np, where the omitted tails weigh less than 1e-30.  When the sd is large the
summand is smooth on the scale of the sd, and the sum is evaluated on every
s-th integer (s = ⌊sd/40⌋) and multiplied by s: by Poisson summation the
error of that is of order exp(−2π²·40²), far below rounding, so n = 10¹⁵
costs what n = 10⁴ costs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .distributions import Pair, snap_rounding, xlog1px_minus_x

WINDOW_SD = 12.0
WINDOW_PAD = 15
STRIDE_PER_SD = 40
Z95 = 1.96


@dataclass(frozen=True)
class Moments:
    """Exact mean, sd and fourth central moment of an estimator at one n (nats)."""

    mean: float
    sd: float
    mu4: float


#: Binomials with sd up to this are summed by a pmf recurrence, wider ones by scipy.
RECURRENCE_SD = 30.0
#: Lattice points evaluated at once (bounds memory whatever K is).
CHUNK_POINTS = 1 << 21


def _window(n: int, p: np.ndarray):
    mean = n * p
    sd = np.sqrt(n * p * (1.0 - p))
    half = np.ceil(WINDOW_SD * sd + WINDOW_PAD)
    lo = np.maximum(0.0, np.floor(mean - half))
    hi = np.minimum(float(n), np.ceil(mean + half))
    return sd, lo, hi


def expect(n: int, probs: np.ndarray, g) -> np.ndarray:
    """E[g(C_k, k)] for C_k ~ Binomial(n, p_k), for every k (see the module notes).

    ``g(c, k)`` receives float counts and category indices of equal shape.
    Narrow binomials (sd ≤ ``RECURRENCE_SD``) take their pmf from one scipy
    value at the window's start and the exact ratio pmf(c+1)/pmf(c) =
    (n − c)p/((c + 1)(1 − p)) accumulated in log space (relative error about
    the window's length times 1e-16); wide ones take scipy's pmf on a stride.
    Work proceeds in chunks of at most ``CHUNK_POINTS`` lattice points.
    """
    p = np.asarray(probs, dtype=float)
    out = np.zeros(p.size)
    sd, lo, hi = _window(n, p)
    narrow = np.flatnonzero(sd <= RECURRENCE_SD)
    width = (hi - lo + 1).astype(np.int64)
    start = 0
    while start < narrow.size:
        w_max = int(width[narrow[start]])
        stop = start
        while (
            stop < narrow.size and (stop - start + 1) * max(w_max, int(width[narrow[stop]])) <= CHUNK_POINTS
        ):
            w_max = max(w_max, int(width[narrow[stop]]))
            stop += 1
        stop = max(stop, start + 1)
        ks = narrow[start:stop]
        out[ks] = _expect_narrow(n, p[ks], lo[ks], hi[ks], ks, int(width[ks].max()), g)
        start = stop
    wide = np.flatnonzero(sd > RECURRENCE_SD)
    # chunks are sized by the points actually evaluated (one per stride), not by
    # the windows' widths, which grow like √n: at n = 2⁵³ that made a thousand
    # mostly empty chunks for one coin
    points = np.floor((hi[wide] - lo[wide]) / _stride(sd[wide])) + 1
    for chunk in np.array_split(wide, max(1, math.ceil(points.sum() / CHUNK_POINTS))) if wide.size else []:
        if chunk.size:
            out[chunk] = _expect_wide(n, p[chunk], sd[chunk], lo[chunk], hi[chunk], chunk, g)
    return out


def _stride(sd: np.ndarray) -> np.ndarray:
    """Lattice stride of a wide binomial's sum (see the module notes)."""
    return np.maximum(1.0, np.floor(sd / STRIDE_PER_SD))


def _expect_narrow(n, p, lo, hi, ks, width, g) -> np.ndarray:
    c = lo[:, None] + np.arange(width)[None, :]
    valid = c <= hi[:, None]
    cc = np.minimum(c, hi[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(n - cc[:, :-1]) - np.log(cc[:, :-1] + 1) + (np.log(p) - np.log1p(-p))[:, None]
        log_pmf = np.empty(c.shape)
        log_pmf[:, 0] = stats.binom.logpmf(lo, n, p)
        log_pmf[:, 1:] = log_pmf[:, :1] + np.cumsum(np.where(valid[:, 1:], log_ratio, 0.0), axis=1)
        terms = np.where(valid, np.exp(log_pmf) * g(cc, np.broadcast_to(ks[:, None], c.shape)), 0.0)
    return terms.sum(axis=1)


def _expect_wide(n, p, sd, lo, hi, ks, g) -> np.ndarray:
    stride = _stride(sd)
    counts = (np.floor((hi - lo) / stride) + 1).astype(np.int64)
    owner = np.repeat(np.arange(p.size), counts)
    first = np.cumsum(counts) - counts
    step = np.arange(counts.sum()) - np.repeat(first, counts)
    c = lo[owner] + step * stride[owner]
    w = stats.binom.pmf(c, n, p[owner]) * stride[owner]
    return np.bincount(owner, weights=w * g(c, ks[owner]), minlength=p.size)


def plugin_bias(pair: Pair, n: int) -> float:
    """E[KL(p̂_n‖q)] − KL(p‖q) = E[KL(p̂_n‖p)], exactly (nats).

    Categories with equal p_k are summed once and weighted by their number; a
    category with p_k = 1 (C_k = n surely) contributes 0.
    """
    probs = pair.p.probs[pair.support]
    values, multiplicity = np.unique(probs[probs < 1.0], return_counts=True)

    def term(c, k):
        pk = values[k]
        return pk * xlog1px_minus_x((c - n * pk) / (n * pk))

    return math.fsum(expect(n, values, term) * multiplicity)


def coin_plugin_moments(pair: Pair, n: int) -> Moments:
    """Exact mean, sd and μ4 of KL(p̂_n‖q) for a coin, from the law of the heads."""
    p = pair.p.heads
    if p in (0.0, 1.0):
        return Moments(pair.kl_pq, 0.0, 0.0)
    lh, lt = pair.log_ratio  # support is both categories when 0 < p < 1
    mean = pair.kl_pq + plugin_bias(pair, n)

    def deviation(c, _k):
        f = c / n
        to_p = p * xlog1px_minus_x((f - p) / p) + (1.0 - p) * xlog1px_minus_x((p - f) / (1.0 - p))
        value = f * lh + (1.0 - f) * lt + to_p
        return snap_rounding(value - mean, np.maximum(np.abs(value), abs(mean)))

    var = float(expect(n, np.array([p]), lambda c, k: deviation(c, k) ** 2)[0])
    mu4 = float(expect(n, np.array([p]), lambda c, k: deviation(c, k) ** 4)[0])
    return Moments(mean, math.sqrt(var), mu4)


def _p_wrong_moments(pair: Pair, n: int) -> Moments:
    """The indicator 1{llr_n ≤ 0}: exact for coins (a Binomial tail), unknown otherwise."""
    if pair.family != "coin":
        return Moments(math.nan, math.nan, math.nan)
    from .decision import coin_p_wrong

    w = coin_p_wrong(pair.p.heads, pair.q.heads, n)[0]
    var = w * (1.0 - w)
    return Moments(w, math.sqrt(var), var * (1.0 - 3.0 * var))


def per_sample(pair: Pair, estimator: str) -> tuple[float, float, float]:
    """Mean, variance and fourth central moment of one summand (nats)."""
    s = pair.support
    w = pair.p.probs[s]
    if estimator == "llr":
        values, mean = pair.log_ratio, pair.kl_pq
    elif estimator == "cross_entropy":
        values, mean = -pair.q.log_probs[s], pair.cross_entropy
    elif estimator == "entropy":
        values, mean = -pair.p.log_probs[s], pair.entropy_p
    else:
        raise ValueError(f"{estimator!r} is not a mean of i.i.d. terms")
    dev = snap_rounding(values - mean, np.maximum(np.abs(values), abs(mean)))
    return mean, math.fsum(w * dev**2), math.fsum(w * dev**4)


@functools.lru_cache(maxsize=4096)
def moments(pair: Pair, estimator: str, n: int) -> Moments:
    """Exact moments of ``estimator`` at sample size ``n``; nan where unknown.

    Cached per (pair, estimator, n): a run's summary and its check share them.
    """
    if estimator == "plugin_kl":
        if pair.family == "coin":
            return coin_plugin_moments(pair, n)
        return Moments(pair.kl_pq + plugin_bias(pair, n), math.nan, math.nan)
    if estimator == "p_wrong":
        return _p_wrong_moments(pair, n)
    if estimator == "p_wrong_tilted":
        if pair.family != "coin" or not 0.0 < pair.p.heads < 1.0:
            return Moments(math.nan, math.nan, math.nan)
        from .decision import coin_tilted_moments

        return Moments(*coin_tilted_moments(pair.p.heads, pair.q.heads, n))
    mean, var, mu4 = per_sample(pair, estimator)
    return Moments(mean, math.sqrt(var / n), (mu4 + 3 * (n - 1) * var**2) / n**3)


def coin_coverage_bounds(p: float, n: int) -> tuple[int, int]:
    """Head counts h with |llr_n − KL| ≤ 1.96 σ/√n form the integer range [lo, hi].

    For a coin llr − KL = (h − np)(ℓ_H − ℓ_T)/n and σ = √(p(1 − p))·|ℓ_H − ℓ_T|,
    so the event is |h − np| ≤ 1.96·√(np(1 − p)), whatever q is (σ > 0).
    """
    half = Z95 * math.sqrt(n * p * (1.0 - p))
    return math.ceil(n * p - half), math.floor(n * p + half)


def coverage95(pair: Pair, n: int) -> float:
    """P(|llr_n − KL| ≤ 1.96 σ/√n) exactly for a coin; nan for other families.

    A coin with σ = 0 (p = q, or p ∈ {0, 1}) has llr = KL always: coverage 1.
    """
    if pair.family != "coin":
        return math.nan
    p = pair.p.heads
    if pair.llr_sigma == 0.0 or p in (0.0, 1.0):
        return 1.0
    lo, hi = coin_coverage_bounds(p, n)
    return float(stats.binom.cdf(hi, n, p) - stats.binom.cdf(lo - 1, n, p))
