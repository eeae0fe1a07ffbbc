"""Distributions over K categories and their exact information quantities.

A :class:`Distribution` is a validated probability vector together with its
logarithms, computed accurately for each family (``log1p`` for the tails of a
coin, ``logsumexp`` normalisation for Zipf).  A :class:`Pair` is a case's
``(p, q)`` and provides every analytic quantity the simulation is checked
against: KL(p‖q), KL(q‖p), H(p), H(p, q) and the per-sample standard
deviations of the three sample means.

All quantities are returned in nats; :func:`to_units` converts to bits.

Accuracy
--------
KL divergence is evaluated in the form

    KL(p‖q) = Σ_k q_k · h((p_k − q_k) / q_k),   h(r) = (1 + r) log(1 + r) − r,

which equals Σ p log(p/q) because Σ p = Σ q.  Every term is non-negative, so
the sum never goes negative and keeps full relative precision when p ≈ q:
``h`` is evaluated by its Taylor series for small ``|r|`` and the differences
``p_k − q_k`` are exact by Sterbenz's lemma when p_k and q_k are within a
factor of two.  For a coin the tails' difference is taken as minus the heads'
difference, which is exact, instead of ``(1 − p) − (1 − q)``, which is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, Literal

import numpy as np

Family = Literal["coin", "categorical", "zipf", "uniform", "dirichlet"]

LN2 = math.log(2.0)
#: A computed sum within TIE of its size from 0 (or from an integer boundary) is a tie:
#: 64 ulps, more than the rounding of the sums it judges (the doubles 2/3 and 1/3
#: stand for coins whose llr is exactly 0 at even n).
TIE = 64 * float(np.finfo(float).eps)

# Coefficients of h(r) / r**2 = sum_j (-1)**j r**j / ((j + 1) (j + 2)), used for
# |r| < _SERIES_RADIUS, where 14 terms reach double precision.  Beyond it the
# closed form loses at most ~2 eps/|r| ≈ 1e-14 relative to cancellation.
_SERIES_RADIUS = 0.03
_SERIES = np.array([(-1.0) ** j / ((j + 1) * (j + 2)) for j in range(14)])


def two_product(a, b):
    """a·b = hi + lo exactly, elementwise (Dekker's product with Veltkamp's split).

    Only + and × are used, so the result is the same on every CPU; ``lo`` is
    the rounding error of ``hi`` = a·b.  Valid while |a·b| stays well below
    the overflow threshold divided by 2^27.
    """
    hi = np.multiply(a, b)
    split = 134217729.0  # 2^27 + 1
    ah = np.multiply(a, split)
    ah = ah - (ah - a)
    al = a - ah
    bh = np.multiply(b, split)
    bh = bh - (bh - b)
    bl = b - bh
    lo = ((ah * bh - hi) + ah * bl + al * bh) + al * bl
    return hi, lo


def xlog1px_minus_x(r: np.ndarray) -> np.ndarray:
    """Evaluate ``h(r) = (1 + r) log(1 + r) − r`` accurately for ``r ≥ −1``.

    ``h`` is the per-category term of a KL divergence written relative to the
    second distribution: KL(a‖b) = Σ b_k h(a_k / b_k − 1).  It is non-negative,
    ``h(0) = 0`` and ``h(−1) = 1`` (an empty category).

    Parameters
    ----------
    r : array_like
        Relative differences, each ``≥ −1``.

    Returns
    -------
    numpy.ndarray
        ``h(r)``, non-negative, with full relative precision near ``r = 0``.
    """
    r = np.asarray(r, dtype=float)
    size = np.abs(r)
    top = float(size.max(initial=0.0))
    if top < _SERIES_RADIUS:  # the common case at large n: no masking
        return _series(r, top)
    # The closed form everywhere, then the series where it would cancel.  An
    # empty category (r = −1, t = 0) gives exactly 1 without log1p(−1), which
    # is numpy's slow path (and ``where=`` would be slower still).
    t = 1.0 + r
    out = t * np.log1p(np.where(t > 0.0, r, 0.0))
    out -= r
    np.maximum(out, 0.0, out=out)
    small = np.flatnonzero(size < _SERIES_RADIUS)
    if small.size:
        rs = r.ravel()[small]
        out.flat[small] = _series(rs, float(np.max(np.abs(rs))))
    return out


def h_beyond_square(r: np.ndarray) -> np.ndarray:
    """h(r) − r²/2 (see :func:`xlog1px_minus_x`) for r ≥ −1, to full relative precision near 0 (≈ −r³/6).

    The part of KL's per-category term that a χ²/2 approximation leaves out:
    its Taylor series from r³ on where |r| is small, the difference of the
    closed forms elsewhere (there the two terms are of different orders).
    """
    r = np.asarray(r, dtype=float)
    out = xlog1px_minus_x(r) - 0.5 * r * r
    small = np.abs(r) < _CUBIC_RADIUS  # the difference would lose up to 3/|r| ≈ 12 digits' worth here
    if small.any():
        rs = r[small]
        acc = np.zeros_like(rs)
        for c in _CUBIC_SERIES[::-1]:
            acc *= rs
            acc += c
        out[small] = acc * rs * rs * rs
    return out


#: Below this |r|, h(r) − r²/2 is summed as its series Σ_{j≥3} (−r)^j/(j(j − 1))…
_CUBIC_RADIUS = 0.25
#: …to r^40: the first term left out is below 1e-20 of the first (0.25³⁸).
_CUBIC_SERIES = np.array([(-1.0) ** j / (j * (j - 1)) for j in range(3, 41)])


def _terms(top: float) -> int:
    """Terms of a series in x with |x| ≤ top < 1 that reach double precision."""
    return _SERIES.size if top <= 0 else int(min(_SERIES.size, max(1, math.ceil(-37.0 / math.log(top)))))


def _horner(x: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """x² Σ_j coefficients[j] x^j, by Horner's scheme."""
    acc = np.zeros_like(x)
    for c in coefficients[::-1]:
        acc *= x
        acc += c
    return acc * x * x


