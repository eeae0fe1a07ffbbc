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
    For more categories the variance is a sum of one-category terms and of
    covariances of two counts, each a double Binomial sum (the second count
    given the first is Binomial); categories of equal p share their sums, so
    the sd is exact wherever those sums fit ``VARIANCE_BUDGET`` (few distinct
    probabilities, any K for a uniform p) and ``nan`` beyond it, and μ4 is
    ``nan`` except at n = 1.  :func:`plugin_variance` gives the exact variance
    or, beyond the budget, a rigorous upper bound (Efron–Stein) that costs what
    the mean costs, flagged as such; :func:`plugin_mu4_upper` bounds μ4.
``coverage95`` (llr)
    For a coin, llr − KL = (H − np)(ℓ_H − ℓ_T)/n, so |llr − KL| ≤ 1.96σ/√n
    exactly when |H − np| ≤ 1.96·√(np(1 − p)): a Binomial probability over
    integer head counts, with no rounded floats deciding ties.

Binomial sums
-------------
A sum E[g(C)] over C ~ Binomial(n, p) is taken over C within 12 sd (+15) of
np, where the omitted tails weigh less than 1e-30, with the pmf from Loader's
saddle-point form (relative error ~1e-15 at any n).  From sd = 8 on the
summand is smooth on the scale of the sd, and the sum is evaluated on every
s-th integer (s = ⌊sd/4⌋) and multiplied by s: by Poisson summation the
error of that is of order exp(−2π²(sd/s)²) ≤ e⁻³¹⁶ (for a small p at
sd = 8, where s = 2, the alternating sum |1 − 2p|ⁿ ≈ e⁻¹²⁸), far below
rounding, so n = 10¹⁵ costs what n = 10⁴ costs.

The sums behind the plug-in variance take their pmf from Loader's
saddle-point form (relative error ~1e-15 at any n, where scipy's loses
precision as n grows), over the same windows, on a stride of sd/4 once the sd
is at least 8: an aliasing error of order exp(−2π²·4²) ≈ 1e-137, and a window
that reaches 0 or n then holds there a mass below e⁻⁶⁴; sums over every
integer agree with them to rounding (measured: 1e-13 relative or better).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

from .binomial import _HALF_LOG_2PI, _stirlerr
from .decision import coin_p_wrong
from .distributions import (
    Pair,
    digamma_excess,
    h_beyond_square,
    jackknife_excess,
    jackknife_excess_beyond_half,
    jackknife_kl_terms,
    posterior_kl_terms,
    smoothed_kl_terms,
    snap_rounding,
    two_product,
    xlog1px_minus_x,
)

WINDOW_SD = 12.0
WINDOW_PAD = 15
STRIDE_PER_SD = 4
Z95 = 1.96


@dataclass(frozen=True)
class Moments:
    """Exact mean, sd and fourth central moment of an estimator at one n (nats)."""

    mean: float
    sd: float
    mu4: float


#: Binomials with sd up to this are summed over every count by a pmf recurrence, wider ones on a stride.
RECURRENCE_SD = 8.0
#: Lattice points evaluated at once (bounds memory whatever K is).
CHUNK_POINTS = 1 << 21
#: Lattice points evaluated at once: small enough for the arrays to stay in the CPU's cache.
SLICE_POINTS = 1 << 16


def _window(n: int, p: np.ndarray):
    mean = n * p
    sd = np.sqrt(n * p * (1.0 - p))
    half = np.ceil(WINDOW_SD * sd + WINDOW_PAD)
    lo = np.maximum(0.0, np.floor(mean - half))
    hi = np.minimum(float(n), np.ceil(mean + half))
    return sd, lo, hi


def expect(n: int, probs: np.ndarray, g) -> np.ndarray:
    """E[g(C_k, k)] for C_k ~ Binomial(n, p_k), for every k (see the module notes).

    ``g(c, k)`` receives float counts and the category indices, which
    broadcast against each other (one index per row of counts, or one per count).
    It may return a tuple of m arrays: the result is then (m, K), every
    expectation taken from one evaluation of the pmfs.
    Narrow binomials (sd ≤ ``RECURRENCE_SD``) take their pmf from one value at
    the window's start (Loader's form) and the exact ratio pmf(c+1)/pmf(c) =
    (n − c)p/((c + 1)(1 − p)) accumulated in log space (relative error about
    the window's length times 1e-16); wide ones take Loader's pmf on a stride.
    Narrow windows are padded to a common width in groups of at most
    ``CHUNK_POINTS`` lattice points, evaluated ``SLICE_POINTS`` at a time.
    The lattice and its weights depend on n and the probabilities only, so
    the last ones asked for are kept (:func:`_expect_lattice`): every estimator's
    sums at one n share them.
    """
    p = np.asarray(probs, dtype=float)
    out: np.ndarray | None = None
    for part in _expect_lattice(n, p):
        values = part.sums(g(part.counts(), part.index))
        if out is None:
            out = np.zeros((*values.shape[:-1], p.size))
        out[..., part.rows] = values
    return out if out is not None else np.zeros(p.size)


@dataclass(frozen=True, eq=False)
class _Part:
    """A slice of :func:`expect`'s lattice: categories ``rows`` and their weighted points.

    Narrow (``owner`` None): a (rows, width) grid of counts lo + j, capped at
    hi (``valid`` marks the real ones); wide: a flat list of points on a
    stride, ``owner`` giving each one's row within the part.
    """

    rows: np.ndarray
    weights: np.ndarray
    valid: np.ndarray | None
    lo: np.ndarray
    hi: np.ndarray | None
    owner: np.ndarray | None = None

    def counts(self) -> np.ndarray:
        """The counts of the part's points, as floats."""
        if self.owner is not None:
            return self.lo
        return np.minimum(self.lo[:, None] + np.arange(self.weights.shape[1])[None, :], self.hi[:, None])

    @property
    def index(self) -> np.ndarray:
        """Each point's category, broadcasting against :meth:`counts`."""
        return self.rows[self.owner] if self.owner is not None else self.rows[:, None]

    def sums(self, values) -> np.ndarray:
        """Σ weight·value per row (one array of values, or a tuple of them: stacked first)."""
        if self.owner is None:
            return _weighted_sums(self.weights, self.valid, values)
        size = self.rows.size
        if isinstance(values, tuple):
            return np.stack(
                [np.bincount(self.owner, weights=self.weights * v, minlength=size) for v in values]
            )
        return np.bincount(self.owner, weights=self.weights * values, minlength=size)


def _expect_lattice(n: int, p: np.ndarray) -> Iterable[_Part]:
    """The weighted points of :func:`expect` for n and the probabilities ``p``.

    A lattice of at most :data:`KEPT_POINTS` points is kept (the last one
    only), so that every estimator's sums at one n share it; a larger one is
    built a chunk at a time (at most :data:`CHUNK_POINTS` points) and dropped.
    """
    global _LAST_LATTICE
    key = (int(n), p.tobytes())
    last = _LAST_LATTICE  # read once: another thread may replace it
    if last is not None and last[0] == key:
        return last[1]
    sd, lo, hi = _window(n, p)
    wide = sd > RECURRENCE_SD
    points = (hi - lo + 1)[~wide].sum() + (np.floor((hi - lo)[wide] / _stride(sd[wide])) + 1).sum()
    if points > KEPT_POINTS:
        return _lattice_parts(int(n), p, sd, lo, hi)
    parts = list(_lattice_parts(int(n), p, sd, lo, hi))
    _LAST_LATTICE = (key, parts)
    return parts


#: The most lattice points kept between calls of :func:`expect` (about 40 MB of weights).
KEPT_POINTS = 1 << 22
#: (key, parts) of the last lattice :func:`expect` kept.
_LAST_LATTICE: tuple[tuple[int, bytes], list[_Part]] | None = None


