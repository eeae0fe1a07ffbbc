"""The likelihood-ratio test: how often the sample favours the wrong model.

Given n draws from p, the normalised llr decides between p and q by its sign;
``p_wrong`` = P_p(llr_n ≤ 0) is the chance that the sample favours q (or
ties).  Its exponential rate of decay is the Chernoff information

    C(p, q) = −min_{0≤s≤1} log Σ_k p_k^{1−s} q_k^s,

and it can be estimated far below 1/replicates by exponential tilting:
sample from r ∝ p^{1−s*} q^{s*} and reweight by the likelihood ratio p/r.

For coins everything is exact: llr_n is a monotone function of the number of
heads H ~ Binomial(n, p), so p_wrong is a Binomial tail, evaluated in log
space; whether llr = 0 exactly (a tie) is decided on the integer head count
(see :func:`coin_wrong_bound`).

This module is the numerical core of the likelihood-ratio test; the configs, summaries,
figures and ``sim check`` wiring build on it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from .binomial import log_pmf, log_prob_in, log_tail
from .distributions import TIE, Pair, coin


@dataclass(frozen=True)
class Chernoff:
    """Chernoff information C(p, q) (nats) and the minimising tilt s*."""

    information: float
    s: float


def _log_mgf(pair: Pair, s: float) -> float:
    """log Σ_k p_k^{1−s} q_k^s, as log1p(Σ p_k expm1(−s·log(p_k/q_k))) over p's support.

    Categories p lacks contribute nothing for s < 1 (0^{1−s} = 0).  The
    form keeps the digits of a small sum better than log Σ p^{1−s} q^s
    would, but its terms are of the size of |log p/q| while their sum is of
    its square: where p is close to q use :func:`_near_log_mgf`.
    """
    p, lr = pair.p.probs[pair.support], pair.log_ratio
    return math.log1p(math.fsum(p * np.expm1(-s * lr)))


def _slope(pair: Pair, s: float) -> float:
    """Σ_k p_k (q_k/p_k)^s log(p_k/q_k): minus the derivative of the log mgf, times its value.

    Decreasing in s (its derivative is −Σ p (q/p)^s log²(p/q)), positive at
    s = 0 where it is KL(p‖q); the Chernoff tilt is its root.
    """
    p, lr = pair.p.probs[pair.support], pair.log_ratio
    return math.fsum(p * np.exp(-s * lr) * lr)


#: Where Σ p |log p/q| exceeds KL(p‖q) = Σ p log p/q this many times, the
#: direct sums of :func:`_log_mgf` and :func:`_slope` would cancel by as much,
#: and :func:`chernoff` expands around p = q instead (:func:`_near_log_mgf`).
NEAR_CANCELLATION = 32.0
#: The direct sums are also left where the rounding of the probabilities'
#: sums would move C by more than this, relatively (see :func:`chernoff`).
NORMALISATION_TOLERANCE = 1e-13
#: |x| up to which g(x) = e^{−x} − 1 + x is summed as its Taylor series.
_G_RADIUS = 1.0
#: The series' coefficients (−1)^j/(j + 2)!: 18 terms reach 2⁻⁵⁶ relative on |x| ≤ 1.
_G_SERIES = np.array([(-1.0) ** j / math.factorial(j + 2) for j in range(18)])


def _near(pair: Pair) -> bool:
    """Whether the direct sums cancel by more than :data:`NEAR_CANCELLATION` (p close to q)."""
    p, lr = pair.p.probs[pair.support], pair.log_ratio
    return math.fsum(p * np.abs(lr)) > NEAR_CANCELLATION * pair.kl_pq


def _excess(dist) -> float:
    """Σ probs − 1, as the exact sum of the doubles rounded once; 0 for a coin.

    A categorical distribution is the doubles normalised, which no vector
    of doubles represents exactly: they sum to 1 ± a few 1e-17.  A coin is
    (heads, 1 − heads) by definition, whatever 1 − heads rounds to.
    """
    return 0.0 if dist.heads is not None else math.fsum([*dist.probs, -1.0])


def _g(x: np.ndarray) -> np.ndarray:
    """g(x) = e^{−x} − 1 + x = expm1(−x) + x ≥ 0, with the relative precision of its own size.

    By its Taylor series Σ_{j≥2} (−x)^j/j! for |x| ≤ 1 (alternating for
    x > 0, but its terms are below e^{|x|} − 1 − |x| ≤ 2·g(x) in total, so
    the sum loses at most a couple of bits), by ``expm1(−x) + x`` beyond,
    where that sum cancels by less than a factor 3.
    """
    x = np.asarray(x, dtype=float)
    acc = np.zeros_like(x)
    for c in _G_SERIES[::-1]:
        acc = acc * x + c
    series = acc * x * x
    with np.errstate(over="ignore"):
        closed = np.expm1(-x) + x
    return np.where(np.abs(x) <= _G_RADIUS, series, closed)


def _near_log_mgf(pair: Pair, s: float) -> float:
    """log Σ P^{1−s} Q^s for P, Q the pair's distributions, by an expansion around P = Q.

    With d_k = log(p_k/q_k) over p's support, Σ p e^{−s d} − 1 is written
    −s Σ p d + Σ p g(s d) (:func:`_g`), with Σ p d = KL(p‖q) + a − b, a and b
    the excesses of Σp and Σq over 1 (:func:`_excess`), and KL(p‖q) =
    Σ q h((p − q)/q) as the pair holds it, to full relative precision (a sum
    of non-negative terms, not the cancelling Σ p d).  What remains is a
    sum of non-negative terms of order s² d², of the size of s·KL: their
    difference, −C at the tilt, loses about one bit, where the direct sum
    loses log₂(Σ p|d|/KL) bits.

    The distributions are P = p/(1 + a) and Q = q/(1 + b) (exactly
    normalised), so log Σ P^{1−s} Q^s = log1p(u + x) − (1 − s) log1p(a)
    − s log1p(b) with u = (1 − s) a + s b and x = −s·KL + Σ p g(s d); that
    is log1p(x/(1 + u)) + s(1 − s)(a − b)²/2 to third order in a and b,
    computed so, without adding 1e-17 to a sum of 1e-20.
    """
    p, lr = pair.p.probs[pair.support], pair.log_ratio
    a, b = _excess(pair.p), _excess(pair.q)
    x = math.fsum([-s * pair.kl_pq, *(p * _g(s * lr))])
    u = (1.0 - s) * a + s * b
    return math.log1p(x / (1.0 + u)) + s * (1.0 - s) * (a - b) ** 2 / 2.0


def _near_slope(pair: Pair, s: float) -> float:
    """:func:`_slope` for p close to q: KL(p‖q) + Σ p d expm1(−s d), d = log(p/q).

    Every term of the sum is ≤ 0 (d and expm1(−s d) have opposite signs),
    so nothing cancels but the final difference, which vanishes at the
    root: the tilt is found to the last bits of s.  (KL stands for Σ p d
    of the normalised distributions: the excesses of :func:`_near_log_mgf`
    move the root by (a − b)·C/KL only.)
    """
    p, lr = pair.p.probs[pair.support], pair.log_ratio
    return math.fsum([pair.kl_pq, *(p * lr * np.expm1(-s * lr))])


def _minimise(pair: Pair, slope, log_mgf) -> Chernoff:
    """The root of ``slope`` on [0, 1] (or 1 where it stays positive) and −``log_mgf`` there."""
    if slope(pair, 1.0) >= 0.0:
        s = 1.0
    else:
        s = float(
            optimize.brentq(
                lambda t: slope(pair, t),
                0.0,
                1.0,
                xtol=np.finfo(float).tiny,
                rtol=4 * np.finfo(float).eps,
                maxiter=500,
            )
        )
    return Chernoff(max(0.0, -log_mgf(pair, s)), s)


@functools.lru_cache(maxsize=256)
def chernoff(pair: Pair) -> Chernoff:
    """C(p, q) = −min over s in [0, 1] of log Σ p^{1−s} q^s, and the minimising s.

    The function is convex in s, so its minimiser is the root of its
    derivative (see :func:`_slope`), found by Brent's method to the last
    bits of s (a minimiser found by comparing function values is determined
    only to about √ε, since the function is flat there: the tilted
    distribution, and every importance weight drawn from it, would carry
    that error).  Where the slope does not change sign on [0, 1] (q has
    mass on categories p lacks), the minimum is at s = 1.

    Both the function and its slope are sums whose terms are of the size of
    d = log(p/q) while the results are of the size of d² at the tilt.
    Where that cancellation exceeds :data:`NEAR_CANCELLATION` (p close to
    q), they are evaluated as expansions around p = q that cancel by about
    a bit (:func:`_near_log_mgf`, :func:`_near_slope`), so C and s* keep
    their relative precision at every scale (C = 6e-19 for coins 0.3 and
    0.300000001).  The direct sums, precise elsewhere, are kept there (and
    with them the bits of the committed results), except where C is so
    small that the doubles' sums, 1 ± 1e-17 for a categorical pair, would
    move it by more than :data:`NORMALISATION_TOLERANCE` (the direct sum
    is off by s·|Σp − Σq|; the expansion works with the normalised
    distributions).  Measured against 60-digit decimal arithmetic: C within
    1e-15 relative and s* within 2e-16 near p = q, down to C = 1e-25; up to
    1e-14 where the pair's KL(p‖q) is itself that far off (ratios p/q just
    beyond 1 ± 0.03) or where log(p/q) is log p − log q (coins 1e-10 and
    2e-10), which carries log's absolute rounding.
    """
    if pair.kl_pq == 0.0:
        return Chernoff(0.0, 0.5)
    if not _near(pair):
        direct = _minimise(pair, _slope, _log_mgf)
        moved = direct.s * abs(_excess(pair.p) - _excess(pair.q))
        if moved <= NORMALISATION_TOLERANCE * direct.information:
            return direct
    return _minimise(pair, _near_slope, _near_log_mgf)


def tilted(pair: Pair, s: float) -> np.ndarray:
    """The tilted distribution r ∝ p^{1−s} q^s (on p's categories)."""
    both = (pair.p.probs > 0) & (pair.q.probs > 0)
    log_r = np.full(pair.p.k, -np.inf)
    log_r[both] = (1.0 - s) * pair.p.log_probs[both] + s * pair.q.log_probs[both]
    log_r -= special.logsumexp(log_r[both])
    return np.exp(log_r)


# --------------------------------------------------------------------------
# Coins: exact


def coin_wrong_bound(p: float, q: float, n: int, *, strict: bool = False) -> tuple[str, int]:
    """The head counts where the sample favours q: ``("le", h)`` for H ≤ h, ``("ge", h)`` for H ≥ h.

    ``strict`` asks for llr < 0 instead of llr ≤ 0.  With a = log(p/q) −
    log((1−p)/(1−q)) and b = log((1−p)/(1−q)), llr_n = (H a + n b)/n, which
    is 0 exactly at H = t = −n b/a.  The event is decided on the integer H
    against t; t is taken as an integer (a tie, as for p = 2/3 against
    q = 1/3 at even n) when it lies within rounding (64 ulps) of one, since
    the doubles 2/3 and 1/3 are only approximations of the coins meant.
    """
    pair = Pair(coin(p), coin(q))
    if pair.support.size < 2:  # p is 0 or 1: every sample is all tails or all heads
        sign = float(pair.log_ratio[0])
        wrong = sign < 0 if strict else sign <= 0
        return ("le", n) if wrong else ("le", -1)
    lh, lt = (float(v) for v in pair.log_ratio)
    a, b = lh - lt, lt
    if a == 0.0:  # p = q: llr is 0 for every sample
        return ("le", -1) if strict else ("le", n)
    t = -n * b / a
    nearest = round(t)
    tie = abs(t - nearest) <= TIE * max(abs(t), 1.0)
    if a > 0:  # llr increases with H: wrong for H ≤ t (< t when strict)
        h = (nearest - 1 if strict else nearest) if tie else math.floor(t)
        return ("le", int(min(n, max(-1, h))))
    h = (nearest + 1 if strict else nearest) if tie else math.ceil(t)
    return ("ge", int(max(0, min(n + 1, h))))


def coin_p_wrong(p: float, q: float, n: int, *, strict: bool = False) -> tuple[float, float]:
    """Exact P_p(llr_n ≤ 0) (or < 0 with ``strict``) for coins: (probability, its log).

    A Binomial tail by :func:`sim.binomial.log_tail`: scipy's value where
    it does not underflow, else summed in log space from the boundary
    outwards, so a probability like 1e-40000 at n = 10⁶ keeps its logarithm;
    memory and time do not grow with n (up to 2⁵³).
    """
    side, h = coin_wrong_bound(p, q, n, strict=strict)
    if (side == "le" and h < 0) or (side == "ge" and h > n):
        return 0.0, -math.inf
    log_prob = log_prob_in(side, h, n, p)
    return math.exp(log_prob), log_prob


def coin_tilted_moments(p: float, q: float, n: int) -> tuple[float, float, float]:
    """Exact mean, sd and 4th central moment of one tilted replicate w·1{llr ≤ 0}, for a coin.

    X = w·1{wrong} under r has E[X^k] = Σ_{h wrong} pmf_p(h)^k / pmf_r(h)^(k−1)
    = Σ_{h wrong} C(n, h) a_k^h b_k^(n−h) with a_k = p^k/r^(k−1) and
    b_k = (1−p)^k/(1−r)^(k−1): that is (a_k + b_k)^n times the probability
    of the wrong head counts under Binomial(n, a_k/(a_k + b_k)), one
    Binomial tail (:func:`sim.binomial.log_tail`) evaluated in log space,
    for any n up to 2⁵³.  The central moments are formed relative to the
    mean (E[X^k]/m^k), so they do not cancel to 0 when m underflows
    no sooner than the raw moments do.
    """
    pair = Pair(coin(p), coin(q))
    side, h = coin_wrong_bound(p, q, n)
    if (side == "le" and h < 0) or (side == "ge" and h > n):
        return 0.0, 0.0, 0.0
    if pair.kl_pq == 0.0:  # p = q: no tilt, every weight 1, every sample a tie (wrong)
        return 1.0, 0.0, 0.0
    r = float(tilted(pair, chernoff(pair).s)[0])
    if n <= TILTED_ENUMERATE_MAX_N:
        return _tilted_moments_enumerated(side, h, n, p, r)
    log_p, log_pbar, log_r, log_rbar = math.log(p), math.log1p(-p), math.log(r), math.log1p(-r)
    log_raw = []
    for k in (1, 2, 3, 4):
        log_a, log_b = k * log_p - (k - 1) * log_r, k * log_pbar - (k - 1) * log_rbar
        log_ab = float(np.logaddexp(log_a, log_b))
        pi, pi_bar = math.exp(log_a - log_ab), math.exp(log_b - log_ab)
        log_raw.append(n * log_ab + log_prob_in(side, h, n, pi, pi_bar))
    log_m = log_raw[0]
    if log_m == -math.inf:
        return 0.0, 0.0, 0.0
    # E[X^k]/m^k: X/m has mean 1, so its central moments follow without m's scale
    rel = [math.exp(v - (k + 1) * log_m) for k, v in enumerate(log_raw)]
    var_rel = max(rel[1] - 1.0, 0.0)
    mu4_rel = max(rel[3] - 4.0 * rel[2] + 6.0 * rel[1] - 3.0, 0.0)
    m = math.exp(log_m)
    return m, m * math.sqrt(var_rel), mu4_rel * m**4


#: Up to this n the tilted moments are summed head count by head count, as
#: they always were: the same values to the last digit, so the committed
#: results (n ≤ 1000) are reproduced byte for byte.
TILTED_ENUMERATE_MAX_N = 1000


def _tilted_moments_enumerated(side: str, h: int, n: int, p: float, r: float) -> tuple[float, float, float]:
    """:func:`coin_tilted_moments` by a sum over the wrong head counts (small n only)."""
    heads = np.arange(0, h + 1) if side == "le" else np.arange(max(h, 0), n + 1)
    lp, lr = stats.binom.logpmf(heads, n, p), stats.binom.logpmf(heads, n, r)
    log_raw = [float(special.logsumexp(k * lp - (k - 1) * lr)) for k in (1, 2, 3, 4)]
    raw = [math.exp(v) for v in log_raw]
    m = raw[0]
    if 0.0 < m < TINY_MEAN:
        # m² would underflow (and the sd with it): central moments relative to m, as above
        rel = [math.exp(v - (k + 1) * log_raw[0]) for k, v in enumerate(log_raw)]
        var_rel = max(rel[1] - 1.0, 0.0)
        mu4_rel = max(rel[3] - 4.0 * rel[2] + 6.0 * rel[1] - 3.0, 0.0)
        return m, m * math.sqrt(var_rel), mu4_rel * m**4
    var = max(raw[1] - m * m, 0.0)
    mu4 = raw[3] - 4 * m * raw[2] + 6 * m * m * raw[1] - 3 * m**4
    return m, math.sqrt(var), max(mu4, 0.0)


#: Below this mean the enumerated tilted moments are formed relative to it (m² underflows).
TINY_MEAN = 1e-100


# --------------------------------------------------------------------------
# Importance sampling


@dataclass(frozen=True)
class ImportanceEstimate:
    """An importance-sampling estimate of P_p(llr_n ≤ 0) with its MCSE."""

    estimate: float
    mcse: float
    replicates: int
    s: float

    @property
    def relative_error(self) -> float:
        return self.mcse / self.estimate if self.estimate > 0 else math.inf


def p_wrong_tilted(pair: Pair, n: int, replicates: int, *, rng: np.random.Generator) -> ImportanceEstimate:
    """Estimate P_p(llr_n ≤ 0) by sampling counts from the Chernoff-tilted r.

    Each replicate's counts C ~ Multinomial(n, r) get the weight
    Π_k (p_k/r_k)^{C_k} = exp(Σ C_k log(p_k/r_k)); the estimate is the mean
    of weight · 1{llr ≤ 0} and the MCSE the sd of those products over √R.
    Under r the event is typical (about half the samples), which is what
    makes a probability of 1e-11 estimable from a few thousand replicates.
    For coins the event is decided on the head count (see
    :func:`coin_wrong_bound`).
    """
    c = chernoff(pair)
    r = tilted(pair, c.s)
    keep = r > 0
    idx = np.flatnonzero(keep)
    counts = rng.multinomial(n, r[keep] / r[keep].sum(), size=replicates)
    log_w = counts @ (pair.p.log_probs[idx] - np.log(r[idx]))
    if pair.family == "coin" and 0.0 < pair.p.heads < 1.0 and idx.size == 2:
        side, h = coin_wrong_bound(pair.p.heads, pair.q.heads, n)
        heads = counts[:, 0]
        wrong = heads <= h if side == "le" else heads >= h
    else:  # a sum within rounding of 0 is a tie (e.g. c_1 = c_3 when log p/q = (a, 0, −a))
        ell = np.zeros(pair.p.k)
        ell[pair.support] = pair.log_ratio
        value = counts @ ell[idx]
        wrong = value <= TIE * (counts @ np.abs(ell[idx]))
    values = np.where(wrong, np.exp(log_w), 0.0)
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if replicates > 1 else math.inf
    return ImportanceEstimate(mean, sd / math.sqrt(replicates), replicates, c.s)


#: Relative error allowed for the computed Chernoff information in :func:`tilted_bound`
#: (measured: 2e-14 at worst; see :func:`chernoff`).
CHERNOFF_RELATIVE_ERROR = 1e-13


def tilted_bound(pair: Pair, n: int) -> float:
    """The largest value one tilted replicate can take at n: exp(:func:`log_tilted_bound`)."""
    return math.exp(log_tilted_bound(pair, n))


#: log of the smallest positive double.
LOG_SMALLEST = math.log(math.ulp(0.0))


def sees_every_event(pair: Pair, n: int) -> bool:
    """Whether a tilted replicate that sees the event always has a weight above 0.

    On the event the weight is e^(−nC)·e^(s·n·llr_n) with llr_n ≥ min_k log(p_k/q_k),
    so it is at least exp(log_tilted_bound + s·n·min log(p/q)) (less a rounding
    margin of a few units): when that is above the smallest double, a column
    of zeros means no replicate saw the event; otherwise zeros may be weights
    that underflowed, and are then the correctly rounded values.
    """
    c = chernoff(pair)
    d = float(np.min(pair.log_ratio))
    lowest = log_tilted_bound(pair, n) + c.s * n * min(d, 0.0) - 4.0
    return lowest >= LOG_SMALLEST


@functools.lru_cache(maxsize=4096)
def log_tilted_bound(pair: Pair, n: int) -> float:
    """log of the largest value one tilted replicate, w·1{llr_n ≤ 0}, can take at sample size n.

    Exactly −nC in exact arithmetic; computed as −n·Ĉ + A, with A
    twice the rounding allowance derived below (A ≈ 3e-15·n for coins 0.7
    and 0.5; ≤ 1e-11·n·(1 + max |log p|, |log q|) in general).

    Proof.  A replicate draws counts c ~ Multinomial(n, r) from the tilted
    r_k = p_k^{1−s} q_k^s / Z, Z = Σ p^{1−s} q^s (over p's support, where q
    is positive), at the Chernoff tilt s ∈ [0, 1], where Z = e^{−C}
    (:func:`chernoff`).  Its weight is the likelihood ratio
    w = Π (p_k/r_k)^{c_k}; since p_k/r_k = Z·e^{s d_k}, d_k = log(p_k/q_k),

        log w = n log Z + s Σ c_k d_k = −nC + s·n·llr_n.

    The value is w on the event llr_n ≤ 0 and 0 off it, so it is at most
    e^{−nC}, with equality where llr_n = 0 exactly (a coin at an integer
    boundary count, or a die whose counts all fall where p = q).

    Rounding enters in three places: the event admits n·llr_n ≤ τ, not ≤ 0
    (:func:`_event_slack`); each L̂_k of the exponent Σ c_k L̂_k is off by at
    most δ_k (:func:`_exponent_errors`) and the pairwise sum adds (log₂ K + 2)ε
    ·n·max|L̂|, |L̂| ≤ C + max|d| + δ; Ĉ is within :data:`CHERNOFF_RELATIVE_ERROR`
    of C (a tilt ŝ off by Δ raises log Z by O(Δ²) only), exp rounds by an ulp.
    So the largest computed exponent is at most −nC, plus the other errors, plus
    max s Σ c d + Σ c δ over counts c ≥ 0, Σ c = n, Σ c d ≤ τ (:func:`_worst_counts`).

    Parameters
    ----------
    pair : Pair
        The case.
    n : int
        Sample size, ≥ 1.

    Returns
    -------
    float
        The log of the bound (finite where e^{−nC} underflows).
    """
    eps = float(np.finfo(float).eps)
    c = chernoff(pair)
    big_c, s_hat = c.information, c.s
    d = np.asarray(pair.log_ratio, dtype=float)
    top_d = float(np.max(np.abs(d)))
    log2_k = math.log2(max(pair.support.size, 1))
    delta = _exponent_errors(pair, big_c)
    best = _worst_counts(s_hat, _event_slack(pair, n, top_d, log2_k), n, delta, d)
    summed = (log2_k + 2.0) * eps * n * (big_c + top_d + float(np.max(delta)))
    allowance = 2.0 * (best + summed + CHERNOFF_RELATIVE_ERROR * n * big_c) + 4.0 * eps
    return -n * big_c + allowance


def _event_slack(pair: Pair, n: int, top_d: float, log2_k: float) -> float:
    """τ: the computed event n·llr_n ≤ τ holds the exact event n·llr_n ≤ 0 (see :func:`log_tilted_bound`).

    For a coin a head count is wrong within 64 ulps of the boundary
    t = −n b/a (a tie, see :func:`coin_wrong_bound`), and t is itself
    computed to ~6 ulps, so n·llr = a (H − t) ≤ τ = 72ε·|a|·max(|t|, 1).
    Otherwise the computed llr is ≤ 64ε·max|d| (:func:`sim.events.llr_wrong`;
    at most that in :func:`p_wrong_tilted`), and it is a pairwise sum off by
    at most (log₂ K + 1)ε·n·max|d|: τ = (66 + log₂ K)ε·n·max|d|, ``top_d``
    being max|d| and ``log2_k`` log₂ K.
    """
    eps = float(np.finfo(float).eps)
    d = np.asarray(pair.log_ratio, dtype=float)
    if pair.family == "coin" and pair.support.size == 2:
        a, b = float(d[0] - d[1]), float(d[1])
        t = abs(n * b / a) if a != 0.0 else 0.0
        return 72.0 * eps * abs(a) * max(t, 1.0)
    return (66.0 + log2_k) * eps * n * top_d


def _exponent_errors(pair: Pair, big_c: float) -> np.ndarray:
    """δ_k, a bound on |L̂_k − (log Z + s d_k)| for each category of p's support.

    L̂_k = log p_k − log r̂_k as computed, r̂ by :func:`tilted`: the logs of
    p and q, (1 − s)·log p + s·log q, a logsumexp whose largest term is
    within C + log K of 0, exp, and log again; so
    δ_k = 8ε(|log p_k| + |log q_k| + C + log K + 1), C = ``big_c``.
    """
    eps = float(np.finfo(float).eps)
    k = pair.support.size
    log_p = np.abs(pair.p.log_probs[pair.support])
    log_q = np.abs(pair.q.log_probs[pair.support])
    return 8.0 * eps * (log_p + log_q + big_c + math.log(max(k, 1)) + 1.0)


def _worst_counts(s_hat: float, tau: float, n: int, delta: np.ndarray, d: np.ndarray) -> float:
    """An upper bound on max s Σ c d + Σ c δ over counts c ≥ 0, Σ c = n, Σ c d ≤ τ.

    That maximum is a linear programme; any multiplier λ ≥ 0 of its
    constraint Σ c d ≤ τ bounds it (weak duality): with μ = s − λ it is at
    most (s − μ)·τ + n·max_k(δ_k + μ d_k) for every μ ≤ s, and the smallest
    such value is found by golden-section search over [−1, s] (the function
    is convex in μ), trying μ = 0 and μ = s as well.  The choice
    μ ≈ δ/|d| makes a rare category with a large |log p| count only as often
    as the event allows: coins 1e-10 and 2e-10 get A ≈ 3.6e-15·n, not 23ε·n.
    """

    def dual(mu: float) -> float:
        return (s_hat - mu) * tau + n * float(np.max(delta + mu * d))

    lo, hi = -1.0, s_hat
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - golden * (hi - lo), lo + golden * (hi - lo)
    f1, f2 = dual(x1), dual(x2)
    best = min(dual(0.0), dual(s_hat), f1, f2)
    for _ in range(100):  # the bracket shrinks to 1e-21 of its width
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - golden * (hi - lo)
            f1 = dual(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + golden * (hi - lo)
            f2 = dual(x2)
        best = min(best, f1, f2)
    return best


def coin_tilted_hit_probability(p: float, q: float, n: int) -> float:
    """P_r(llr_n ≤ 0) under the Chernoff-tilted coin r: the chance one tilted replicate sees the event.

    The event is decided on the head count exactly as the simulation
    decides it (:func:`coin_wrong_bound`), and its probability under
    H ~ Binomial(n, r), r = tilted heads probability at the Chernoff s
    (:func:`tilted`, with 1 − r from the same logarithms), is one Binomial
    tail (:func:`sim.binomial.log_tail`), exact at any n up to 2⁵³.  With R
    replicates, none sees the event with probability (1 − π)^R: what a
    ``p_wrong_tilted`` row left empty is tested against.
    """
    pair = Pair(coin(p), coin(q))
    side, h = coin_wrong_bound(p, q, n)
    if (side == "le" and h < 0) or (side == "ge" and h > n):
        return 0.0
    r = tilted(pair, chernoff(pair).s)
    heads, tails = float(r[0]), float(r[1])
    if heads == 0.0 or tails == 0.0:  # a one-sided coin: every sample is all tails or all heads
        count = n if heads > 0 else 0
        return 1.0 if (count <= h if side == "le" else count >= h) else 0.0
    return math.exp(log_prob_in(side, h, n, heads, tails))


# --------------------------------------------------------------------------
# Stein's lemma


def coin_stein(p: float, q: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact type-II error of the level-α Neyman–Pearson test of p against q, for coins.

    The test decides q when the llr is small: for a = log(p/q) − log((1−p)/(1−q))
    > 0 that is H ≤ k, with the boundary count k + 1 decided by a coin of
    probability γ, k and γ chosen so that P_p(decide q) = α exactly.  The
    type-II error β_n = P_q(decide p) then decays like exp(−n·KL(p‖q)) (Stein's
    lemma).  The llr is monotone in H, so k is found by a search over head
    counts (:func:`_level_boundary`) rather than by tabulating all n + 1; β_n
    is summed in log space (:mod:`sim.binomial`), so it keeps its logarithm
    long after it underflows.  Returns (β_n, log β_n).
    """
    flip = math.log(p / q) < math.log((1 - p) / (1 - q))
    if flip:  # count tails instead, so that the llr increases with the count
        p, q = 1 - p, 1 - q
    k = _level_boundary(n, p, alpha)
    below = float(stats.binom.cdf(k, n, p)) if k >= 0 else 0.0
    atom = math.exp(float(log_pmf(np.array([k + 1]), n, p)[0]))
    gamma = (alpha - below) / atom if atom > 0 else 0.0
    # β = P_q(H > k + 1) + (1 − γ) P_q(H = k + 1)
    log_terms = [log_tail(k + 2, n, q, upper=True)]
    if gamma < 1.0:
        log_terms.append(math.log1p(-gamma) + float(log_pmf(np.array([k + 1]), n, q)[0]))
    log_beta = float(special.logsumexp(log_terms))
    return math.exp(log_beta), log_beta


def _level_boundary(n: int, p: float, alpha: float) -> int:
    """The largest k in −1…n with P_p(H ≤ k) ≤ α (−1 when even P(H = 0) exceeds α).

    The cdf is monotone in k, so the boundary is bracketed by doubling steps
    from the normal approximation's guess (a few standard deviations at
    most from it, for any n) and then bisected: O(log n) evaluations of
    scipy's cdf, never a table of the n + 1 counts.  (scipy's own quantile
    gives up beyond n ≈ 10¹².)
    """

    def within(k: int) -> bool:
        return k < 0 or (k < n and float(stats.binom.cdf(k, n, p)) <= alpha)

    sd = math.sqrt(n * p * (1.0 - p))
    guess = int(min(max(math.floor(n * p + float(stats.norm.ppf(alpha)) * sd), -1), n))
    step = 1
    if within(guess):
        lo, hi = guess, guess + 1
        while within(hi):
            lo, hi, step = hi, min(n, hi + step), 2 * step
    else:
        lo, hi = guess - 1, guess
        while not within(lo):
            lo, hi, step = max(-1, lo - step), lo, 2 * step
    while hi - lo > 1:  # within(lo), not within(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if within(mid) else (lo, mid)
    return lo