def _series(r: np.ndarray, top: float) -> np.ndarray:
    """h(r) by its Taylor series, for |r| ≤ top < _SERIES_RADIUS."""
    return _horner(r, _SERIES[: _terms(top)])


def smoothed_kl_terms(c, n: int, q, alpha: float, k: int) -> np.ndarray:
    """q·h(f̃/q − 1) per category, f̃ = (c + α)/(n + kα) (see :func:`xlog1px_minus_x`).

    Summed over all ``k`` categories of the alphabet they are KL(f̃‖q), each
    term ≥ 0.  The relative difference is formed as
    ((c − nq) + α(1 − kq)) / ((n + kα) q), each difference with the rounding
    of its product put back (:func:`two_product`), so that a KL far below 1
    keeps its relative precision.  ``c``, ``q`` broadcast against each other.
    """
    q = np.asarray(q, dtype=float)
    hi, lo = two_product(float(n), q)
    counts_off = (np.asarray(c, dtype=float) - hi) - lo  # c − nq
    khi, klo = two_product(float(k), q)
    alpha_off = alpha * ((1.0 - khi) - klo)  # α(1 − kq)
    return q * xlog1px_minus_x((counts_off + alpha_off) / ((n + k * alpha) * q))


#: From here on ψ(x + 1) − log x is its asymptotic series (its next term below 1e-16 of it;
#: at 10 it would be 9e-16).
_DIGAMMA_SERIES_FROM = 12.0
#: The series' coefficients of x^(−2j): ψ(x + 1) − log x = 1/(2x) − Σ_j B_2j/(2j x^2j).
_DIGAMMA_SERIES = (-1 / 12, 1 / 120, -1 / 252, 1 / 240, -1 / 132, 691 / 32760, -1 / 12)


