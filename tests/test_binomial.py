"""Binomial tails and the likelihood-ratio references at any n up to 2⁵³.

References are independent of the code under test: 60-digit decimal
arithmetic (pmfs by their exact recurrence, log-factorials by Stirling's
series with enough terms), full enumeration at n = 10⁴, and scipy where it is
accurate.  Memory is measured with tracemalloc, never time.
"""

from __future__ import annotations

import math
import tracemalloc
from decimal import Decimal, getcontext, localcontext

import numpy as np
import pytest
from scipy import stats

from sim import binomial as b
from sim import distributions as d
from sim import exact
from sim.decision import chernoff, coin_p_wrong, coin_stein, coin_tilted_moments, coin_wrong_bound, tilted

getcontext().prec = 60
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")


def _ln_factorial(x: int) -> Decimal:
    """ln x! to ~50 digits: exact sum below 200, Stirling's series (error < x^-9) above."""
    if x < 200:
        return sum((Decimal(i).ln() for i in range(2, x + 1)), Decimal(0))
    dx = Decimal(x)
    x2 = dx * dx
    return (
        (dx + Decimal("0.5")) * dx.ln()
        - dx
        + (2 * _PI).ln() / 2
        + 1 / (12 * dx)
        - 1 / (360 * dx * x2)
        + 1 / (1260 * dx * x2 * x2)
        - 1 / (1680 * dx * x2**3)
    )


def _ln_pmf(k: int, n: int, p: float) -> Decimal:
    dp = Decimal(p)
    return _ln_factorial(n) - _ln_factorial(k) - _ln_factorial(n - k) + k * dp.ln() + (n - k) * (1 - dp).ln()


def _pmf_table(n: int, p: float) -> list[Decimal]:
    """Every pmf(0…n) in decimal by the exact recurrence pmf(c + 1) = pmf(c)(n − c)p/((c + 1)(1 − p))."""
    dp = Decimal(p)
    odds = dp / (1 - dp)
    out = [(1 - dp) ** n]
    for c in range(n):
        out.append(out[-1] * (n - c) * odds / (c + 1))
    return out


