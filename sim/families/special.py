"""Special functions the parametric families need, each to full relative precision where it is small.

* :func:`log1p_excess`: u − log(1 + u), the KL of two exponentials (and half the normals' variance term);
* :func:`polygamma_excess`: |ψ⁽ᵐ⁾(x)| less its leading term (m − 1)!/xᵐ, the cumulants of a Gamma's log;
* :func:`gamma_log_cumulants`: the cumulants of y·V/k − log V, V ~ Gamma(k), which is what the
  exponential and normal plug-in estimators are;
* :func:`lattice_moments`: the first four moments of f(S) for an integer S with a known log pmf,
  summed over a window of its law, on a stride where the law is wide.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..binomial import _stirlerr
from ..distributions import xlog1px_minus_x

#: Below this |u|, u − log(1 + u) is its series Σ_{j≥2} (−u)^j/j, to u^40 (0.25^39 < 1e-23).
_LOG1P_SERIES_RADIUS = 0.25
_LOG1P_SERIES = np.array([(-1.0) ** j / j for j in range(2, 41)])


def log1p_excess(u) -> np.ndarray:
    """u − log(1 + u) for u > −1, elementwise, ≥ 0, to full relative precision near 0 (≈ u²/2)."""
    shape = np.shape(u)
    u = np.atleast_1d(np.asarray(u, dtype=float))
    with np.errstate(divide="ignore"):
        out = u - np.log1p(u)
    small = np.abs(u) < _LOG1P_SERIES_RADIUS
    if small.any():
        us = u[small]
        acc = np.zeros_like(us)
        for c in _LOG1P_SERIES[::-1]:
            acc = acc * us + c
        out[small] = acc * us * us
    return np.maximum(out, 0.0).reshape(shape)


def ratio_excess(num, den) -> np.ndarray:
    """ρ − 1 − log ρ for ρ = num/den > 0, elementwise: :func:`log1p_excess` of (num − den)/den near 1,
    and log ρ as log num − log den elsewhere (log1p(ρ − 1) would lose ρ's digits for ρ ≪ 1)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    u = (num - den) / den
    with np.errstate(divide="ignore"):
        far = u - (np.log(num) - np.log(den))
    return np.where(
        np.abs(u) < _LOG1P_SERIES_RADIUS, log1p_excess(np.clip(u, -0.5, 0.5)), np.maximum(far, 0.0)
    )


#: From here on the asymptotic series of ψ⁽ᵐ⁾ is used (its terms below 1e-17 of the sum for m ≤ 3).
_POLYGAMMA_SERIES_FROM = 20.0
#: Bernoulli numbers B_2, B_4, …, B_16.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)


def polygamma_excess(m: int, x: float) -> float:
    """(−1)^(m+1) ψ⁽ᵐ⁾(x) − (m − 1)!/x^m for m = 1, 2, 3 and x > 0: positive, ≈ m!/(2x^(m+1)).

    No cancellation: below :data:`_POLYGAMMA_SERIES_FROM` the recurrence
    ψ⁽ᵐ⁾(x) = ψ⁽ᵐ⁾(x + 1) + (−1)^(m+1) m!/x^(m+1) carries x up, each of its
    steps written as one positive fraction; beyond it, the asymptotic series
    without its first term.
    """
    if m not in _STEPS:
        raise ValueError(f"polygamma_excess is written for m = 1, 2, 3, not {m}")
    total = 0.0
    while x < _POLYGAMMA_SERIES_FROM:
        total += _STEPS[m](x)
        x += 1.0
    series = math.factorial(m) / (2.0 * x ** (m + 1))
    for j, b in enumerate(_BERNOULLI, start=1):
        series += b * math.factorial(2 * j + m - 1) / (math.factorial(2 * j) * x ** (2 * j + m))
    return total + series


#: E_m(x) − E_m(x + 1), with E_m the excess above, as one positive fraction each.
_STEPS: dict[int, Callable[[float], float]] = {
    1: lambda x: 1.0 / (x * x * (x + 1.0)),
    2: lambda x: (3.0 * x + 2.0) / (x**3 * (x + 1.0) ** 2),
    3: lambda x: (12.0 * x * x + 16.0 * x + 6.0) / (x**4 * (x + 1.0) ** 3),
}


def gamma_log_cumulants(k: float, y_minus_1: float) -> tuple[float, float, float]:
    """Cumulants κ₂, κ₃, κ₄ of Z = y·V/k − log V, V ~ Gamma(k, 1), y = 1 + ``y_minus_1``.

    The cumulant generating function is log Γ(k − t) − log Γ(k) − (k − t) log(1 − yt/k), whence
    κ_r = (−1)^r ψ⁽ʳ⁻¹⁾(k) + (r − 2)!·((r − 1)y^r − r y^(r−1))/k^(r−1); the polygamma's leading term
    (r − 2)!/k^(r−1) is folded into the polynomial, which then has a double root at y = 1:
    κ₂ = E₁(k) + (y − 1)²/k, κ₃ = E₂(k) + (y − 1)²(2y + 1)/k², κ₄ = E₃(k) + 2(y − 1)²(3y² + 2y + 1)/k³,
    every term positive (E from :func:`polygamma_excess`).
    """
    y, d2 = 1.0 + y_minus_1, y_minus_1 * y_minus_1
    return (
        polygamma_excess(1, k) + d2 / k,
        polygamma_excess(2, k) + d2 * (2.0 * y + 1.0) / k**2,
        polygamma_excess(3, k) + 2.0 * d2 * (3.0 * y * y + 2.0 * y + 1.0) / k**3,
    )


def poisson_log_pmf(x: np.ndarray, mu: float) -> np.ndarray:
    """log P(X = x), X ~ Poisson(mu), in Loader's form: −½log(2πx) − stirlerr(x) − mu·h(x/mu − 1).

    No term grows with mu (x log mu − mu − log x! would lose |x log mu|·ε); log P(0) = −mu.
    """
    x, mu = np.asarray(x, dtype=float), float(mu)
    out = np.full(x.shape, -mu)
    pos = x > 0
    xp = x[pos]
    out[pos] = -0.5 * np.log(2.0 * math.pi * xp) - _stirlerr(xp) - mu * xlog1px_minus_x((xp - mu) / mu)
    return out


def negative_binomial_log_pmf(s: np.ndarray, n: float, theta: float) -> np.ndarray:
    """log P(S = s), S the failures before the n-th success (success probability theta), in Loader's form.

    P(S = s) = n/(n + s)·Binomial(n; n + s, theta), and the Binomial's log pmf is
    stirlerr(N) − stirlerr(n) − stirlerr(s) − bd0(n, N·theta) − bd0(s, N·(1 − theta)) + ½log(N/(2π n s)),
    N = n + s, bd0(a, b) = b·h(a/b − 1); the differences a − b are formed as n(1 − theta) − s·theta.
    """
    s, n = np.asarray(s, dtype=float), float(n)
    out = np.full(s.shape, n * math.log(theta))  # s = 0: theta^n
    pos = s > 0
    sp = s[pos]
    total = n + sp
    gap = n * (1.0 - theta) - sp * theta  # n − N·theta = −(s − N·(1 − theta))
    bd0 = total * theta * xlog1px_minus_x(gap / (total * theta)) + total * (1.0 - theta) * xlog1px_minus_x(
        -gap / (total * (1.0 - theta))
    )
    stirling = _stirlerr(total) - _stirlerr(np.array([n]))[0] - _stirlerr(sp)
    binomial = stirling - bd0 + 0.5 * np.log(total / (2.0 * math.pi * n * sp))
    out[pos] = np.log(n / total) + binomial
    return out


#: A law whose sd is at least this is summed on a stride of sd/LATTICE_STRIDE_PER_SD (trapezoid
#: sums of a smooth pmf: their error is about exp(−2π²·16), nothing).
LATTICE_STRIDE_FROM_SD = 8.0
LATTICE_STRIDE_PER_SD = 4.0
#: The window reaches this many sds each side, plus a fixed margin for skewed laws near 0.
LATTICE_SDS = 40.0


def lattice_moments(
    log_pmf: Callable[[np.ndarray], np.ndarray],
    mean: float,
    sd: float,
    values: Callable[[np.ndarray], np.ndarray],
) -> tuple[float, float, float, float]:
    """Mean and central moments 2–4 of values(S) for S ≥ 0 an integer with log pmf ``log_pmf`` (mean, sd).

    The window is mean ± 40 sd (and 400 more on the right, for skewed laws of small mean); a law with
    sd ≥ 8 is summed on an integer stride of ⌊sd/4⌋ with weight stride·pmf.
    """
    stride = max(1, int(sd / LATTICE_STRIDE_PER_SD)) if sd >= LATTICE_STRIDE_FROM_SD else 1
    lo = max(0.0, math.floor(mean - LATTICE_SDS * sd))
    hi = math.ceil(mean + LATTICE_SDS * sd + 400.0)
    s = np.arange(lo, hi + 1.0, stride)
    weights = np.exp(log_pmf(s)) * stride
    weights /= math.fsum(weights)  # 1 up to rounding (and the stride's negligible error)
    v = values(s)
    centre = math.fsum(weights * v)
    dev = v - centre
    return centre, math.fsum(weights * dev**2), math.fsum(weights * dev**3), math.fsum(weights * dev**4)