def digamma_excess(x: np.ndarray) -> np.ndarray:
    """ψ(x + 1) − log x for x > 0, elementwise, to full relative precision (≈ 1/(2x) for large x).

    For large x the two nearly cancel; there the asymptotic series is summed
    instead (its truncation below 1e-16 relative from x = 12); from x = 4 up
    to there the recurrence ψ(x + 1) = ψ(x + m + 1) − Σ_{j≤m} 1/(x + j)
    carries x to the series, its steps written as positive terms
    −log(1 − u) − u, u = 1/(x + j) (scipy's digamma less log x lost up to
    8e-15 there), and below 4 scipy's digamma, whose cancellation costs at
    most a factor 2x·log x < 12 of rounding.
    """
    from scipy import special  # scipy.special only: light, unlike scipy.stats

    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    large = x >= _DIGAMMA_SERIES_FROM
    out[large] = _digamma_series(x[large])
    tiny = x < _DIGAMMA_RECURRENCE_FROM  # ψ(x + 1) ≈ −γ, far from log x: no cancellation
    out[tiny] = special.digamma(x[tiny] + 1.0) - np.log(x[tiny])
    middle = ~large & ~tiny
    if middle.any():  # e(x) = e(x + m) + log(1 + m/x) − Σ_{j=1..m} 1/(x + j), x + m ≥ 12
        xm = x[middle]
        m = np.ceil(_DIGAMMA_SERIES_FROM - xm)
        steps = np.zeros_like(xm)  # log(1 + m/x) − Σ 1/(x + j) = Σ_j −log(1 − u_j) − u_j, u_j = 1/(x + j)
        for j in range(1, int(m.max()) + 1):
            steps += np.where(j <= m, _log_excess(1.0 / (xm + j)), 0.0)
        out[middle] = _digamma_series(xm + m) + steps
    return out


def _log_excess(u: np.ndarray) -> np.ndarray:
    """−log(1 − u) − u = Σ_{k≥2} u^k/k for 0 < u ≤ 1/5, a sum of positive terms (to u³⁰: 1e-21 left)."""
    acc = np.zeros_like(u)
    for k in range(30, 1, -1):
        acc = acc * u + 1.0 / k
    return acc * u * u


#: Below this ψ(x + 1) − log x is scipy's digamma less the log; from it to the series the
#: recurrence carries x there (ψ(x + 1) and log x would cancel by a factor up to 2x·log x ≈ 60).
_DIGAMMA_RECURRENCE_FROM = 4.0


def _digamma_series(x: np.ndarray) -> np.ndarray:
    """ψ(x + 1) − log x for x ≥ 12 by its asymptotic series in 1/x² (Horner)."""
    inv2 = 1.0 / (x * x)
    acc = np.zeros_like(x)
    for c in reversed(_DIGAMMA_SERIES):
        acc = (acc + c) * inv2
    return 0.5 / x + acc


def posterior_kl_terms(c, n: int, alpha: float, k: int) -> np.ndarray:
    """(a/A)(ψ(a + 1) − log a) per category, a = c + α, A = n + kα: what the posterior mean of
    KL(θ‖q) under Dirichlet(a) adds to KL(f̃‖q) (:func:`smoothed_kl_terms`), less ψ(A + 1) − log A."""
    a = np.asarray(c, dtype=float) + alpha
    return a / (n + k * alpha) * digamma_excess(a)


def jackknife_kl_terms(c, n: int, q, k: int) -> np.ndarray:
    """The jackknifed plug-in KL's term of one category with count c among n (n ≥ 2), q its model probability.

    The jackknife n·KL(f_n‖q) − ((n − 1)/n)·Σ_i KL(f_(−i)‖q), f_(−i) the
    frequencies without observation i, is Σ_k of
    n·G_n(c_k) − ((n − 1)/n)·((n − c_k)·G_(n−1)(c_k) + c_k·G_(n−1)(c_k − 1)),
    G_m(c) = q·h(c/(mq) − 1) the plug-in's term (:func:`smoothed_kl_terms`
    with α = 0).  Written out, the logarithms' n-scaled parts cancel exactly:
    the term is G_n(c) − (c/n)·(A(c) − A(n)), A(m) = 1 + (m − 1)·log(1 − 1/m)
    (:func:`jackknife_excess`), the plug-in's term less a correction of about
    (1 − c/n)/(2n).  Computed so, it keeps the plug-in's relative precision
    instead of losing about ε·n·KL(f_n‖q) to the difference of n-scaled
    plug-ins.  A category never observed gives q, as in the plug-in.
    """
    c = np.asarray(c, dtype=float)
    plugin = smoothed_kl_terms(c, n, q, 0.0, k)
    return plugin - (c / n) * (jackknife_excess(c) - float(jackknife_excess(np.array([float(n)]))[0]))