@pytest.mark.parametrize(
    ("n", "p"), [(10**4, 0.3), (10**12, 0.7), (10**9, 0.999), (2**53, 0.5), (2**53 - 12345, 1e-3)]
)
def test_log_pmf_against_decimal(n, p):
    sd = math.sqrt(n * p * (1 - p))
    ks = sorted({int(n * p + z * sd) for z in (-40, -5, -1, 0, 0.5, 3, 30)} | {1, n // 3, n - 1})
    ks = [k for k in ks if 0 < k < n]
    got = b.log_pmf(np.array(ks, dtype=float), n, p)
    for k, value in zip(ks, got, strict=True):
        ref = float(_ln_pmf(k, n, p))
        # a few ulps of the log itself (scipy's logpmf is off by 3e-3 at n = 10¹²)
        assert value == pytest.approx(ref, rel=4e-15, abs=1e-13), k


@pytest.mark.parametrize("p", [0.3, 0.5, 0.97, 2e-3])
def test_log_tail_against_enumeration_at_n_ten_thousand(p):
    n = 10**4
    pmf = _pmf_table(n, p)
    lower = np.cumsum(pmf)  # decimal partial sums: exact to 60 digits
    upper = np.cumsum(pmf[::-1])[::-1]
    sd = math.sqrt(n * p * (1 - p))
    hs = sorted(
        {max(0, min(n, int(n * p + z * sd))) for z in (-200, -60, -38, -20, -3, 0, 3, 20, 38, 60, 200)}
    )
    for h in hs:
        assert b.log_tail(h, n, p) == pytest.approx(float(lower[h].ln()), rel=1e-13, abs=1e-13), h
        assert b.log_tail(h, n, p, upper=True) == pytest.approx(float(upper[h].ln()), rel=1e-13, abs=1e-13), h
        if lower[h] < Decimal("1e-20"):  # the summed path, forced where scipy would be used
            ref = float(lower[h].ln())
            assert b._summed_lower_tail(h, n, p, 1 - p, method="terms") == pytest.approx(ref, rel=1e-13)


@pytest.mark.parametrize(("n", "p", "z"), [(10**12, 0.7, 40), (10**12, 0.5, 300), (10**12, 0.3, 3000)])
def test_integrated_tail_agrees_with_the_term_by_term_sum(n, p, z):
    # where the terms fall slowly the tail is integrated (Euler–Maclaurin); at
    # n = 10¹² both methods are affordable, and must agree to rounding
    h = int(n * p - z * math.sqrt(n * p * (1 - p)))
    terms = b._summed_lower_tail(h, n, p, 1 - p, method="terms")
    integral = b._summed_lower_tail(h, n, p, 1 - p, method="integral")
    assert integral == pytest.approx(terms, rel=1e-13)
    assert terms < -700  # beyond scipy: the tail underflows a double


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.5, 0.8), (0.31, 0.29)])
def test_p_wrong_and_tilted_moments_against_enumeration_at_n_ten_thousand(p, q):
    n = 10**4
    pair = d.Pair(d.coin(p), d.coin(q))
    r = float(tilted(pair, chernoff(pair).s)[0])
    side, h = coin_wrong_bound(p, q, n)
    wrong = range(0, h + 1) if side == "le" else range(h, n + 1)
    pmf_p, pmf_r = _pmf_table(n, p), _pmf_table(n, r)
    raw = [sum(pmf_p[c] ** k / pmf_r[c] ** (k - 1) for c in wrong) for k in (1, 2, 3, 4)]
    m = raw[0]
    var = raw[1] - m * m
    mu4 = raw[3] - 4 * m * raw[2] + 6 * m * m * raw[1] - 3 * m**4
    log_prob = coin_p_wrong(p, q, n)[1]
    assert log_prob == pytest.approx(float(m.ln()), rel=1e-12)
    mean, sd, fourth = coin_tilted_moments(p, q, n)
    assert mean == pytest.approx(float(m), rel=1e-10)
    assert sd == pytest.approx(float(var.sqrt()), rel=1e-8)
    assert fourth == pytest.approx(float(mu4), rel=1e-6, abs=1e-300)


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.3, 0.6)])
def test_stein_against_enumeration_at_n_ten_thousand(p, q):
    n, alpha = 10**4, 0.05
    if math.log(p / q) < math.log((1 - p) / (1 - q)):
        p, q = 1 - p, 1 - q  # the llr increases with the count of the other face
    cdf = stats.binom.cdf(np.arange(n + 1), n, p)
    k = int(np.searchsorted(cdf, alpha, side="right")) - 1
    gamma = (alpha - cdf[k]) / stats.binom.pmf(k + 1, n, p)
    pmf_q = _pmf_table(n, q)
    beta = sum(pmf_q[k + 2 :], Decimal(0)) + Decimal(1 - gamma) * pmf_q[k + 1]
    assert coin_stein(p, q, n, alpha)[1] == pytest.approx(float(beta.ln()), rel=1e-10)


