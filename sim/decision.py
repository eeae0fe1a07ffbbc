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

This module is the numerical core of issue #8; the configs, summaries,
figures and ``sim check`` wiring build on it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from .distributions import Pair, coin

#: Terms summed for a Binomial tail too small for scipy's log-CDF (they fall
#: geometrically: far fewer than this reach within 1e-16 of the first).
TAIL_TERMS = 20_000


@dataclass(frozen=True)
class Chernoff:
    """Chernoff information C(p, q) (nats) and the minimising tilt s*."""

    information: float
    s: float


def _log_mgf(pair: Pair, s: float) -> float:
    """log Σ_k p_k^{1−s} q_k^s, as log1p(Σ p_k expm1(−s·log(p_k/q_k))) over p's support.

    Categories p lacks contribute nothing for s < 1 (0^{1−s} = 0).  The
    form keeps the digits of a small sum (p close to q), where
    log Σ p^{1−s} q^s would be the log of 1 plus rounding.
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
    """
    if pair.kl_pq == 0.0:
        return Chernoff(0.0, 0.5)
    if _slope(pair, 1.0) >= 0.0:
        s = 1.0
    else:
        s = float(
            optimize.brentq(
                lambda t: _slope(pair, t),
                0.0,
                1.0,
                xtol=np.finfo(float).tiny,
                rtol=4 * np.finfo(float).eps,
                maxiter=500,
            )
        )
    return Chernoff(max(0.0, -_log_mgf(pair, s)), s)


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
    tie = abs(t - nearest) <= 64 * np.finfo(float).eps * max(abs(t), 1.0)
    if a > 0:  # llr increases with H: wrong for H ≤ t (< t when strict)
        h = (nearest - 1 if strict else nearest) if tie else math.floor(t)
        return ("le", int(min(n, max(-1, h))))
    h = (nearest + 1 if strict else nearest) if tie else math.ceil(t)
    return ("ge", int(max(0, min(n + 1, h))))


def coin_p_wrong(p: float, q: float, n: int, *, strict: bool = False) -> tuple[float, float]:
    """Exact P_p(llr_n ≤ 0) (or < 0 with ``strict``) for coins: (probability, its log).

    The Binomial tail comes from scipy's log-CDF; where that underflows (a
    probability like 1e-40000 at n = 10⁶) the tail is summed in log space from
    its largest terms, which decay geometrically away from the boundary.
    """
    side, h = coin_wrong_bound(p, q, n, strict=strict)
    if (side == "le" and h < 0) or (side == "ge" and h > n):
        return 0.0, -math.inf
    if side == "le":
        log_prob = float(stats.binom.logcdf(h, n, p))
        terms = np.arange(h, max(-1, h - TAIL_TERMS), -1)
    else:
        log_prob = float(stats.binom.logsf(h - 1, n, p))
        terms = np.arange(h, min(n + 1, h + TAIL_TERMS))
    if not log_prob > -700.0:
        log_prob = float(special.logsumexp(stats.binom.logpmf(terms, n, p)))
    return math.exp(log_prob), log_prob


#: Largest n for which the tilted estimator's exact moments are summed (one term per head count).
TILTED_EXACT_MAX_N = 10**7


def coin_tilted_moments(p: float, q: float, n: int) -> tuple[float, float, float]:
    """Exact mean, sd and 4th central moment of one tilted replicate w·1{llr ≤ 0}, for a coin.

    X = w·1{wrong} under r has E[X^k] = Σ_{h wrong} pmf_p(h)^k / pmf_r(h)^(k−1),
    summed in log space over the wrong head counts; nan beyond
    ``TILTED_EXACT_MAX_N`` (never approximated).
    """
    pair = Pair(coin(p), coin(q))
    side, h = coin_wrong_bound(p, q, n)
    if n > TILTED_EXACT_MAX_N:
        return math.nan, math.nan, math.nan
    heads = np.arange(0, h + 1) if side == "le" else np.arange(max(h, 0), n + 1)
    if heads.size == 0:
        return 0.0, 0.0, 0.0
    r = tilted(pair, chernoff(pair).s)[0]
    lp, lr = stats.binom.logpmf(heads, n, p), stats.binom.logpmf(heads, n, r)
    raw = [math.exp(float(special.logsumexp(k * lp - (k - 1) * lr))) for k in (1, 2, 3, 4)]
    m = raw[0]
    var = max(raw[1] - m * m, 0.0)
    mu4 = raw[3] - 4 * m * raw[2] + 6 * m * m * raw[1] - 3 * m**4
    return m, math.sqrt(var), max(mu4, 0.0)


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
        wrong = value <= 64 * np.finfo(float).eps * (counts @ np.abs(ell[idx]))
    values = np.where(wrong, np.exp(log_w), 0.0)
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if replicates > 1 else math.inf
    return ImportanceEstimate(mean, sd / math.sqrt(replicates), replicates, c.s)


# --------------------------------------------------------------------------
# Stein's lemma


def coin_stein(p: float, q: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact type-II error of the level-α Neyman–Pearson test of p against q, for coins.

    The test decides q when the llr is small: for a = log(p/q) − log((1−p)/(1−q))
    > 0 that is H ≤ k, with the boundary count k + 1 decided by a coin of
    probability γ, k and γ chosen so that P_p(decide q) = α exactly.  The
    type-II error β_n = P_q(decide p) then decays like exp(−n·KL(p‖q)) (Stein's
    lemma).  Returns (β_n, log β_n), in log space throughout.
    """
    flip = math.log(p / q) < math.log((1 - p) / (1 - q))
    if flip:  # count tails instead, so that the llr increases with the count
        p, q = 1 - p, 1 - q
    cdf_p = stats.binom.cdf(np.arange(n + 1), n, p)
    k = int(np.searchsorted(cdf_p, alpha, side="right")) - 1  # largest k with P_p(H ≤ k) ≤ α
    below = cdf_p[k] if k >= 0 else 0.0
    atom = stats.binom.pmf(k + 1, n, p)
    gamma = (alpha - below) / atom if atom > 0 else 0.0
    # β = P_q(H > k + 1) + (1 − γ) P_q(H = k + 1)
    log_terms = [float(stats.binom.logsf(k + 1, n, q))]
    if gamma < 1.0:
        log_terms.append(math.log1p(-gamma) + float(stats.binom.logpmf(k + 1, n, q)))
    log_beta = float(special.logsumexp(log_terms))
    return math.exp(log_beta), log_beta