def _lattice_parts(n: int, p: np.ndarray, sd, lo, hi) -> Iterator[_Part]:
    """The lattice's parts, one at a time (narrow slices, then wide chunks)."""
    narrow = np.flatnonzero(sd <= RECURRENCE_SD)
    width = (hi - lo + 1).astype(np.int64)
    for group, w in _narrow_groups(width[narrow]):
        ks = narrow[group]
        for rows in np.array_split(ks, -(-ks.size * w // SLICE_POINTS)):  # rows are independent
            yield _narrow_part(n, p[rows], lo[rows], hi[rows], rows, w)
    wide = np.flatnonzero(sd > RECURRENCE_SD)
    # chunks are sized by the points actually evaluated (one per stride), not by
    # the windows' widths, which grow like √n: at n = 2⁵³ that made a thousand
    # mostly empty chunks for one coin
    points = np.floor((hi[wide] - lo[wide]) / _stride(sd[wide])) + 1
    for chunk in np.array_split(wide, max(1, math.ceil(points.sum() / CHUNK_POINTS))) if wide.size else []:
        if chunk.size:
            yield _wide_part(n, p[chunk], sd[chunk], lo[chunk], hi[chunk], chunk)


def _narrow_groups(widths: np.ndarray) -> Iterator[tuple[slice, int]]:
    """Consecutive runs of windows padded to one width: (positions, width) of each.

    Greedy: a run grows while its length times its widest window stays within
    ``CHUNK_POINTS`` (one window at least).  A row's sum depends on the width it
    is padded to (pairwise summation), so the runs are part of the result's
    last bits; they are decided here once, without a Python loop per window.
    """
    start = 0
    while start < widths.size:
        seg = np.maximum.accumulate(widths[start : start + CHUNK_POINTS // int(widths[start]) + 1])
        fits = np.arange(1, seg.size + 1) * seg <= CHUNK_POINTS
        length = max(1, int(np.argmin(fits)) if not fits.all() else seg.size)
        yield slice(start, start + length), int(seg[length - 1])
        start += length


def _weighted_sums(weights: np.ndarray, valid: np.ndarray | None, values) -> np.ndarray:
    """Σ weights·g over each row (narrow) — for one g or a tuple of them, stacked first."""
    several = isinstance(values, tuple)
    stack = np.stack(values) if several else values[None]
    terms = weights[None] * stack
    if valid is not None:
        terms = np.where(valid[None], terms, 0.0)
    sums = terms.sum(axis=-1)
    return sums if several else sums[0]


def _stride(sd: np.ndarray) -> np.ndarray:
    """Lattice stride of a wide binomial's sum (see the module notes)."""
    return np.maximum(1.0, np.floor(sd / STRIDE_PER_SD))


def _narrow_part(n, p, lo, hi, ks, width) -> _Part:
    c = lo[:, None] + np.arange(width)[None, :]
    valid = c <= hi[:, None]
    cc = np.minimum(c, hi[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = _log_count_ratio(n, cc[:, :-1]) + (np.log(p) - np.log1p(-p))[:, None]
        log_pmf = np.empty(c.shape)
        log_pmf[:, 0] = _log_pmf_at(lo, n, p)
        log_pmf[:, 1:] = log_pmf[:, :1] + np.cumsum(np.where(valid[:, 1:], log_ratio, 0.0), axis=1)
        return _Part(ks, np.exp(log_pmf), None if valid.all() else valid, lo, hi)


def _log_count_ratio(n: int, c: np.ndarray) -> np.ndarray:
    """log(n − c) − log(c + 1) for integer-valued c, from tables of the counts' range when it is short.

    The tables hold the very values the logarithms give elementwise; they only
    save computing them once per point (a lattice repeats each count many times).
    """
    first, last = float(c.min()), float(c.max())
    if last - first > c.size:
        return np.log(n - c) - np.log(c + 1)
    span = np.arange(first, last + 1.0)
    at = (c - first).astype(np.intp)
    return np.log(n - span)[at] - np.log(span + 1)[at]


def _log_pmf_at(k: np.ndarray, n: int, p: np.ndarray) -> np.ndarray:
    """log P(C = k) for C ~ Binomial(n, p), elementwise over (k, p) pairs, to relative precision.

    Not scipy's ``binom.logpmf``: a difference of gammaln values of size
    log n!, it loses about |log n!|·1e-16 absolutely (1e-12 of a narrow sum
    at n = 3,000, 3e-3 at n = 10¹²), and a narrow sum's every term is scaled
    by its starting value.  Loader's saddle-point form (Stirling remainders
    and a deviance of non-negative terms, as in :func:`sim.binomial.log_pmf`)
    has an error relative to its own size at every n.
    """
    k = np.asarray(k, dtype=float)
    p = np.asarray(p, dtype=float)
    nf = float(n)
    # the edges from log1p, exact for a small p; the interior in Loader's form
    with np.errstate(divide="ignore"):
        edges = np.where(k == 0, nf * np.log1p(-p), nf * np.log(p))
    return np.where((k > 0) & (k < nf), _binomial_log_pmf(k, nf, p, 1.0 - p), edges)


def _wide_part(n, p, sd, lo, hi, ks) -> _Part:
    stride = _stride(sd)
    counts = (np.floor((hi - lo) / stride) + 1).astype(np.int64)
    owner = np.repeat(np.arange(p.size), counts)
    first = np.cumsum(counts) - counts
    step = np.arange(counts.sum()) - np.repeat(first, counts)
    c = lo[owner] + step * stride[owner]
    return _Part(ks, np.exp(_log_pmf_at(c, n, p[owner])) * stride[owner], None, c, None, owner)


def plugin_bias(pair: Pair, n: int) -> float:
    """E[KL(p̂_n‖q)] − KL(p‖q) = E[KL(p̂_n‖p)], exactly (nats).

    Categories with equal p_k are summed once and weighted by their number; a
    category with p_k = 1 (C_k = n surely) contributes 0.
    """
    if _two_sided(pair):
        return _coin_plugin_bias(pair, n)
    probs = pair.p.probs[pair.support]
    values, multiplicity = np.unique(probs[probs < 1.0], return_counts=True)
    if values.size == probs.size:  # all distinct: the support's own order, whose sums others share
        values, multiplicity = probs, np.ones(probs.size)

    def term(c, k):
        pk = values[k]
        return pk * xlog1px_minus_x((c - n * pk) / (n * pk))

    return math.fsum(expect(n, values, term) * multiplicity)


def _two_sided(pair: Pair) -> bool:
    """A coin with both faces possible: its sums run over the heads alone (:func:`coin_mean`)."""
    return pair.family == "coin" and pair.support.size == 2


def coin_mean(pair: Pair, n: int, value) -> float:
    """E[value(H)], H ~ Binomial(n, P(heads)): a coin's estimator as a function of its heads.

    The tails are n − H: a coin's tails probability is stored as the double
    nearest 1 − h, whose own complement is not h (for h = 10⁻⁶ it is off by
    1e-10 relatively), so no sum runs over the tails' Binomial law.
    """
    return float(expect(n, np.array([pair.p.heads]), lambda c, _k: value(c))[0])


def _coin_plugin_bias(pair: Pair, n: int) -> float:
    """E[KL(p̂_n‖p)] of a two-sided coin: h·h(r/(nh)) + t·h(−r/(nt)), r = H − nh without nh's rounding."""
    h = pair.p.heads
    t = 1.0 - h
    hi, lo = two_product(float(n), h)

    def value(c):
        r = (c - hi) - lo
        return h * xlog1px_minus_x(r / (n * h)) + t * xlog1px_minus_x(-r / (n * t))

    return coin_mean(pair, n, value)


def coin_plugin_moments(pair: Pair, n: int) -> Moments:
    """Exact mean, sd and μ4 of KL(p̂_n‖q) for a coin, from the law of the heads."""
    p = pair.p.heads
    if p in (0.0, 1.0):
        return Moments(pair.kl_pq, 0.0, 0.0)
    return _coin_moments(pair, n, pair.kl_pq + plugin_bias(pair, n), coin_plugin_values(pair, n))


def _coin_moments(pair: Pair, n: int, mean: float, value) -> Moments:
    """Moments about its exact ``mean`` of a coin's estimator ``value(heads)``: sums over the heads."""

    def deviation(c, _k):
        v = value(c)
        return snap_rounding(v - mean, np.maximum(np.abs(v), abs(mean)))

    p = np.array([pair.p.heads])
    var = float(expect(n, p, lambda c, k: deviation(c, k) ** 2)[0])
    mu4 = float(expect(n, p, lambda c, k: deviation(c, k) ** 4)[0])
    return Moments(mean, math.sqrt(var), mu4)


def expected_observed(pair: Pair, n: int) -> float:
    """E[K̂_n], the expected number of categories observed among n draws: Σ_k 1 − (1 − p_k)^n."""
    probs = pair.p.probs[pair.support]
    with np.errstate(divide="ignore"):  # p_k = 1: log1p(−1) = −inf, seen surely
        return math.fsum(-np.expm1(n * np.log1p(-probs)))


def observed_sd_upper(pair: Pair, n: int) -> float:
    """An upper bound on sd(K̂_n): √Σ_k P_k(1 − P_k), P_k = P(category k observed).

    The indicators of observed categories are negatively associated (the
    counts of a Multinomial are), so their covariances are ≤ 0 and the
    variance of their sum is at most the sum of their variances.
    """
    with np.errstate(divide="ignore"):
        log_unseen = n * np.log1p(-pair.p.probs[pair.support])  # log(1 − P_k)
    return math.sqrt(math.fsum(np.exp(log_unseen) * -np.expm1(log_unseen)))


#: From this expected count on, a category's plug-in term is split as r²/2 (its exact mean) plus the rest.
SPLIT_FROM = 4.0


class _Split(NamedTuple):
    """A pair's categories at n for the split means: which are common (n p ≥ :data:`SPLIT_FROM`),
    P(unseen), P(seen), the coin's tails correction hδ/(2nt) (see :func:`_split`), and the
    per-category expectation of a term in (c, k) plus the plug-in's h − r²/2 (common) or h (rare)."""

    probs: np.ndarray
    common: np.ndarray
    unseen: np.ndarray
    seen: np.ndarray
    tails: float
    expect: Callable


def _split(pair: Pair, n: int) -> _Split:
    """What the split means share (:func:`_corrected_plugin_mean`, :func:`_jackknife_mean`).

    With r_k = C_k/(n p_k) − 1, E[p_k r_k²/2] = (1 − p_k)/(2n) exactly, so a
    common category's E[p_k h(r_k)] is E[p_k (h(r_k) − r_k²/2)], O(1/n²), plus
    that.  A coin's tails r is formed with its stored t, the double nearest
    1 − h = t + δ, which adds hδ/(2nt) when the tails are common.
    """
    probs = pair.p.probs[pair.support]
    common = n * probs >= SPLIT_FROM
    tails = 0.0
    with np.errstate(divide="ignore"):
        log_unseen = n * np.log1p(-probs)
    if _two_sided(pair):  # exact complements: the tails' is h itself
        t = float(probs[1])
        delta = (1.0 - t) - pair.p.heads  # exact (Sterbenz): what t lacks of 1 − h
        tails = pair.p.heads * delta / (2 * n * t) if common[1] else 0.0
        log_unseen = n * np.array([math.log1p(-pair.p.heads), math.log(pair.p.heads)])  # (1 − h)^n, h^n
    unseen, seen = np.exp(log_unseen), -np.expm1(log_unseen)
    hi, lo = two_product(float(n), probs)

    def means(extra):
        def g(c, k):
            r = ((c - hi[k]) - lo[k]) / (n * probs[k])
            return probs[k] * np.where(common[k], h_beyond_square(r), xlog1px_minus_x(r)) + extra(c, k)

        if _two_sided(pair):
            return [coin_mean(pair, n, lambda c: g(c, 0) + g(n - c, 1))]
        return list(expect(n, probs, g))

    return _Split(probs, common, unseen, seen, tails, means)


def _corrected_plugin_mean(pair: Pair, n: int, weight: float) -> float:
    """E[KL(p̂_n‖q)] − weight·(E[K̂_n] − 1)/n without the cancellation of its two O(1/n) parts.

    A common category (:func:`_split`) contributes E[p_k (h(r_k) − r_k²/2)]
    plus weight·(1 − p_k)^n/n, a rarer one E[p_k h(r_k)] − weight·P(seen)/n
    (both of the order of p_k); what is left over is ((1 − 2·weight)(L − 1) +
    Σ_rare p_k + (1 − Σ p_k))/(2n), L the common categories.  Near p = q,
    where the mean is far below 1/n, it keeps its relative precision.
    """
    sp = _split(pair, n)
    missing = 0.0 if _two_sided(pair) else 1.0 - math.fsum(sp.probs)
    rest = sp.expect(lambda c, k: 0.0)
    leftover = (1.0 - 2.0 * weight) * (sp.common.sum() - 1.0) + math.fsum(sp.probs[~sp.common]) + missing
    per_category = np.where(sp.common, weight * sp.unseen, -weight * sp.seen) / n
    return math.fsum([pair.kl_pq, *rest, leftover / (2 * n), sp.tails, *per_category])


def _jackknife_mean(pair: Pair, n: int) -> float:
    """E[jackknife] = KL(p‖q) + E[KL(p̂‖p)] − Σ_k E[(C_k/n)(A(C_k) − A(n))], its O(1/n) parts cancelled.

    With A(c) = 1/(2c) + B(c) (:func:`sim.distributions.jackknife_excess_beyond_half`),
    a common category (:func:`_split`) contributes E[p(h − r²/2) − (C/n)B(C)] +
    (1 − p)^n/(2n) + p·B(n), a rare one E[p h(r) − (C/n)(A(C) − A(n))]: near
    p = q, where the mean is O(1/n²), it keeps its relative precision.
    """
    sp = _split(pair, n)
    a_n = float(jackknife_excess(np.array([float(n)]))[0])
    b_n = float(jackknife_excess_beyond_half(np.array([float(n)]))[0])
    common = sp.common

    def extra(c, k):
        beyond = (c / n) * jackknife_excess_beyond_half(c)
        whole = (c / n) * (jackknife_excess(c) - a_n)
        return -np.where(common[k], beyond, whole)

    constants = np.where(common, sp.unseen / (2 * n) + sp.probs * b_n, 0.0)
    return math.fsum([pair.kl_pq, *sp.expect(extra), sp.tails, *constants])


@functools.lru_cache(maxsize=4096)
def corrected_plugin_moments(pair: Pair, n: int, weight: float) -> Moments:
    """Exact moments of KL(p̂_n‖q) − weight·(K̂_n − 1)/n (Miller–Madow for weight ½); nats.

    The mean is the plug-in's minus weight·(E[K̂_n] − 1)/n.  For a coin the
    sd and μ4 are sums over the heads (K̂ = 1 when every draw is alike,
    else 2); for other families the sd by pairwise sums where they fit
    :data:`PAIRWISE_BUDGET`, else nan (μ4 nan).
    """
    if n == 1 or pair.support.size == 1:  # K̂ = 1 surely: the plain plug-in
        return plugin_moments(pair, n)
    mean = _corrected_plugin_mean(pair, n, weight)
    if pair.family != "coin":
        q, k = pair.q.probs[pair.support], pair.q.k

        def term(c, j):  # the plug-in's term (add-α with α = 0), less the correction's share
            return smoothed_kl_terms(c, n, q[j], 0.0, k) - weight * (c > 0) / n

        return Moments(mean, pairwise_sd(n, pair.p.probs[pair.support], term), math.nan)
    if pair.p.heads in (0.0, 1.0):
        return Moments(mean, 0.0, 0.0)
    return _coin_moments(pair, n, mean, coin_plugin_values(pair, n, weight))


@functools.lru_cache(maxsize=4096)
def smoothed_moments(pair: Pair, n: int, smoothing, posterior: bool = False) -> Moments:
    """Exact moments of KL(f̃_n‖q), f̃ = (c + α)/(n + Kα) over the K categories of the alphabet; nats.

    The mean is Σ_k E[t_k(C_k)] with C_k ~ Binomial(n, p_k) and t_k the
    non-negative term of :func:`sim.distributions.smoothed_kl_terms` (C_k = 0
    surely off p's support).  The sd and μ4 are exact for a coin (sums over
    the heads) and at n = 1 (one observation: K' outcomes); elsewhere the sd
    by pairwise sums where they fit :data:`PAIRWISE_BUDGET` (μ4 nan), else nan.
    """
    k = pair.q.k
    alpha = smoothing.value(k, n)
    terms = SmoothedTerms(pair, n, alpha, posterior)
    probs = pair.p.probs[pair.support]
    unseen = terms.everywhere(0.0)
    if _two_sided(pair):
        mean = coin_mean(pair, n, terms.coin)
    else:
        mean = _smoothed_mean(pair, n, terms, probs, unseen)
    if n == 1:  # the value when category j is the one observed: every other count 0
        values = (math.fsum(unseen) - terms.constant) + (
            terms(np.ones(probs.size), np.arange(probs.size)) - unseen[pair.support]
        )
        dev = snap_rounding(values - mean, np.maximum(np.abs(values), abs(mean)))  # equal but for rounding: 0
        return Moments(mean, math.sqrt(math.fsum(probs * dev**2)), math.fsum(probs * dev**4))
    if pair.family != "coin":
        return Moments(mean, pairwise_sd(n, probs, terms), math.nan)
    if pair.p.heads in (0.0, 1.0):
        return Moments(mean, 0.0, 0.0)
    return _coin_moments(pair, n, mean, terms.coin)


def _smoothed_mean(pair: Pair, n: int, terms: SmoothedTerms, probs: np.ndarray, unseen: np.ndarray) -> float:
    """Σ_k E[t_k(C_k)] over the support, the categories off it (count 0) and the posterior's constant."""
    off = math.fsum(np.delete(unseen, pair.support)) - terms.constant
    sure = probs == 1.0  # C = n surely
    means = np.zeros(probs.size)
    means[sure] = terms(np.full(int(sure.sum()), float(n)), np.flatnonzero(sure))
    rest = np.flatnonzero(~sure)
    if rest.size == probs.size:
        means = expect(n, probs, terms)  # the support's own array: its sums are shared
    elif rest.size:
        means[rest] = expect(n, probs[rest], lambda c, i: terms(c, rest[i]))
    return math.fsum(means) + off


@functools.lru_cache(maxsize=4096)
def jackknife_moments(pair: Pair, n: int) -> Moments:
    """Exact moments of the jackknifed plug-in KL at n (the plug-in's at n = 1); nats.

    A sum of per-category functions of one count
    (:func:`sim.distributions.jackknife_kl_terms`) plus q's mass off p's
    support: its mean by Binomial sums, its sd over a coin's heads or by
    pairwise sums within their budget (μ4 for coins only).
    """
    if n == 1 or pair.support.size == 1:  # one observation, or one category: the plug-in
        return plugin_moments(pair, n)
    probs, q, k = pair.p.probs[pair.support], pair.q.probs[pair.support], pair.q.k
    outside = math.fsum(np.delete(pair.q.probs, pair.support))

    def term(c, j):
        return jackknife_kl_terms(c, n, q[j], k)

    mean = _jackknife_mean(pair, n)
    if pair.family == "coin":  # both faces possible (one is handled above)
        return _coin_moments(pair, n, mean, lambda c: term(c, 0) + term(n - c, 1) + outside)
    return Moments(mean, pairwise_sd(n, probs, term), math.nan)


@functools.lru_cache(maxsize=4096)
def two_sample_moments(pair: Pair, n: int, smoothing) -> Moments:
    """Exact moments of KL(f_n‖q̃_M) against q's add-α smoothed sample of M = ``pair.q_sample_size(n)``; nats.

    With q̃_k = (D_k + α)/A, A = M + Kα, and the two samples independent,
    E[Σ f log(f/q̃)] = Σ_k E[f_k log f_k] − Σ_k p_k E[log q̃_k], which is
    written as KL(p‖q) + E[KL(f‖p)] − Σ_k p_k E[log(q̃_k/q_k)]: the plug-in's
    bias (:func:`plugin_bias`, Binomial sums over C_k ~ Binomial(n, p_k)) and
    one Binomial sum over D_k ~ Binomial(M, q_k) per category of p's support.
    The sd and μ4 are exact for a coin while the double sum over both
    samples' heads fits :data:`PAIRWISE_BUDGET` lattice points, else nan.
    """
    m = pair.q_sample_size(n)
    k = pair.q.k
    alpha = smoothing.value(k, m)
    total = m + k * alpha
    probs, q = pair.p.probs[pair.support], pair.q.probs[pair.support]
    expected, err = two_product(total, q)

    def log_ratio(d, j):  # log(q̃/q), the residual d + α − Aq without A·q's rounding
        return _log_ratio((d + alpha - expected[j]) - err[j], expected[j], d + alpha)

    if _two_sided(pair):  # q's tails are M − D, D ~ Binomial(M, q's heads), and their residual −r
        hi, lo = two_product(total, pair.q.heads)
        tails = (total - hi) - lo  # A(1 − q_h): the 1 − q_h that KL(p‖q) uses, not q's rounded tails

        def both(d, _k):
            r = (d + alpha - hi) - lo
            return _log_ratio(r, hi + lo, d + alpha), _log_ratio(-r, tails, m - d + alpha)

        gaps = expect(m, np.array([pair.q.heads]), both)[:, 0]
    else:
        gaps = expect(m, q, log_ratio)
    mean = math.fsum([pair.kl_pq, plugin_bias(pair, n), *(-probs * gaps)])
    if pair.family != "coin":
        return Moments(mean, math.nan, math.nan)
    return _two_sample_coin_moments(pair, n, m, alpha, mean)


def _log_ratio(residual, expected, observed) -> np.ndarray:
    """log(observed/expected) from residual = observed − expected: log1p near 1, a difference of logs far from it."""
    x = residual / expected
    with np.errstate(divide="ignore", invalid="ignore"):
        far = np.log(observed) - np.log(expected)
    return np.where(np.abs(x) < 0.5, np.log1p(np.maximum(x, -0.5)), far)


def _two_sample_coin_moments(pair: Pair, n: int, m: int, alpha: float, mean: float) -> Moments:
    """sd and μ4 of a coin's two-sample KL by a double sum over both samples' heads (nan beyond budget)."""
    p, q = pair.p.heads, pair.q.heads
    if p in (0.0, 1.0) and q in (0.0, 1.0):
        return Moments(mean, 0.0, 0.0)
    _sd, lo, hi = _window(n, np.array([p]))
    _sd_q, lo_q, hi_q = _window(m, np.array([q]))
    heads = np.arange(lo[0], hi[0] + 1.0)
    q_heads = np.arange(lo_q[0], hi_q[0] + 1.0)
    if heads.size * q_heads.size > PAIRWISE_BUDGET:
        return Moments(mean, math.nan, math.nan)
    weights = stats.binom.pmf(heads, n, p)[:, None] * stats.binom.pmf(q_heads, m, q)[None, :]
    value = two_sample_coin_values(n, m, alpha, pair.q.k)(heads[:, None], q_heads[None, :])
    dev = snap_rounding(value - mean, np.maximum(np.abs(value), abs(mean)))
    var = math.fsum((weights * dev**2).ravel())
    return Moments(mean, math.sqrt(var), math.fsum((weights * dev**4).ravel()))


def two_sample_coin_values(n: int, m: int, alpha: float, k: int):
    """A coin's KL(f‖q̃) as a function of p's heads ``c`` among n and q's heads ``d`` among m (broadcast).

    Σ q̃ h(f/q̃ − 1) over heads and tails, each ratio's residual c·A − n(d + α)
    taken without the products' rounding; a third category (q's mass off the
    coin, if any) adds its q̃ whole.
    """
    total = m + k * alpha

    def side(c, d):
        q_tilde = (d + alpha) / total
        big, err = two_product(np.asarray(c, dtype=float), total)
        small, err2 = two_product(float(n), np.asarray(d + alpha, dtype=float))
        x = ((big - small) + (err - err2)) / small
        return q_tilde * xlog1px_minus_x(x)

    def value(c, d):
        return side(c, d) + side(n - c, m - d) + (k - 2) * alpha / total

    return value


#: Most lattice points (one window per category, one grid per pair) an exact pairwise variance evaluates.
PAIRWISE_BUDGET = 1 << 23
#: Most categories for pairwise sums (one numpy grid per pair: K(K − 1)/2 of them).
PAIRWISE_MAX_K = 64


def pairwise_sd(n: int, probs: np.ndarray, term) -> float:
    """sd of Σ_k term(C_k, k) for counts (C_k) ~ Multinomial(n, probs), by exact pairwise sums; nan beyond budget.

    Var = Σ_k Var t_k(C_k) + 2 Σ_{j<k} Cov(t_j(C_j), t_k(C_k)): each
    variance from the Binomial law of one count, each covariance from the
    trinomial law of two, every term centred on its own exact mean.  Counts
    run over each category's window (mean ± 12 sd, as in :func:`expect`;
    what lies outside weighs below 1e-30), so the cost is about
    Σ_j w_j + Σ_{j<k} w_j·w_k evaluations for windows of w points.
    """
    from scipy import special

    k = probs.size
    if k < 2:
        return 0.0
    _sd, lo, hi = _window(n, probs)
    width = hi - lo + 1
    if k > PAIRWISE_MAX_K or width.sum() + (width.sum() ** 2 - (width**2).sum()) / 2 > PAIRWISE_BUDGET:
        return math.nan
    counts = [np.arange(lo[j], hi[j] + 1.0) for j in range(k)]
    pmfs = [stats.binom.pmf(c, n, probs[j]) for j, c in enumerate(counts)]
    values = [term(c, np.full(c.size, j)) for j, c in enumerate(counts)]
    devs = [v - np.sum(w * v) for v, w in zip(values, pmfs, strict=True)]
    parts = [float(np.sum(w * d * d)) for w, d in zip(pmfs, devs, strict=True)]
    log_n = special.gammaln(n + 1.0)
    for i in range(k):
        a = counts[i][:, None]
        for j in range(i + 1, k):
            b = counts[j][None, :]
            rest = np.maximum(n - a - b, 0.0)
            log_p = log_n - special.gammaln(a + 1) - special.gammaln(b + 1) - special.gammaln(rest + 1)
            log_p = log_p + special.xlogy(a, probs[i]) + special.xlogy(b, probs[j])
            log_p = log_p + special.xlogy(rest, max(1.0 - probs[i] - probs[j], 0.0))
            joint = np.where(a + b <= n, np.exp(log_p), 0.0)
            parts.append(2.0 * float(np.sum(joint * devs[i][:, None] * devs[j][None, :])))
    return math.sqrt(max(math.fsum(parts), 0.0))


class SmoothedTerms:
    """The per-category terms of an add-α estimator at n: t(c, j) for support category j with
    count c (vectorised), their value at every category of the alphabet (``everywhere``), and
    the constant the value subtracts (the posterior mean's ψ(A + 1) − log A)."""

    def __init__(self, pair: Pair, n: int, alpha: float, posterior: bool = False):
        self.q_support, self.q, self.k = pair.q.probs[pair.support], pair.q.probs, pair.q.k
        self.n, self.alpha, self.posterior = n, alpha, posterior
        self.constant = float(digamma_excess(np.array([n + self.k * alpha]))[0]) if posterior else 0.0

    def _term(self, c, q) -> np.ndarray:
        t = smoothed_kl_terms(c, self.n, q, self.alpha, self.k)
        return t + posterior_kl_terms(c, self.n, self.alpha, self.k) if self.posterior else t

    def __call__(self, c, j) -> np.ndarray:
        return self._term(c, self.q_support[j])

    def everywhere(self, c) -> np.ndarray:
        return self._term(c, self.q)

    def coin(self, heads) -> np.ndarray:
        """A coin's value with ``heads`` heads among n."""
        return self(heads, 0) + self(self.n - heads, 1) - self.constant


def smoothed_sd_upper(pair: Pair, n: int, smoothing, posterior: bool = False) -> float:
    """A rigorous upper bound on sd KL(f̃_n‖q) (Efron–Stein with bounded differences).

    Replacing one of the n observations moves one count down and one up, so
    the value changes by at most Δ = 2·max_k max_c |t_k(c + 1) − t_k(c)|
    over the support; each t_k is convex in c, so its steps are largest at
    c = 0 or c = n − 1.  Then Var ≤ ½·n·Δ².
    """
    alpha = smoothing.value(pair.q.k, n)
    terms = SmoothedTerms(pair, n, alpha, posterior)
    j = np.arange(pair.support.size)
    steps = [
        np.abs(terms(np.full(j.size, c + 1.0), j) - terms(np.full(j.size, float(c)), j)) for c in (0, n - 1)
    ]
    delta = 2.0 * float(max(np.max(s) for s in steps))
    return delta * math.sqrt(n / 2.0) * (1.0 + BOUND_MARGIN)


def coin_plugin_values(pair: Pair, n: int, weight: float = 0.0):
    """A coin's plug-in KL(p̂_n‖q) − weight·(K̂_n − 1)/n as a function of the heads c (vectorised)."""
    p = pair.p.heads
    lh, lt = pair.log_ratio

    def value(c):
        f = c / n
        to_p = p * xlog1px_minus_x((f - p) / p) + (1.0 - p) * xlog1px_minus_x((p - f) / (1.0 - p))
        seen_both = (c > 0) & (c < n)
        return f * lh + (1.0 - f) * lt + to_p - weight * seen_both / n

    return value


# ---------------------------------------------------------------------------
# The variance of the categorical plug-in KL
# ---------------------------------------------------------------------------

#: Lattice points per standard deviation in the sums behind the plug-in variance.
VARIANCE_STRIDE_PER_SD = 4
#: Most lattice points the exact plug-in variance may evaluate; beyond, only its bound is given.
VARIANCE_BUDGET = 1 << 19
#: Relative margin added to the computed Efron–Stein bound for its own rounding.
BOUND_MARGIN = 1e-9
#: Lattice points of the variance's sums evaluated at once (about 30 arrays of them live,
#: all in the CPU's cache).
VARIANCE_CHUNK = 1 << 15


class PluginVariance(NamedTuple):
    """Var KL(p̂_n‖q) (nats²), exact or a rigorous upper bound, as ``exact`` says."""

    variance: float
    exact: bool

    @property
    def sd(self) -> float:
        """The standard deviation, or its upper bound when ``exact`` is False."""
        return math.sqrt(self.variance)


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a + b = s + err exactly (Knuth's TwoSum), elementwise."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


class _Mass:
    """Σ p over the support as an unevaluated sum hi + lo, for complements such as 1 − p_j − p_k.

    The complement of one or two probabilities is Σ p minus them, formed by
    TwoSum so that it keeps its relative precision however small it is (a
    category of 1 − 10⁻¹²), instead of 1 − p rounded.
    """

    def __init__(self, probs: np.ndarray):
        self.hi = math.fsum(probs)
        self.lo = math.fsum(np.append(probs, -self.hi))

    def without(self, *ps: np.ndarray) -> np.ndarray:
        """Σ p minus the given probabilities (elementwise), never below 0."""
        s, err = np.float64(self.hi), np.float64(self.lo)
        for p in ps:
            s, e = _two_sum(s, -np.asarray(p, dtype=float))
            err = err + e
        return np.maximum(s + err, 0.0)


@functools.cache
def _stirlerr_table() -> np.ndarray:
    """Stirling remainders of the integers 0…15 (0 for 0, which no caller reads)."""
    table = _stirlerr(np.arange(1.0, 16.0))
    return np.concatenate([[0.0], table])


def _stirlerr_counts(x: np.ndarray) -> np.ndarray:
    """:func:`sim.binomial._stirlerr` of integer-valued x ≥ 1: a table to 15, its series beyond."""
    big = np.maximum(x, 16.0)
    inv2 = 1.0 / (big * big)
    series = (
        1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0)))
    ) / big
    return np.where(x <= 15.0, _stirlerr_table()[np.minimum(x, 15.0).astype(np.intp)], series)


def _binomial_log_pmf(k: np.ndarray, trials: np.ndarray, p: np.ndarray, p_bar: np.ndarray) -> np.ndarray:
    """log P(B = k), B ~ Binomial(trials, p), elementwise for integer k and 0 < p < 1, p_bar = 1 − p.

    Loader's saddle-point form, as :func:`sim.binomial.log_pmf` (which takes one
    n and one p): Stirling remainders and the deviance written as
    n p h(k/(np) − 1) + n p̄ h(…), the deviation k − np of the smaller of p and
    p̄ formed exactly; relative precision ~1e-15 at any n up to 2⁵³.
    """
    k, trials, p, p_bar = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (k, trials, p, p_bar)))
    rest = trials - k
    inner = (k > 0) & (rest > 0)
    k_in, rest_in = np.where(inner, k, 1.0), np.where(inner, rest, 1.0)  # edges are set below
    n_in = k_in + rest_in
    heads_smaller = p <= p_bar
    hi, lo = two_product(n_in, np.where(heads_smaller, p, p_bar))
    dev = (np.where(heads_smaller, k_in, rest_in) - hi) - lo
    dev_h = np.where(heads_smaller, dev, -dev)
    mean_h, mean_t = n_in * p, n_in * p_bar
    out = (
        _stirlerr_counts(n_in)
        - _stirlerr_counts(k_in)
        - _stirlerr_counts(rest_in)
        - mean_h * xlog1px_minus_x(dev_h / mean_h)
        - mean_t * xlog1px_minus_x(-dev_h / mean_t)
        - _HALF_LOG_2PI
        + 0.5 * np.log(n_in / (k_in * rest_in))
    )
    edge = np.flatnonzero(~inner)
    if edge.size:
        e = np.unravel_index(edge, k.shape)
        out[e] = np.where(k[e] == 0, trials[e] * np.log(p_bar[e]), trials[e] * np.log(p[e]))
    return out


def _lattice_shape(
    trials: np.ndarray, p: np.ndarray, p_bar: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's window (see the module notes), stride and number of lattice points."""
    mean = trials * p
    sd = np.sqrt(trials * p * p_bar)
    half = np.ceil(WINDOW_SD * sd + WINDOW_PAD)
    lo = np.maximum(0.0, np.floor(mean - half))
    hi = np.minimum(trials, np.ceil(mean + half))
    stride = np.maximum(1.0, np.floor(sd / VARIANCE_STRIDE_PER_SD))
    return lo, stride, (np.floor((hi - lo) / stride) + 1).astype(np.int64)


def _lattice(
    trials: np.ndarray, p: np.ndarray, p_bar: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice points of the rows' Binomial(trials_i, p_i): (row, count, weight).

    Weights are pmf × stride, normalised to sum to 1 in each row, so that a
    row's weighted sum is an expectation (the strided sum's error is of order
    exp(−2π²·4²) ≈ 1e-137 of it, by the Poisson-summation argument of the
    module notes, and a stride above 1 needs sd ≥ 8, where the mass at 0 or at
    n that a window may reach is below e⁻⁶⁴).
    """
    lo, stride, counts = _lattice_shape(trials, p, p_bar)
    row = np.repeat(np.arange(trials.size), counts)
    first = np.cumsum(counts) - counts
    c = lo[row] + (np.arange(counts.sum()) - np.repeat(first, counts)) * stride[row]
    w = np.exp(_binomial_log_pmf(c, trials[row], p[row], p_bar[row])) * stride[row]
    return row, c, w / np.bincount(row, weights=w, minlength=trials.size)[row]


def _chunks(trials, p, p_bar) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The rows' lattices (see :func:`_lattice`) in chunks of at most ``VARIANCE_CHUNK`` points.

    Yields ``(rows, row, c, w)``: the chunk's row indices, then for each point
    its position in ``rows``, its count and its weight.
    """
    trials, p, p_bar = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (trials, p, p_bar)))
    ends = np.cumsum(_lattice_shape(trials, p, p_bar)[2])
    start = 0
    while start < trials.size:
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + VARIANCE_CHUNK, side="right")))
        rows = np.arange(start, stop)
        yield (rows, *_lattice(trials[rows], p[rows], p_bar[rows]))
        start = stop


