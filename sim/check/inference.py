"""Tests of one number against theory, each giving a two-sided p-value.

Every test of a results folder that involves chance ends in a p-value, so
that one Bonferroni correction covers them all and its decision is stated
once: a test fails when p ≤ α/m.  For reading, each p-value is also given as
the equivalent normal |z| (the z whose two-sided normal tail is p).

``binomial``
    An exact test of a count against Binomial(R, π): no approximation.
``normal``
    The usual z-test of a mean (or a sample variance) with an exact
    standard error; used only where the normal approximation is adequate at
    the Bonferroni level (see :func:`normal_is_adequate`).
``bernstein``
    Bernstein's inequality for a mean of R independent values with an exact
    variance (or an upper bound on it) and known bounds on the values:
    P(mean − μ ≥ t) ≤ exp(−R t²/(2σ² + 2bt/3)), b the largest excess of a
    value over μ (and likewise below).  Valid for every law, so a rare event
    that dominates the variance cannot raise the false-alarm rate; the price
    is power where b is large against σ√R.
``bernstein_variance``
    The same for a sample variance s² (a U-statistic of order 2 with kernel
    (x − y)²/2 ∈ [0, B²/2], B the range of the values): by Hoeffding's
    reduction to ⌊R/2⌋ independent pairs, P(s² − σ² ≥ t) ≤
    exp(−⌊R/2⌋ t²/(2v + 2bt/3)) with v = Var((x − y)²/2) = (μ4 + σ⁴)/2.
"""

from __future__ import annotations

import math

from scipy import stats

#: Standardised skewness and excess kurtosis of a mean of R replicates up to
#: which its normal approximation is trusted at |z| ≈ 5: the Edgeworth
#: corrections γ(z²−1)/6 and κ(z⁴ − 6z² + 3)/24 then change a tail of
#: 1e-6 by at most a factor of about two.
MAX_SKEW = 0.07
MAX_KURTOSIS = 0.005


def equivalent_z(p_value: float, sign: float = 1.0) -> float:
    """The normal z whose two-sided tail is ``p_value``, with the sign of the deviation."""
    p_value = min(max(p_value, 0.0), 1.0)
    z = float(stats.norm.isf(p_value / 2.0))
    return math.copysign(z, sign) if sign else z


def normal(deviation: float, se: float) -> float:
    """Two-sided p-value of a deviation from exact theory with standard error ``se``."""
    if se <= 0.0:
        return 0.0 if deviation != 0.0 else 1.0
    return float(2.0 * stats.norm.sf(abs(deviation) / se))


def binomial(count: int, trials: int, prob: float) -> float:
    """Exact two-sided p-value of ``count`` successes in ``trials`` against Binomial(trials, prob).

    Twice the smaller tail (at most 1).  A count that is impossible under
    ``prob`` (any count but 0 when prob = 0) has p = 0.
    """
    if prob <= 0.0:
        return 1.0 if count == 0 else 0.0
    if prob >= 1.0:
        return 1.0 if count == trials else 0.0
    low = float(stats.binom.cdf(count, trials, prob))
    high = float(stats.binom.sf(count - 1, trials, prob))
    return min(1.0, 2.0 * min(low, high))


def _bernstein_tail(t: float, r: float, variance: float, b: float) -> float:
    if t <= 0.0:
        return 1.0
    denominator = 2.0 * variance + 2.0 * max(b, 0.0) * t / 3.0
    if denominator <= 0.0:
        return 0.0
    return math.exp(-r * t * t / denominator)


def bernstein(deviation: float, r: int, sd: float, above: float, below: float) -> float:
    """Two-sided p-value bound of a mean's deviation by Bernstein's inequality.

    Parameters
    ----------
    deviation : float
        mean − μ.
    r : int
        Number of independent values averaged.
    sd : float
        The sd of one value, or an upper bound on it.
    above, below : float
        Upper bounds on X − μ and on μ − X.

    Everything is divided by the largest of ``sd``, ``above`` and ``below``
    first (the bound is scale-free), so values of 1e-200, whose squares
    underflow, are judged as values of 1 are.
    """
    unit = max(sd, above, below)
    if not unit > 0.0 or not math.isfinite(unit):
        return 1.0 if deviation == 0.0 else (0.0 if unit == 0.0 else 1.0)
    deviation, variance, above, below = deviation / unit, (sd / unit) ** 2, above / unit, below / unit
    if deviation > 0.0:
        return min(1.0, 2.0 * _bernstein_tail(deviation, r, variance, above))
    return min(1.0, 2.0 * _bernstein_tail(-deviation, r, variance, below))


def bernstein_variance(s: float, sigma: float, beta2: float, value_range: float, r: int) -> float:
    """Two-sided p-value bound of a sample sd ``s`` against σ (see the module notes).

    ``beta2`` is μ4/σ⁴, or nan when unknown, in which case μ4 ≤ B²σ² (B the
    range of the values) is used.  Everything is divided by the largest of
    σ, s and B first, so tiny values are judged as values of 1 are.
    """
    unit = max(sigma, s, value_range)
    if not unit > 0.0 or not math.isfinite(unit):
        return 1.0
    sigma2 = (sigma / unit) ** 2
    s2 = (s / unit) ** 2
    b = value_range / unit
    mu4 = beta2 * sigma2 * sigma2 if not math.isnan(beta2) else b * b * sigma2
    pairs = r // 2
    v = (mu4 + sigma2 * sigma2) / 2.0
    deviation = s2 - sigma2
    if deviation > 0.0:
        tail = _bernstein_tail(deviation, pairs, v, b * b / 2.0 - sigma2)
    else:
        tail = _bernstein_tail(-deviation, pairs, v, sigma2)
    return min(1.0, 2.0 * tail)


def chebyshev(deviation: float, se: float) -> float:
    """Two-sided p-value bound P(|X − EX| ≥ |deviation|) ≤ se²/deviation² (any law with that sd)."""
    if deviation == 0.0:
        return 1.0
    return min(1.0, (se / deviation) ** 2)


def normal_is_adequate(skew: float, excess_kurtosis: float, r: int) -> bool:
    """Whether a mean of ``r`` values with this one-value skewness and kurtosis is normal enough.

    The mean's skewness is γ/√R and its excess kurtosis κ/R; both must be
    within :data:`MAX_SKEW` and :data:`MAX_KURTOSIS`.  Unknown (nan) moments
    are not adequate.
    """
    if math.isnan(skew) or math.isnan(excess_kurtosis):
        return False
    return abs(skew) / math.sqrt(r) <= MAX_SKEW and abs(excess_kurtosis) / r <= MAX_KURTOSIS


#: The sample variance's leading fluctuation, (β2 − 1)σ⁴/R, must exceed its
#: second-order one, 2σ⁴/R², this many times for s² to be treated as normal.
MIN_VARIANCE_ORDER_RATIO = 100.0


def variance_is_normal(skew: float, excess_kurtosis: float, r: int) -> bool:
    """Whether a sample variance of ``r`` values may be z-tested with Var(s²) from μ4.

    Beyond :func:`normal_is_adequate`, the law must not be nearly two-point
    (β2 = κ + 3 near 1): s² is then almost a function of the mean near its
    maximum, its fluctuation second-order, and the μ4-based standard error
    far too small (a tilted estimate whose weights are all about 1 is such a
    case).
    """
    if not normal_is_adequate(skew, excess_kurtosis, r):
        return False
    beta2 = excess_kurtosis + 3.0
    return (beta2 - 1.0) * r / 2.0 >= MIN_VARIANCE_ORDER_RATIO