#: Below this count A(m) is taken from a table of its closed form; from it on, its series.
_EXCESS_TABLE = 8
#: Terms of A(m)'s series in x = 1/m: for m ≥ 8 the 18th is below 1e-17 of the first.
_EXCESS_TERMS = 18
#: Its coefficients 1/(j(j + 1)), j = 1 … _EXCESS_TERMS.
_EXCESS_SERIES = np.array([1.0 / (j * (j + 1)) for j in range(1, _EXCESS_TERMS + 1)])


def _excess_closed(m: int) -> float:
    """A(m) in closed form (m ≥ 1): 1 + (m − 1)·log1p(−1/m), with A(1) = 1 (0·log 0 = 0)."""
    return 1.0 if m == 1 else 1.0 + (m - 1) * math.log1p(-1.0 / m)


#: A(0) (never used: its weight c is 0) and A(1) … A(7); their cancellation costs at most ~15ε.
_EXCESS_SMALL = np.array([0.0, *(_excess_closed(m) for m in range(1, _EXCESS_TABLE))])


def jackknife_excess(m: np.ndarray) -> np.ndarray:
    """A(m) = 1 + (m − 1)·log(1 − 1/m) = Σ_{j≥1} 1/(j(j + 1)·m^j) for whole counts m ≥ 1 (A(0) = 0).

    Positive and decreasing, about 1/(2m): the jackknife's correction per
    category (:func:`jackknife_kl_terms`).  The closed form cancels for large
    m, so from m = 8 on the series of positive terms is summed (Horner in 1/m).
    """
    m = np.asarray(m, dtype=float)
    x = 1.0 / np.maximum(m, float(_EXCESS_TABLE))
    acc = np.zeros_like(x)
    for coefficient in _EXCESS_SERIES[::-1]:
        acc = acc * x + coefficient
    small = _EXCESS_SMALL[np.clip(m, 0, _EXCESS_TABLE - 1).astype(np.intp)]
    return np.where(m < _EXCESS_TABLE, small, acc * x)


def jackknife_excess_beyond_half(m: np.ndarray) -> np.ndarray:
    """B(m) = A(m) − 1/(2m) = Σ_{j≥2} 1/(j(j + 1)·m^j) for whole counts m ≥ 1 (B(0) = 0), about 1/(6m²).

    :func:`jackknife_excess` less its leading term, without the cancellation
    of forming the difference: the series from its second term (a table below m = 8).
    """
    m = np.asarray(m, dtype=float)
    x = 1.0 / np.maximum(m, float(_EXCESS_TABLE))
    acc = np.zeros_like(x)
    for coefficient in _EXCESS_SERIES[:0:-1]:
        acc = acc * x + coefficient
    small = _BEYOND_HALF_SMALL[np.clip(m, 0, _EXCESS_TABLE - 1).astype(np.intp)]
    return np.where(m < _EXCESS_TABLE, small, acc * x * x)


#: B(m) for m < 8: 0, ½ (A(1) = 1), then its series of positive terms summed exactly (fsum; 1/m ≤ ½).
_BEYOND_HALF_SMALL = np.array(
    [
        0.0,
        0.5,
        *(math.fsum(1.0 / (j * (j + 1) * m**j) for j in range(2, 70)) for m in range(2, _EXCESS_TABLE)),
    ]
)


def kl_two(d: np.ndarray, a: float, b: float) -> np.ndarray:
    """KL((a + d, b − d) ‖ (a, b)) for two categories, accurate for small ``d``.

    Equal to a·h(d/a) + b·h(−d/b) (see :func:`xlog1px_minus_x`), but where
    every |d| is below 0.03·min(a, b) it is one Taylor series in ``d``,
    Σ_{j≥2} ((−1)^j / a^(j−1) + 1 / b^(j−1)) d^j / (j (j − 1)), whose
    leading term d² / (2ab) is positive: half the work of two series, with
    the same relative precision.

    Parameters
    ----------
    d : array_like
        Differences f − a between an observed frequency of the first category
        and its probability ``a``; ``a + d`` lies in [0, 1].
    a, b : float
        Positive probabilities of the two categories, summing to 1.
    """
    d = np.asarray(d, dtype=float)
    top = float(np.max(np.abs(d), initial=0.0)) / min(a, b)
    if top < _SERIES_RADIUS:
        j = np.arange(2.0, _terms(top) + 2.0)
        return _horner(d, ((-1.0) ** j / a ** (j - 1) + 1.0 / b ** (j - 1)) / (j * (j - 1)))
    return a * xlog1px_minus_x(d / a) + b * xlog1px_minus_x(-d / b)