def _row_expectations(trials, p, p_bar, g: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """E[g(B_i, i)] for B_i ~ Binomial(trials_i, p_i), for every row i.

    ``g(c, rows)`` takes counts and the row of each.
    """
    out = np.zeros(np.broadcast(trials, p, p_bar).size)
    for rows, row, c, w in _chunks(trials, p, p_bar):
        out[rows] = np.bincount(row, weights=w * g(c, rows[row]), minlength=rows.size)
    return out


def _llr_deviations(pair: Pair) -> np.ndarray:
    """log(p_k/q_k) − KL(p‖q) on the support, rounding snapped to 0 as in ``Pair.llr_sigma``."""
    ell, kl = pair.log_ratio, pair.kl_pq
    return snap_rounding(ell - kl, np.maximum(np.abs(ell), abs(kl)))


def _probability_types(pair: Pair) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """p on the support, its distinct values, each category's value index and each value's multiplicity."""
    probs = pair.p.probs[pair.support]
    values, inverse, multiplicity = np.unique(probs, return_inverse=True, return_counts=True)
    return probs, values, inverse, multiplicity


def _group_fsum(x: np.ndarray, inverse: np.ndarray, groups: int) -> np.ndarray:
    """Σ x over the members of each group, each an exactly rounded sum."""
    order = np.argsort(inverse, kind="stable")
    ends = np.cumsum(np.bincount(inverse, minlength=groups))[:-1]
    return np.array([math.fsum(part) for part in np.split(x[order], ends)])


def _pair_cost(n: int, values: np.ndarray, multiplicity: np.ndarray) -> float:
    """Lattice points of the exact variance's double sums (marginal windows for the inner ones)."""
    points = _lattice_shape(np.full(values.size, float(n)), values, 1.0 - values)[2].astype(float)
    pairs = 0.5 * (points.sum() ** 2 - np.sum(points**2))
    return float(pairs + np.sum(points[multiplicity > 1] ** 2))


@functools.lru_cache(maxsize=4096)
def _exact_plugin_variance(pair: Pair, n: int) -> float | None:
    """Var KL(p̂_n‖q) exactly (nats²), or None when its double sums exceed ``VARIANCE_BUDGET``.

    With ψ_k(c) = p_k h(c/(n p_k) − 1) and ℓ_k = log(p_k/q_k), the estimator is
    KL(p̂‖q) = Σ_k (C_k/n) ℓ_k + Σ_k ψ_k(C_k) + Σ_k (q_k − p_k) (the llr, plus
    KL(p̂‖p), plus a constant).  Hence, exactly,

        Var = σ²/n + (2/n) Σ_k γ_k (ℓ_k − KL)/(1 − p_k) + Var Σ_k ψ_k(C_k),

    with σ² the variance of ℓ under p and γ_k = Cov(C_k, ψ_k(C_k)) (for
    j ≠ k, E[C_j | C_k] = (n − C_k) p_j/(1 − p_k)).  The last term depends on
    p only, so categories of equal p_k (all of them for a uniform p) share
    their sums: Σ_t m_t Var ψ_t + Σ m_s m_t Cov(ψ_s, ψ_t) over ordered pairs
    of distinct categories of types s, t with multiplicities m.  Each
    covariance is Σ_a P(C_s = a)(ψ_s(a) − μ_s)(E[ψ_t(B_a)] − μ_t), B_a ~
    Binomial(n − a, p_t/(1 − p_s)) being C_t given C_s = a; the ψ are first
    tilted by a common λ(c − n p) (which leaves Σ ψ unchanged, Σ C being n)
    chosen to remove their linear part, so the m(m − 1) covariances of a
    large vocabulary do not cancel its m variances.  Every sum runs over the
    windows of the module notes, on a stride of sd/4 where sd ≥ 8.
    """
    if pair.support.size == 1:
        return 0.0  # every observation in one category: KL(p̂‖q) = −log q there
    if n == 1:
        return _cross_entropy_terms(pair)[1]  # KL(p̂_1‖q) = −log q(X_1)
    probs, values, inverse, multiplicity = _probability_types(pair)
    if _pair_cost(n, values, multiplicity) > VARIANCE_BUDGET:
        return None
    mass = _Mass(probs)
    rest = mass.without(values)
    nf = float(n)
    terms = _PsiTerms.of(values, nf)
    row, c, w = _lattice(np.full(values.size, nf), values, rest)
    gamma = _count_covariances(terms, row, c, w)  # Cov(C_t, ψ_t(C_t))
    tilt = math.fsum(multiplicity * gamma) / math.fsum(multiplicity * nf * values * rest)
    variance_psi = _psi_variance(terms._replace(tilt=tilt), row, c, w, multiplicity, mass)
    cross = _cross_term(pair, probs, inverse, gamma, rest, nf)
    return max(0.0, math.fsum([pair.llr_sigma**2 / nf, cross, variance_psi]))


class _PsiTerms(NamedTuple):
    """The terms ψ_t(c) = p_t h(c/(n p_t) − 1) of KL(p̂‖p) for each type t (distinct p_t).

    ``values`` are the p_t, ``nf`` is n, ``hi + lo`` = n p_t exactly, and
    ``tilt`` the λ of :meth:`tilted`.
    """

    values: np.ndarray
    nf: float
    hi: np.ndarray
    lo: np.ndarray
    tilt: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray, nf: float) -> _PsiTerms:
        """The terms of the types ``values`` at sample size ``nf``, untilted."""
        hi, lo = two_product(nf, values)
        return cls(values, nf, hi, lo)

    def deviation(self, c: np.ndarray, t: np.ndarray) -> np.ndarray:
        """c − n p_t, exactly."""
        return (c - self.hi[t]) - self.lo[t]

    def psi(self, c: np.ndarray, t: np.ndarray) -> np.ndarray:
        """ψ_t(c), the category's term of KL(p̂‖p)."""
        return self.values[t] * xlog1px_minus_x(self.deviation(c, t) / (self.nf * self.values[t]))

    def tilted(self, c: np.ndarray, t: np.ndarray) -> np.ndarray:
        """ψ_t(c) − λ(c − n p_t): the same sum over the categories, its linear part removed."""
        return self.psi(c, t) - self.tilt * self.deviation(c, t)


