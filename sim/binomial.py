"""Binomial probabilities in log space, accurate and cheap for n up to 2⁵³.

scipy's Binomial pmf, cdf and sf (Boost) are accurate as long as they do not
underflow, but ``binom.logpmf`` is a difference of ``gammaln`` values that
loses about |log n!|·1e-16 absolutely (3e-3 at n = 10¹²), and ``logcdf`` and
``logsf`` are the logarithms of the underflowed values (−inf for a tail of
1e-400).  The exact references of the likelihood-ratio test need such tails
at n = 10¹² and beyond, so this module provides:

:func:`log_pmf`
    Loader's saddle-point form (as in R's ``dbinom``): Stirling remainders
    and the deviance k log(k/np) + (n − k) log((n − k)/(n(1 − p))) written as
    n p h(k/(np) − 1) + n(1 − p) h(…) with h(r) = (1 + r) log(1 + r) − r
    evaluated by :func:`sim.distributions.xlog1px_minus_x`; no cancellation
    between large numbers, so the result has the relative precision of its
    own size.
:func:`log_tail`
    log P(H ≤ h) or log P(H ≥ h).  Where the tail is above 1e-280 it is
    scipy's (Boost's) value; a smaller tail lies beyond the mode and is
    summed from the boundary outwards in log space (see :func:`log_tail`),
    with a number of terms set by how fast the terms fall, not by n; where
    they fall too slowly for that (n beyond ~10¹¹, a boundary a few hundred
    standard deviations out) the sum is integrated by Euler–Maclaurin.

Memory is bounded by one chunk of :data:`CHUNK` terms whatever n is.  Boost's
own values, used for tails above 1e-280, carry a relative error that grows
with n: up to 5e-7 at n = 2⁵³ and 1e-8 at n = 10¹³ (tails 3 to 30 standard
deviations out), 1e-15 at n = 10⁴.  The summed and integrated tails below
1e-280 are within 1e-14 relative of their logarithm at every n up to 2⁵³.
(Both measured against the incomplete-beta integral in 50-digit decimals,
``tests/test_binomial.py``.)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special, stats

from .distributions import two_product, xlog1px_minus_x

#: Tails above this come from scipy's (Boost's) cdf/sf, which are accurate there.
SCIPY_FLOOR = 1e-280
#: Largest number of terms evaluated at once when summing a tail.
CHUNK = 1 << 16
#: Tails whose terms fall more slowly than this many terms allow are integrated instead.
MAX_TERMS = 1 << 20
#: Gauss–Laguerre nodes of :func:`_integral_lower_tail`.
LAGUERRE_NODES = 48
#: A tail sum stops when what is left is below this fraction of what is summed.
RELATIVE_REMAINDER = 1e-17

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _stirlerr(x: np.ndarray) -> np.ndarray:
    """log(x!) − ((x + ½) log x − x + ½ log 2π), the Stirling remainder, for x ≥ 1.

    Beyond 15 its asymptotic series (five terms, error below 1e-17 relative
    there); below, the definition, where the logarithms are small enough not
    to cancel.
    """
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    big = x > 15.0
    xb = x[big]
    inv2 = 1.0 / (xb * xb)
    out[big] = (
        1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0)))
    ) / xb
    xs = x[~big]
    out[~big] = special.gammaln(xs + 1.0) - (xs + 0.5) * np.log(xs) + xs - _HALF_LOG_2PI
    return out


def _deviance(k: np.ndarray, n: float, p: float, q: float, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """Σ y log(y/m) + m − y over heads and tails, y the counts k + shift and n − k − shift.

    Each term is m·h((y − m)/m) with h(r) = (1 + r) log(1 + r) − r.  The
    deviations y − m are what matter: rounding n·p (by up to 1e-4 at
    n = 10¹²) would move the result by |y − m|/m times that.  So the
    deviation of the smaller of p and q is formed exactly, carrying the
    product's rounding error ``lo``, with ``shift`` added to the deviation
    rather than to the (integer, exact) k, which it would round; the other
    deviation is its negative (the two counts sum to n), so 1 − p never
    enters rounded.
    """
    if p <= q:
        hi, lo = two_product(n, p)
        dev_h = ((k - hi) - lo) + shift
        dev_t = -dev_h
    else:
        hi, lo = two_product(n, q)
        dev_t = (((n - k) - hi) - lo) - shift
        dev_h = -dev_t
    mean_h, mean_t = n * p, n * q
    return mean_h * xlog1px_minus_x(dev_h / mean_h) + mean_t * xlog1px_minus_x(dev_t / mean_t)


def log_pmf(k, n: int, p: float, p_bar: float | None = None, shift=0.0) -> np.ndarray:
    """log P(H = k) for H ~ Binomial(n, p), accurate for n up to 2⁵³.

    Parameters
    ----------
    k : array_like
        Head counts (integers as floats or ints); outside 0…n gives −inf.
    n : int
        Number of trials.
    p : float
        Success probability.
    p_bar : float, optional
        1 − p, when it is known more accurately than ``1 - p`` (a tilted
        probability computed from logarithms).
    shift : array_like, optional
        Evaluate the continuation (Stirling's series) at the real point
        k + shift, keeping its deviation from the mean exact although
        k + shift itself would be rounded; 0 < k + shift < n is assumed.

    Returns
    -------
    numpy.ndarray
        The log-probabilities, with the relative precision of their own size.
    """
    q = 1.0 - p if p_bar is None else p_bar
    nf = float(n)
    if np.any(shift):
        k, shift = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(shift, dtype=float))
        at = k + shift
        return _loader_form(nf, at, nf - at, _deviance(k, nf, p, q, shift))
    k = np.asarray(k, dtype=float)
    out = np.full(k.shape, -math.inf)
    inside = (k >= 0) & (k <= nf)
    if p == 0.0 or q == 0.0:
        out[k == (0.0 if p == 0.0 else nf)] = 0.0
        return out
    edge0, edge1 = inside & (k == 0), inside & (k == nf)
    out[edge0] = nf * (math.log1p(-p) if p_bar is None else math.log(q))
    out[edge1] = nf * math.log(p)
    mid = inside & ~edge0 & ~edge1
    km = k[mid]
    out[mid] = _loader_form(nf, km, nf - km, _deviance(km, nf, p, q))
    return out


def _loader_form(nf: float, at: np.ndarray, rest: np.ndarray, deviance: np.ndarray) -> np.ndarray:
    """Loader's saddle-point form of log P(H = at), ``rest`` = n − at, given :func:`_deviance` there."""
    return (
        _stirlerr(np.array([nf]))[0]
        - _stirlerr(at)
        - _stirlerr(rest)
        - deviance
        - _HALF_LOG_2PI
        + 0.5 * (math.log(nf) - np.log(at) - np.log(rest))
    )


def log_tail(h: int, n: int, p: float, *, upper: bool = False, p_bar: float | None = None) -> float:
    """log P(H ≤ h) (or log P(H ≥ h) with ``upper``) for H ~ Binomial(n, p).

    Where scipy's tail is at least :data:`SCIPY_FLOOR` it is used as is.  A
    smaller tail cannot contain the mode (the tail from the mode outwards
    holds at least the mode's probability, ≥ 1/(n + 1) > 1e-16), so its terms
    pmf(c), c running from h away from the mode, fall monotonically: the
    ratio of consecutive terms, ρ(c) = c(1 − p)/((n − c + 1)p) for the lower
    tail, is < 1 and shrinks as c moves outwards.  Everything beyond a term
    t_c is therefore below t_c·ρ/(1 − ρ) (a geometric series), and the sum
    stops once that bound is below :data:`RELATIVE_REMAINDER` (1e-17) of the
    sum so far: the result is exact to rounding.  The terms are summed in
    log space in chunks; each chunk starts from :func:`log_pmf` and
    accumulates the exact log-ratios, so rounding does not build up over
    more than :data:`CHUNK` steps.  The number of terms is about
    39/|log ρ(h)|: a handful when the boundary is a fixed fraction of n
    away from the mean, but up to ~5·10⁷ at n = 2⁵³ when it is only the ~37
    standard deviations that make the tail that small; beyond
    :data:`MAX_TERMS` terms the tail is integrated instead
    (:func:`_integral_lower_tail`), in 48 evaluations.

    Parameters
    ----------
    h : int
        The boundary count (included in the tail).
    n : int
        Number of trials.
    p : float
        Success probability.
    upper : bool
        The upper tail P(H ≥ h) instead of P(H ≤ h).
    p_bar : float, optional
        1 − p, when known more accurately than ``1 - p``.

    Returns
    -------
    float
        The log-probability: −inf for an empty tail, 0.0 for a certain one.
    """
    q = 1.0 - p if p_bar is None else p_bar
    if upper:  # P(H ≥ h) = P(T ≤ n − h) for the tails T = n − H ~ Binomial(n, q)
        return _log_lower_tail(n - h, n, q, p)
    return _log_lower_tail(h, n, p, q)


def _log_lower_tail(h: int, n: int, p: float, q: float) -> float:
    """log P(H ≤ h) for H ~ Binomial(n, p), q = 1 − p: scipy's where it is accurate, else summed.

    See :func:`log_tail`.
    """
    if h < 0:
        return -math.inf
    if h >= n:
        return 0.0
    if p == 0.0:
        return 0.0
    if q == 0.0:
        return -math.inf
    # scipy's cdf(h) = P(T ≥ n − h) under q is evaluated symmetrically by Boost;
    # the cdf for the smaller of p, q keeps 1 − p from rounding a tiny p away
    value = float(stats.binom.cdf(h, n, p)) if p <= q else float(stats.binom.sf(n - h - 1, n, q))
    if value >= SCIPY_FLOOR:
        return math.log(value)
    return _summed_lower_tail(h, n, p, q)


def _summed_lower_tail(h: int, n: int, p: float, q: float, *, method: str | None = None) -> float:
    """log Σ_{c ≤ h} pmf(c) for a tail that excludes the mode (see :func:`log_tail`).

    Terms are summed one by one (``"terms"``) while about 45 decay lengths
    L = −1/log ρ(h) take at most :data:`MAX_TERMS` terms; beyond, by
    Euler–Maclaurin (``"integral"``, :func:`_integral_lower_tail`).
    """
    log_odds = math.log(q) - math.log(p)  # log((1 − p)/p)
    log_rho = math.log(h / (float(n) - h + 1.0)) + log_odds if h > 0 else -math.inf
    if method is None:
        method = "terms" if log_rho < 0 and -45.0 / log_rho <= MAX_TERMS else "integral"
    if method == "integral":
        return _integral_lower_tail(h, n, p, q)
    total = -math.inf
    top = h
    size = 64
    while top >= 0:
        c = top - np.arange(min(size, top + 1), dtype=float)
        # log pmf(c − 1)/pmf(c) = log(c/(n − c + 1)) + log((1 − p)/p): one rounding per step
        steps = np.log(c[:-1] / (float(n) - c[:-1] + 1.0)) + log_odds
        logs = np.empty(c.size)
        logs[0] = log_pmf(np.array([c[0]]), n, p, q)[0]
        np.cumsum(steps, out=logs[1:])
        logs[1:] += logs[0]
        total = float(np.logaddexp(total, special.logsumexp(logs)))
        last = float(c[-1])
        if last <= 0:
            break
        # the next ratio bounds every later one: the rest is below t·ρ/(1 − ρ)
        log_rho = math.log(last / (float(n) - last + 1.0)) + log_odds
        if log_rho < 0 and logs[-1] + log_rho - math.log(-math.expm1(log_rho)) <= total + math.log(
            RELATIVE_REMAINDER
        ):
            break
        top = int(last) - 1
        size = min(2 * size, CHUNK)
    return total


def log_prob_in(side: str, h: int, n: int, p: float, p_bar: float | None = None) -> float:
    """log P(H ≤ h) for ``side == "le"``, log P(H ≥ h) for ``"ge"`` (see :func:`log_tail`)."""
    return log_tail(h, n, p, upper=side == "ge", p_bar=p_bar)


@functools.cache
def _laguerre() -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.laguerre.laggauss(LAGUERRE_NODES)


def _integral_lower_tail(h: int, n: int, p: float, q: float) -> float:
    """log Σ_{j ≥ 0} f(j), f(x) = pmf(h − x) continued to real x, by Euler–Maclaurin.

    Used when the terms fall slowly: their decay length L = −1/g′(0), g = log f,
    is above ~2·10⁴ (only for n beyond ~10¹¹ and a boundary within a few
    hundred standard deviations of the mean).  Then

        Σ_{j≥0} f(j) = ∫₀^∞ f + f(0)/2 − f′(0)/12 + f‴(0)/720 − …,

    where the f‴ term is below f(0)/(720 L³), under 1e-17 of the sum ≈ L f(0).
    The integral is L·f(0)·∫₀^∞ e^{−y} u(y) dy with u(y) = f(Ly)/f(0)·e^{y}
    = exp(g″L²y²/2 + …): g″ ≈ −1/(np(1 − p)) and L ≈ sd/z for a boundary z
    standard deviations out (z > 30 for a tail this small), so u is a
    smooth, slowly varying function (a Gaussian of width z√2 ≥ 40 in y), on
    which Gauss–Laguerre quadrature with 48 nodes is exact to rounding
    (checked against the term-by-term sum in the tests).  f is continued by
    :func:`log_pmf` at real arguments (Stirling's series), g′(0) is
    ψ(h + 1) − ψ(n − h + 1) + log((1 − p)/p).  Terms below c = 0 do not
    exist, but lie hundreds of decay lengths out, where f is negligible.
    """
    slope = float(special.digamma(h + 1.0) - special.digamma(float(n) - h + 1.0)) + math.log(q / p)
    length = -1.0 / slope
    nodes, weights = _laguerre()
    log_f0 = float(log_pmf(np.array([float(h)]), n, p, q)[0])
    log_u = log_pmf(float(h), n, p, q, shift=-length * nodes) - log_f0 + nodes
    integral = length * float(np.dot(weights, np.exp(log_u)))
    # f(0)/2 − f′(0)/12 with f′(0) = f(0)·g′(0) = −f(0)/L
    return log_f0 + math.log(integral + 0.5 + 1.0 / (12.0 * length))