#: Differences within this many ulps of the values compared are rounding, not spread.
ROUNDING_ULPS = 16


def snap_rounding(dev: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """Set to 0 the deviations no larger than the rounding of values of size ``scale``.

    Used where a spread is computed from values that are equal in exact
    arithmetic but were reached by different roundings, so that a constant
    quantity has a standard deviation of exactly 0, not 1e-16.
    """
    dev = np.array(dev, dtype=float)
    dev[np.abs(dev) <= ROUNDING_ULPS * np.finfo(float).eps * np.asarray(scale)] = 0.0
    return dev


@dataclass(frozen=True, eq=False)
class Distribution:
    """A probability vector over K categories.

    Build one with :func:`coin`, :func:`categorical`, :func:`zipf`,
    :func:`uniform` or :func:`dirichlet`; the constructors validate.

    Attributes
    ----------
    family : str
        How it was specified: ``coin``, ``categorical``, ``zipf``,
        ``uniform`` or ``dirichlet``.
    probs : numpy.ndarray
        Read-only probabilities, length K, summing to 1 within rounding.
    log_probs : numpy.ndarray
        Read-only natural logarithms of ``probs`` (``-inf`` where 0),
        computed accurately for the family.
    heads : float or None
        P(heads) for a coin, else None.  Categories of a coin are
        ``(heads, tails)``.
    """

    family: Family
    probs: np.ndarray
    log_probs: np.ndarray
    heads: float | None = None

    @property
    def k(self) -> int:
        """Number of categories K."""
        return int(self.probs.size)

    @cached_property
    def support(self) -> np.ndarray:
        """Indices of the categories with positive probability."""
        return np.flatnonzero(self.probs > 0)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=float)
    a.flags.writeable = False
    return a


def _log(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


def coin(heads: float) -> Distribution:
    """A coin with P(heads) = ``heads``; categories ``(heads, tails)``."""
    h = float(heads)
    if not 0.0 <= h <= 1.0:
        raise ValueError(f"P(heads) must be in [0, 1], got {h!r}")
    probs = np.array([h, 1.0 - h])
    # log1p keeps precision for small h; for h ≥ ½, 1 − h is exact (Sterbenz) and
    # log(1 − h) makes a fair coin's two logs bit-for-bit equal.
    tails = math.log1p(-h) if h < 0.5 else math.log(1.0 - h) if h < 1 else -math.inf
    logs = np.array([math.log(h) if h > 0 else -math.inf, tails])
    return Distribution("coin", _frozen(probs), _frozen(logs), heads=h)


def categorical(probs: np.ndarray | list[float]) -> Distribution:
    """A categorical distribution from explicit probabilities.

    The vector is divided by its sum so that rounding in hand-written
    decimals (0.1 + 0.2 + 0.7) does not leave a sum of 1 ± 1e-16; callers
    decide how far from 1 a sum may be before it is an error.
    """
    p = np.asarray(probs, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("probabilities must be a non-empty list")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and non-negative")
    total = math.fsum(p)
    if total <= 0:
        raise ValueError("probabilities sum to 0")
    p = p / total
    return Distribution("categorical", _frozen(p), _frozen(_log(p)))


def uniform(k: int) -> Distribution:
    """The uniform distribution on ``k`` categories."""
    if k < 1:
        raise ValueError("k must be at least 1")
    return Distribution("uniform", _frozen(np.full(k, 1.0 / k)), _frozen(np.full(k, -math.log(k))))


def zipf(k: int, s: float) -> Distribution:
    """Zipf's law on ``k`` ranks: p_k ∝ k^−s for k = 1..K, normalised in log space."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if not (math.isfinite(s) and s >= 0):
        raise ValueError("s must be a finite number ≥ 0")
    w = -s * np.log(np.arange(1, k + 1, dtype=float))
    m = w.max()
    logs = w - (m + math.log(math.fsum(np.exp(w - m))))
    return Distribution("zipf", _frozen(np.exp(logs)), _frozen(logs))


def dirichlet(k: int, alpha: float, seed: int) -> Distribution:
    """A draw from the symmetric Dirichlet(alpha) on ``k`` categories.

    The draw uses its own ``numpy.random.Generator`` seeded with ``seed``,
    independent of the experiment's seed, so a named distribution stays the
    same whatever the experiment around it.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError("alpha must be a finite number > 0")
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, float(alpha)))
    p = p / math.fsum(p)
    return Distribution("dirichlet", _frozen(p), _frozen(_log(p)))