@pytest.mark.parametrize("n", [10**12, 2**53])
@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.5, 0.8), (0.5, 0.55), (1e-6, 2e-6)])
def test_references_at_huge_n_are_finite_sensible_and_small(n, p, q):
    pair = d.Pair(d.coin(p), d.coin(q))
    tracemalloc.start()
    try:
        prob, log_prob = coin_p_wrong(p, q, n)
        _, log_beta = coin_stein(p, q, n)
        mean, sd, mu4 = coin_tilted_moments(p, q, n)
        bias = exact.plugin_bias(pair, n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # bytes allocated while computing, whatever n is
    assert -log_prob / n == pytest.approx(chernoff(pair).information, rel=0.01)
    assert -log_beta / n == pytest.approx(pair.kl_pq, rel=0.01)
    assert prob == 0.0 and mean == 0.0 and sd == 0.0 and mu4 == 0.0  # e^(−n·C) underflows; no nan, no warning
    assert bias * n == pytest.approx(0.5, rel=1e-3)  # (K − 1)/(2n)


def test_tilted_mean_is_p_wrong_where_it_is_representable_at_huge_n():
    # p and q so close that P(wrong) at n = 2⁵³ is still a double: the tilted
    # estimator is unbiased, so its exact mean is p_wrong itself
    p, q, n = 0.3, 0.3000001, 2**53
    prob = coin_p_wrong(p, q, n)[0]
    mean, sd, mu4 = coin_tilted_moments(p, q, n)
    assert 1e-300 < prob < 1e-10
    assert mean == pytest.approx(prob, rel=1e-6)
    assert 0 < sd < 10 * mean * n**0.25 and math.isfinite(mu4)


def test_testing_figure_at_huge_n_in_bits(tmp_path):
    from sim import figures
    from sim.config import parse_config
    from sim.runner import run_experiment

    text = """
name: huge
seed: 1
replicates: 200
units: bits
n: {max: 9007199254740992, points: 8}
estimators: [llr, p_wrong, p_wrong_tilted]
cases:
  - {name: a, p: 0.7, q: 0.5}
"""
    report = run_experiment(parse_config(text), tmp_path)
    assert report.check.passed, report.check.table()
    tables = figures.load_tables(report.path)
    fig = figures.testing_figure(
        tables["summary"], tables["analytic"], replicates=tables["replicates"], config=tables["config"]
    )
    assert "2^(−n·C)" in fig._suptitle.get_text()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes[0].get_xscale() == "log"  # the exponent view: n spans 16 decades
    assert "log₂" in axes[0].get_ylabel() and "(bits)" in axes[0].get_ylabel()
    exact_curve = next(line for line in axes[0].get_lines() if line.get_label() == "exact (Binomial tail)")
    c = float(tables["analytic"].chernoff.iloc[0])
    assert exact_curve.get_ydata()[-1] == pytest.approx(c, rel=1e-3)
    stein = next(line for line in axes[1].get_lines() if line.get_label().startswith("exact −(1/n) log₂"))
    assert stein.get_ydata()[-1] == pytest.approx(float(tables["analytic"].kl_pq.iloc[0]), rel=1e-3)


# --------------------------------------------------------------------------
# Deep tails at any n against the incomplete-beta integral, in decimals


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)


def _ln_lower_tail_by_integral(h: int, n: int, big_p: Decimal, big_q: Decimal) -> Decimal:
    """ln P(H ≤ h), H ~ Binomial(n, P), Q = 1 − P, for a tail that excludes the mode.

    An independent route: P(H ≤ h) = I_Q(n − h, h + 1), the regularised
    incomplete beta function, = (n − h) C(n, h) ∫_0^Q t^(n−h−1) (1 − t)^h dt.
    With t = Q − u this is pmf(h)·(n − h)/Q·∫_0^Q e^φ(u) du, where
    φ(u) = (n − h − 1) log(1 − u/Q) + h log(1 + u/P) is concave with φ(0) = 0
    and φ′(0) = −λ < 0 (the integrand rises to the end point when the tail
    excludes the mode): so e^φ(u) ≤ e^(−λu), and cutting the integral at
    λu = 80 leaves out less than e^(−80) of it.  The rest, a smooth
    integrand of width ~1 in v = λu, is summed by 16-point Gauss–Legendre
    on panels of width ≤ 2 (its error is far below 1e-20 there; the double
    nodes and weights carry ~1e-16 relative).  φ and ln pmf(h) (Stirling's
    series for the factorials) are evaluated in 50-digit decimals, since φ
    is a difference of terms ~10⁴ times its size at n = 10¹³.
    """
    with localcontext() as ctx:
        ctx.prec = 50
        ln_pmf = (
            _ln_factorial(n) - _ln_factorial(h) - _ln_factorial(n - h) + h * big_p.ln() + (n - h) * big_q.ln()
        )
        a = n - h - 1
        lam = a / big_q - h / big_p
        assert lam > 0, "the tail contains the mode"
        top = min(Decimal(80), lam * big_q)
        panels = int(top / 2) + 1
        width = top / panels
        total = Decimal(0)
        for k in range(panels):
            for x, w in zip(_GL_NODES, _GL_WEIGHTS, strict=True):
                u = (k * width + width * (Decimal(float(x)) + 1) / 2) / lam
                phi = a * (1 - u / big_q).ln() + h * (1 + u / big_p).ln()
                total += Decimal(float(w)) * width / 2 * phi.exp()
        return ln_pmf + ((n - h) / big_q * total / lam).ln()


def _ln_tail_by_integral(h: int, n: int, p: float, *, upper: bool = False) -> float:
    """:func:`_ln_lower_tail_by_integral` for either tail (P(H ≥ h) = P(n − H ≤ n − h))."""
    big_p = Decimal(p)
    if upper:
        return float(_ln_lower_tail_by_integral(n - h, n, 1 - big_p, big_p))
    return float(_ln_lower_tail_by_integral(h, n, big_p, 1 - big_p))