def _count_covariances(terms: _PsiTerms, row: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """γ_t = Cov(C_t, ψ_t(C_t)) for each type t, on its lattice (``row`` the type of each point)."""
    types = terms.values.size
    d, f = terms.deviation(c, row), terms.psi(c, row)
    d -= np.bincount(row, weights=w * d, minlength=types)[row]
    return np.bincount(row, weights=w * d * f, minlength=types)


def _psi_variance(
    terms: _PsiTerms, row: np.ndarray, c: np.ndarray, w: np.ndarray, multiplicity: np.ndarray, mass: _Mass
) -> float:
    """Var Σ_k ψ_k(C_k) = Σ_t m_t Var ψ_t + Σ m_s m_t Cov(ψ_s, ψ_t), with the tilted ψ."""
    types = terms.values.size
    f = terms.tilted(c, row)
    mu = np.bincount(row, weights=w * f, minlength=types)
    f -= mu[row]
    var = np.bincount(row, weights=w * f * f, minlength=types)

    # Covariances of two categories, of different types s < t or of one type twice.
    s_idx, t_idx = np.triu_indices(types, k=1)
    same = np.flatnonzero(multiplicity > 1)
    s_idx, t_idx = np.concatenate([s_idx, same]), np.concatenate([t_idx, same])
    weight = np.where(
        s_idx == t_idx,
        multiplicity[s_idx] * (multiplicity[s_idx] - 1.0),
        2.0 * multiplicity[s_idx] * multiplicity[t_idx],
    )
    covariance = np.zeros(s_idx.size)
    if s_idx.size:
        others = mass.without(terms.values[s_idx], terms.values[t_idx])  # 1 − p_s − p_t
        covariance = _pair_covariances(terms, _Centred(row, c, w, f, mu), s_idx, t_idx, others)
    return math.fsum(np.concatenate([multiplicity * var, weight * covariance]))


class _Centred(NamedTuple):
    """Every type's lattice (type, count, weight of each point), its tilted ψ less its mean μ there, and μ."""

    row: np.ndarray
    c: np.ndarray
    w: np.ndarray
    f: np.ndarray
    mu: np.ndarray


def _pair_covariances(
    terms: _PsiTerms, centred: _Centred, s_idx: np.ndarray, t_idx: np.ndarray, others: np.ndarray
) -> np.ndarray:
    """Cov(ψ_s(C_s), ψ_t(C_t)) for each pair of types (s, t), ``others`` = 1 − p_s − p_t.

    Σ_a P(C_s = a)(ψ_s(a) − μ_s)(E[ψ_t(C_t) | C_s = a] − μ_t) over C_s's lattice.
    """
    row, c, w, f, mu = centred
    counts = np.bincount(row, minlength=terms.values.size)
    first = np.cumsum(counts) - counts
    per_pair = counts[s_idx]
    pair_of = np.repeat(np.arange(s_idx.size), per_pair)
    start = np.cumsum(per_pair) - per_pair
    at = first[s_idx][pair_of] + np.arange(per_pair.sum()) - np.repeat(start, per_pair)
    inner = _conditional_means(terms, mu, terms.nf - c[at], t_idx[pair_of], others[pair_of])
    return np.bincount(pair_of, weights=w[at] * f[at] * inner, minlength=s_idx.size)


def _conditional_means(
    terms: _PsiTerms, mu: np.ndarray, remaining: np.ndarray, t_of: np.ndarray, others: np.ndarray
) -> np.ndarray:
    """E[ψ_t(C_t) | C_s = a] − μ_t (tilted ψ) at each point, ``remaining`` = n − a.

    Given C_s = a, C_t ~ Binomial(n − a, p_t/(p_t + o)), o = ``others``;
    where o = 0 (p_s + p_t = 1), C_t = n − a.
    """
    inner = np.empty(remaining.size)
    fixed = others == 0.0  # p_s + p_t = 1: C_t = n − C_s
    inner[fixed] = terms.tilted(remaining[fixed], t_of[fixed]) - mu[t_of[fixed]]
    free = np.flatnonzero(~fixed)
    if free.size:
        o, t_free = others[free], t_of[free]
        pt = terms.values[t_free]
        conditional = _row_expectations(
            remaining[free], pt / (pt + o), o / (pt + o), lambda b, r: terms.tilted(b, t_free[r])
        )
        inner[free] = conditional - mu[t_free]
    return inner


def _cross_term(
    pair: Pair, probs: np.ndarray, inverse: np.ndarray, gamma: np.ndarray, rest: np.ndarray, nf: float
) -> float:
    """(2/n) Σ_k γ_k (ℓ_k − KL)/(1 − p_k): the covariance of the llr with Σ ψ, summed by type."""
    deviations = _llr_deviations(pair)
    for k in np.flatnonzero(probs > 0.5):  # ℓ_k − KL = Σ_j p_j (ℓ_k − ℓ_j), divided below by 1 − p_k
        deviations[k] = math.fsum(probs * (pair.log_ratio[k] - pair.log_ratio))  # without KL's rounding
    return 2.0 / nf * math.fsum(gamma * _group_fsum(deviations, inverse, gamma.size) / rest)


#: Counts up to this take the count-only part of the Efron–Stein step from a table.
TABLE_COUNTS = 1 << 16


def _count_step(r: np.ndarray) -> np.ndarray:
    """r log(1 + 1/r) − 1 written as r h(1/r) − log1p(1/r) (−1 at r = 0), for integer-valued r ≥ 0."""
    inv = 1.0 / np.maximum(r, 1.0)
    return np.where(r >= 1.0, r * xlog1px_minus_x(inv) - np.log1p(inv), -1.0)


def _step_moments(trials: float, values: np.ndarray, rest: np.ndarray, step) -> tuple[np.ndarray, np.ndarray]:
    """Each type's mean of ``step(R, t)`` over R ~ Binomial(trials, p_t), and its spread about it.

    Rows of stride 1 (sd below ``2 VARIANCE_STRIDE_PER_SD``) take their
    weights from the pmf ratio recurrence of :func:`expect`, up to a constant
    that the normalisation removes (one logarithm a point instead of Loader's
    form); the others take :func:`_lattice`'s.  Both are relative to 1e-13 or
    better, far inside ``BOUND_MARGIN``.
    """
    mean_step, spread = np.zeros(values.size), np.zeros(values.size)
    lo, stride, counts = _lattice_shape(np.full(values.size, trials), values, rest)
    unit = (stride == 1.0) & (rest > 0.0)
    rows_at = np.flatnonzero(unit)
    for group, width in _narrow_groups(counts[rows_at]):
        rows = rows_at[group]
        for part in np.array_split(rows, -(-rows.size * width // SLICE_POINTS)):
            r, w = _recurrence_weights(trials, values[part], rest[part], lo[part], counts[part], width)
            e = step(r, np.broadcast_to(part[:, None], r.shape))
            mean_step[part] = m = (w * e).sum(axis=1)
            spread[part] = (w * (e - m[:, None]) ** 2).sum(axis=1)
    others = np.flatnonzero(~unit)
    for rows, row, r, w in _chunks(np.full(others.size, trials), values[others], rest[others]):
        t = others[rows]
        e = step(r, t[row])
        mean_step[t] = m = np.bincount(row, weights=w * e, minlength=rows.size)
        spread[t] = np.bincount(row, weights=w * (e - m[row]) ** 2, minlength=rows.size)
    return mean_step, spread


def _recurrence_weights(trials, p, p_bar, lo, counts, width) -> tuple[np.ndarray, np.ndarray]:
    """Counts and normalised Binomial(trials, p) weights of unit-stride windows, one row each.

    Rows are padded to ``width`` points; padding repeats the row's last count
    with weight 0.
    """
    c = lo[:, None] + np.arange(width)[None, :]
    last = (lo + counts - 1)[:, None]
    valid = c <= last
    c = np.minimum(c, last)
    with np.errstate(divide="ignore"):  # trials − c = 0 only in padding, masked below
        ratio = np.log((trials - c[:, :-1]) / (c[:, :-1] + 1.0)) + (np.log(p) - np.log(p_bar))[:, None]
    log_w = np.zeros(c.shape)
    np.cumsum(np.where(valid[:, 1:], ratio, 0.0), axis=1, out=log_w[:, 1:])
    w = np.where(valid, np.exp(log_w - log_w.max(axis=1, keepdims=True)), 0.0)
    return c, w / w.sum(axis=1, keepdims=True)


def _efron_stein_bound(pair: Pair, n: int) -> float:
    """An upper bound on Var KL(p̂_n‖q) from one-dimensional Binomial sums (see :func:`plugin_variance`)."""
    probs, values, inverse, multiplicity = _probability_types(pair)
    rest = _Mass(probs).without(values)
    nf = float(n)
    hi, lo = two_product(nf, values)

    def step(r, t):  # n·(ψ_t(r + 1) − ψ_t(r)) = log((r + 1)/(n p_t)) + r log(1 + 1/r) − 1
        x = ((r + 1.0 - hi[t]) - lo[t]) / (nf * values[t])
        top = float(r.max(initial=0.0))
        if top <= TABLE_COUNTS:  # the part that depends on r alone, once per count
            return np.log1p(x) + _count_step(np.arange(top + 1.0))[r.astype(np.intp)]
        return np.log1p(x) + _count_step(r)

    mean_step, spread = _step_moments(nf - 1.0, values, rest, step)
    centre = math.fsum(multiplicity * values * mean_step)
    spread += (mean_step - centre) ** 2  # E(e − centre)², a sum of two non-negative terms
    deviations = np.bincount(inverse, weights=_llr_deviations(pair), minlength=values.size)
    total = math.fsum(
        [
            pair.llr_sigma**2,
            2.0 * math.fsum(values * (mean_step - centre) * deviations),
            math.fsum(values * multiplicity * spread),
        ]
    )
    return max(0.0, total / nf * (1.0 + BOUND_MARGIN))


@functools.lru_cache(maxsize=4096)
def plugin_variance(pair: Pair, n: int) -> PluginVariance:
    """Var KL(p̂_n‖q): exact where affordable, else a rigorous upper bound (nats²).

    Parameters
    ----------
    pair : Pair
        The case; any number of categories (a coin takes the law of its heads).
    n : int
        The sample size, 1 ≤ n ≤ 2⁵³.

    Returns
    -------
    PluginVariance
        ``(variance, exact)``; ``exact`` is False when ``variance`` is the bound.

    Notes
    -----
    The exact variance splits KL(p̂‖q) into the llr and KL(p̂‖p), whose terms
    are functions of single counts, and sums over their Binomial laws (see
    :func:`_exact_plugin_variance`).  When those double sums would take more
    than ``VARIANCE_BUDGET`` points (many distinct probabilities, as for a
    Zipf law), the bound below is returned.

    The bound is Efron–Stein's inequality for the n i.i.d. observations,
    Var F ≤ ½ Σ_i E[(F − F⁽ⁱ⁾)²], F⁽ⁱ⁾ with X_i replaced by an independent
    copy.  Moving one observation from category a to b changes KL(p̂‖q) by
    D_a − D_b, with D_k = g_k(R_k + 1) − g_k(R_k), g_k the k-th term, R ~
    Multinomial(n − 1, p) the other counts, so Var ≤ n E[Var_{a∼p} D_a] ≤
    n (Σ_k p_k E D_k² − (Σ_k p_k E D_k)²) by Jensen, and nD_k = ℓ_k + e_k(R_k)
    with e_k(r) = log((r + 1)/(n p_k)) + r log(1 + 1/r) − 1: one Binomial(n −
    1, p_k) sum per distinct p_k, what the exact mean costs.  It is exact at
    n = 1 and for the linear part (the llr), so it is tight at large n; where
    KL(p̂‖p) dominates it is about twice the variance (measured against the
    exact values of the tests: below 2.3 times, sd below 1.52 times, except
    4.5 times at n = 2 for p ≈ (1, ε, ε)).  The computed value carries a
    relative margin ``BOUND_MARGIN`` for rounding.  (Splitting each term into
    monotone parts and using the negative association of multinomial counts
    also bounds the variance, but measured up to 3·10⁴ times the variance
    where counts are sparse, and tighter than this one only near p = q, by
    1.88 against 2.)
    """
    if pair.family == "coin":
        return PluginVariance(coin_plugin_moments(pair, n).sd ** 2, True)
    var = _exact_plugin_variance(pair, n)
    if var is not None:
        return PluginVariance(var, True)
    return PluginVariance(_efron_stein_bound(pair, n), False)


def plugin_sd_upper(pair: Pair, n: int) -> tuple[float, bool]:
    """sd of KL(p̂_n‖q) if affordable, else a rigorous upper bound (nats), and whether it is exact."""
    v = plugin_variance(pair, n)
    return v.sd, v.exact


def plugin_mu4_upper(pair: Pair, n: int) -> float:
    """The fourth central moment of KL(p̂_n‖q) where known exactly, else a rigorous upper bound.

    The estimator lies in [0, B] with B = max_k −log q_k over p's support
    (Σ f log(f/q) ≤ Σ f log(1/q)), so |KL(p̂‖q) − μ| ≤ max(μ, B − μ) and
    μ4 ≤ max(μ, B − μ)²·σ², with σ² the variance or its bound.
    """
    m = plugin_moments(pair, n)
    if not math.isnan(m.mu4):
        return m.mu4
    top = float(np.max(-pair.q.log_probs[pair.support]))
    return max(m.mean, top - m.mean) ** 2 * plugin_variance(pair, n).variance


def p_wrong_moments(pair: Pair, n: int) -> Moments:
    """The indicator 1{llr_n ≤ 0}: exact for coins (a Binomial tail), unknown otherwise."""
    if pair.family != "coin":
        return Moments(math.nan, math.nan, math.nan)
    w = coin_p_wrong(pair.p.heads, pair.q.heads, n)[0]
    var = w * (1.0 - w)
    return Moments(w, math.sqrt(var), var * (1.0 - 3.0 * var))


class Summand(NamedTuple):
    """Exact moments of one summand of a mean: its mean, central moments 2 to 4, and the values' own mean."""

    mean: float
    var: float
    mu3: float
    mu4: float
    centre: float


def summand(values: np.ndarray, weights: np.ndarray, mean: float) -> Summand:
    """The moments of one summand taking ``values`` with probabilities ``weights``.

    ``mean`` is the exact mean (an analytic quantity of the pair); the
    deviations are centred at the mean of the values actually summed
    (``centre``), which can differ from it by rounding (a Zipf law's logs and
    its probabilities are each correctly rounded, not each other's exact
    image): the sd of a constant estimator is then 0, not that rounding.
    """
    centre = math.fsum(weights * values)
    dev = snap_rounding(values - centre, np.maximum(np.abs(values), abs(centre)))
    return Summand(
        mean, math.fsum(weights * dev**2), math.fsum(weights * dev**3), math.fsum(weights * dev**4), centre
    )


def per_sample(values: np.ndarray, weights: np.ndarray, mean: float) -> tuple[float, float, float]:
    """Mean, variance and fourth central moment of one summand (see :func:`summand`)."""
    s = summand(values, weights, mean)
    return s.mean, s.var, s.mu4


def mean_of(s: Summand, n: int) -> Moments:
    """Exact moments of the mean of ``n`` i.i.d. copies of a summand."""
    return Moments(s.mean, math.sqrt(s.var / n), (s.mu4 + 3 * (n - 1) * s.var**2) / n**3)


def _cross_entropy_terms(pair: Pair) -> tuple[float, float, float]:
    """Per-sample moments of −log q(X): KL(p̂_1‖q) = −log q(X_1)."""
    return per_sample(-pair.q.log_probs[pair.support], pair.p.probs[pair.support], pair.cross_entropy)


@functools.lru_cache(maxsize=4096)
def plugin_moments(pair: Pair, n: int) -> Moments:
    """Exact moments of the plug-in KL(p̂_n‖q) at ``n``; nan where unknown (cached)."""
    if pair.family == "coin":
        return coin_plugin_moments(pair, n)
    mean = pair.kl_pq + plugin_bias(pair, n)
    if n == 1 or pair.support.size == 1:  # KL(p̂_1‖q) = −log q(X_1): i.i.d. moments
        _, var, mu4 = _cross_entropy_terms(pair)
        return Moments(mean, math.sqrt(var), mu4)
    var = _exact_plugin_variance(pair, n)  # None: too costly, and a bound is no exact sd
    return Moments(mean, math.nan if var is None else math.sqrt(var), math.nan)


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