def unit_size(units: str) -> float:
    """How many nats one of ``units`` is: 1 for ``"nats"``, ln 2 for ``"bits"``.

    Every conversion between nats and the units of an experiment goes
    through here (or :func:`to_units`).
    """
    if units == "nats":
        return 1.0
    if units == "bits":
        return LN2
    raise ValueError(f"unknown units {units!r}")


def to_units(value, units: str):
    """Convert a quantity in nats to ``units`` (``"nats"`` or ``"bits"``)."""
    size = unit_size(units)
    return value if size == 1.0 else value / size


#: The largest ratio of q's sample size to p's (``q_sample: {ratio: …}``).
MAX_Q_SAMPLE_RATIO = 1e6


@dataclass(frozen=True, eq=False)
class Pair:
    """A case's true distribution ``p`` and model ``q`` over the same categories.

    Every property is in nats.  ``q`` must be positive wherever ``p`` is,
    otherwise KL(p‖q) is infinite and :class:`ValueError` is raised.
    ``q_sample``, when given, says that q is also observed through a sample
    of its own, of :meth:`q_sample_size` observations beside p's n (a
    positive ratio of n; see the two-sample estimators).
    """

    p: Distribution
    q: Distribution
    q_sample: float | None = None

    #: Pairs that answer their estimators' laws themselves (:class:`sim.families.FamilyPair`,
    #: :class:`sim.markov.MarkovPair`) say True: the estimators and checks ask this.
    parametric: ClassVar[bool] = False
    #: ``analytic.csv`` columns only some kinds of case fill (Markov cases' ``kl_stationary``).
    extra_analytic: ClassVar[tuple[str, ...]] = ()
    #: Whether every replicate's plug-in KL is at least its llr (the plug-in maximises the likelihood).
    plugin_bounds_llr: ClassVar[bool] = True

    @property
    def cells(self) -> int:
        """Counts a replicate holds in memory (p's support): the block sizes ask this."""
        return int(self.support.size)

    @property
    def sizes(self) -> tuple[int | None, int | None]:
        """``analytic.csv``'s k and k_support: categories, and those p gives mass."""
        return self.p.k, int(self.support.size)

    def __post_init__(self) -> None:
        if self.p.k != self.q.k:
            raise ValueError(f"p has {self.p.k} categories but q has {self.q.k}")
        bad = np.flatnonzero((self.p.probs > 0) & (self.q.probs <= 0))
        if bad.size:
            raise ValueError(f"q is 0 at category {int(bad[0])} where p > 0: KL(p‖q) is infinite")
        if self.q_sample is not None and not (0.0 < self.q_sample <= MAX_Q_SAMPLE_RATIO):
            raise ValueError(
                f"q_sample's ratio must lie in (0, {MAX_Q_SAMPLE_RATIO:g}], got {self.q_sample!r}"
            )

    def q_sample_size(self, n: int) -> int:
        """M, the size of q's sample beside p's n: the nearest integer to ratio·n, at least 1.

        Non-decreasing in n, so q's samples at growing n are prefixes of one
        sequence, as p's are.

        Raises
        ------
        ValueError
            If the pair has no ``q_sample``.
        """
        if self.q_sample is None:
            raise ValueError("this pair has no sample of q (no q_sample)")
        return max(1, math.floor(self.q_sample * n + 0.5))

    @property
    def family(self) -> str:
        """``coin`` when both sides are coins, else ``categorical``."""
        return "coin" if self.p.family == "coin" and self.q.family == "coin" else "categorical"

    @cached_property
    def delta(self) -> np.ndarray:
        """p − q per category, exact for a coin's tails (see module notes)."""
        if self.p.heads is not None and self.q.heads is not None:
            d = self.p.heads - self.q.heads
            return _frozen(np.array([d, -d]))
        return _frozen(self.p.probs - self.q.probs)

    @cached_property
    def support(self) -> np.ndarray:
        """Categories where p > 0 (the only ones a sample can contain)."""
        return self.p.support

    @cached_property
    def log_ratio(self) -> np.ndarray:
        """log p_k/q_k on the support of p.

        ``log1p((p − q)/q)`` where p and q are close (|p/q − 1| < ½), which keeps
        the digits of a small ratio; ``log p − log q`` elsewhere, where the
        ratio itself may be far below double precision (p = 1e-250, q = ½).
        """
        s = self.support
        r = self.delta[s] / self.q.probs[s]
        close = np.abs(r) < 0.5
        with np.errstate(divide="ignore"):
            near = np.log1p(np.where(close, r, 0.0))
        return _frozen(np.where(close, near, self.p.log_probs[s] - self.q.log_probs[s]))

    @cached_property
    def kl_pq(self) -> float:
        """KL(p‖q) = Σ p log(p/q), never negative, accurate when p ≈ q."""
        return _kl(self.q, self.p, self.delta)

    @cached_property
    def kl_qp(self) -> float:
        """KL(q‖p); ``inf`` where q has mass on categories that p lacks."""
        if np.any((self.q.probs > 0) & (self.p.probs <= 0)):
            return math.inf
        return _kl(self.p, self.q, -self.delta)

    @cached_property
    def entropy_p(self) -> float:
        """H(p) = −Σ p log p."""
        s = self.support
        return math.fsum(-self.p.probs[s] * self.p.log_probs[s])

    @cached_property
    def cross_entropy(self) -> float:
        """H(p, q) = −Σ p log q."""
        s = self.support
        return math.fsum(-self.p.probs[s] * self.q.log_probs[s])

    @cached_property
    def llr_sigma(self) -> float:
        """σ = sd of log p(X)/q(X) under p: sd(llr at N) = σ/√N exactly."""
        return self._sd(self.log_ratio, self.kl_pq)

    @cached_property
    def entropy_sigma(self) -> float:
        """sd of −log p(X) under p."""
        return self._sd(-self.p.log_probs[self.support], self.entropy_p)

    @cached_property
    def cross_entropy_sigma(self) -> float:
        """sd of −log q(X) under p."""
        return self._sd(-self.q.log_probs[self.support], self.cross_entropy)

    def _sd(self, values: np.ndarray, mean: float) -> float:
        """sd under p of ``values`` (on the support) around their exact ``mean``.

        Values that differ from the mean by no more than their own rounding
        (see :func:`snap_rounding`) are taken as equal to it, so a quantity that is constant in
        exact arithmetic has sd exactly 0.
        """
        w = self.p.probs[self.support]
        dev = snap_rounding(values - mean, np.maximum(np.abs(values), abs(mean)))
        return math.sqrt(math.fsum(w * dev**2))


def _kl(base: Distribution, other: Distribution, delta: np.ndarray) -> float:
    """KL(other‖base) with ``delta`` = other − base (exact for coins).

    Terms with |delta/base| < ½ are base·h(delta/base), non-negative and exact
    near equality; the rest are other·(log other − log base) − other + base
    from the logarithms, which cannot overflow when base is tiny (1e-308).
    """
    m = base.probs > 0
    b, a, d = base.probs[m], other.probs[m], delta[m]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        r = d / b
        close = np.abs(r) < 0.5
        near = b * xlog1px_minus_x(np.where(close, r, 0.0))
        la, lb = other.log_probs[m], base.log_probs[m]
        far = np.where(a > 0, a * (la - lb), 0.0) - a + b
    return math.fsum(np.where(close, near, np.maximum(far, 0.0)))