def test_the_integral_oracle_against_enumeration():
    n, p = 10**4, 0.3
    pmf = _pmf_table(n, p)
    lower, upper = np.cumsum(pmf), np.cumsum(pmf[::-1])[::-1]
    sd = math.sqrt(n * p * (1 - p))
    for z in (3, 10, 38, 60):
        lo, hi = int(n * p - z * sd), int(n * p + z * sd)
        assert _ln_tail_by_integral(lo, n, p) == pytest.approx(float(lower[lo].ln()), rel=1e-15, abs=1e-15)
        assert _ln_tail_by_integral(hi, n, p, upper=True) == pytest.approx(
            float(upper[hi].ln()), rel=1e-15, abs=1e-15
        )


@pytest.mark.parametrize(
    "n",
    [10**6, pytest.param(10**9, marks=pytest.mark.slow), pytest.param(10**13, marks=pytest.mark.slow), 2**53],
)  # the fast tier keeps both ends
@pytest.mark.parametrize("p", [0.5, 0.3, 1e-3])
@pytest.mark.parametrize("upper", [False, True], ids=["lower", "upper"])
def test_deep_tails_at_any_n_against_the_integral(n, p, upper):
    # Tails below scipy's floor (1e-280): summed term by term or integrated by
    # Euler–Maclaurin.  Measured within 1e-14 relative (8.6e-15 at z = 1000).
    sd = math.sqrt(n * p * (1 - p))
    for z in (38, 45, 100, 1000):
        h = int(n * p + z * sd) if upper else int(n * p - z * sd)
        if not 0 < h < n:
            continue
        ref = _ln_tail_by_integral(h, n, p, upper=upper)
        assert b.log_tail(h, n, p, upper=upper) == pytest.approx(ref, rel=5e-14), (z, ref)


def _boundary_decimal(p: float, q: float, n: int) -> Decimal:
    """t = −n b/a, where llr_n changes sign, in 50-digit decimals (see ``coin_wrong_bound``)."""
    with localcontext() as ctx:
        ctx.prec = 50
        dp, dq = Decimal(p), Decimal(q)
        b_ = ((1 - dp) / (1 - dq)).ln()
        return -n * b_ / ((dp / dq).ln() - b_)


@pytest.mark.parametrize(
    ("p", "q", "n"),
    [
        (0.5, 0.5000126, 10**13),  # the case: log −798.4045
        (0.5000126, 0.5, 10**13),
        (0.5, 0.5000005, 2**53),
        (0.3, 0.2999995, 2**53),
        (0.7, 0.5, 10**6),
    ],
)
def test_coin_p_wrong_log_at_huge_n_against_the_integral(p, q, n):
    # The event is decided on head counts with ties within 64 ulps of t (as the
    # simulation decides it): at n = 2⁵³ that is a band of ~64 counts around t,
    # beyond double's reach anyway.  The tail beyond the count chosen is tested.
    side, h = coin_wrong_bound(p, q, n)
    t = _boundary_decimal(p, q, n)
    assert side == ("le" if p > q else "ge")
    assert abs(h - t) <= 1 + 64 * np.finfo(float).eps * float(t)
    ref = _ln_tail_by_integral(h, n, p, upper=side == "ge")
    assert ref < math.log(b.SCIPY_FLOOR)  # the summed or integrated path
    assert coin_p_wrong(p, q, n)[1] == pytest.approx(ref, rel=5e-14)
    if (p, q, n) == (0.5, 0.5000126, 10**13):
        assert ref == pytest.approx(-798.4045441995, abs=1e-9)


def test_scipy_tails_at_huge_n_carry_boosts_documented_error():
    # Above 1e-280 a tail is Boost's, whose relative error grows with n: measured
    # up to 5e-7 at n = 2⁵³ (z = 3 … 30), 1e-8 at n = 10¹³.  The module says 1e-7.
    n, p = 2**53, 0.3
    sd = math.sqrt(n * p * (1 - p))
    for z in (3, 10, 30):
        for upper in (False, True):
            h = int(n * p + z * sd) if upper else int(n * p - z * sd)
            ref = _ln_tail_by_integral(h, n, p, upper=upper)
            assert abs(b.log_tail(h, n, p, upper=upper) - ref) <= 1e-6
