"""The exact variance of the categorical plug-in KL and its rigorous bound.

Oracles are independent of :mod:`sim.exact`: the whole law of KL(C/n‖q),
C ~ Multinomial(n, p), enumerated outcome by outcome in 50-digit decimal
arithmetic (probabilities from the doubles' exact rational values), or, for a
uniform p over a large vocabulary, enumerated over the partitions of n.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest

from sim import distributions as d
from sim import exact

DIGITS = 50


def _decimal(x: Fraction) -> Decimal:
    return Decimal(x.numerator) / Decimal(x.denominator)


def _compositions(n: int, k: int):
    """Every (c_1, …, c_k) of non-negative integers summing to n (stars and bars)."""
    for bars in itertools.combinations(range(n + k - 1), k - 1):
        edges = (-1, *bars, n + k - 1)
        yield [edges[i + 1] - edges[i] - 1 for i in range(k)]


def _law_by_enumeration(pair: d.Pair, n: int) -> tuple[Decimal, Decimal, Decimal]:
    """Mean, variance and μ4 of KL(C/n‖q) summed over every outcome C."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        p = [Fraction(float(x)) for x in pair.p.probs]
        total = sum(p)
        support = [i for i, x in enumerate(p) if x > 0]
        prob = [_decimal(p[i] / total) for i in support]
        q = [_decimal(Fraction(float(pair.q.probs[i]))) for i in support]
        factorial = [Decimal(math.factorial(c)) for c in range(n + 1)]
        weight = [[pk**c / factorial[c] for c in range(n + 1)] for pk in prob]  # p^c / c!
        term = [
            [Decimal(c) / n * (Decimal(c) / (n * qk)).ln() if c else Decimal(0) for c in range(n + 1)]
            for qk in q
        ]
        outcomes = []
        for comp in _compositions(n, len(support)):
            pr, value = factorial[n], Decimal(0)
            for j, c in enumerate(comp):
                pr *= weight[j][c]
                value += term[j][c]
            outcomes.append((pr, value))
        mean = sum(pr * v for pr, v in outcomes)
        var = sum(pr * (v - mean) ** 2 for pr, v in outcomes)
        mu4 = sum(pr * (v - mean) ** 4 for pr, v in outcomes)
    return mean, var, mu4


def _partitions(n: int, largest: int, parts: int):
    if n == 0:
        yield []
        return
    if parts == 0:
        return
    for first in range(min(n, largest), 0, -1):
        for rest in _partitions(n - first, first, parts - 1):
            yield [first, *rest]


def _uniform_variance_by_partitions(k: int, n: int) -> Decimal:
    """Var KL(C/n‖uniform) for C ~ Multinomial(n, uniform on k), over the occupancy patterns."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        outcomes = []
        for part in _partitions(n, n, k):
            ways = Fraction(
                math.perm(k, len(part)), math.prod(math.factorial(m) for m in Counter(part).values())
            )
            arrangements = Fraction(math.factorial(n), math.prod(math.factorial(c) for c in part))
            pr = _decimal(ways * arrangements / Fraction(k) ** n)
            value = Decimal(k).ln() + sum(Decimal(c) / n * (Decimal(c) / n).ln() for c in part)
            outcomes.append((pr, value))
        mean = sum(pr * v for pr, v in outcomes)
        return sum(pr * (v - mean) ** 2 for pr, v in outcomes)


PAIRS = {
    "skewed-3": ([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]),
    "tiny-3": ([0.5, 0.5 - 1e-9, 1e-9], [0.2, 0.3, 0.5]),
    "outside-3": ([0.6, 0.4, 0.0], [1 / 3, 1 / 3, 1 / 3]),
    "equal-4": ([0.25] * 4, [0.1, 0.2, 0.3, 0.4]),
    "pairs-4": ([0.4, 0.4, 0.1, 0.1], [0.25, 0.25, 0.4, 0.1]),
    "tiny-4": ([1e-6, 0.3, 0.3, 0.4 - 1e-6], [0.1, 0.2, 0.3, 0.4]),
    "same-5": ([0.3, 0.25, 0.2, 0.15, 0.1], [0.3, 0.25, 0.2, 0.15, 0.1]),
    "die-6": ([0.3, 0.25, 0.2, 0.15, 0.1, 0.0], [1 / 6] * 6),
    "equal-tiny-6": ([0.2, 0.2, 0.2, 0.2, 0.2 - 2e-7, 2e-7], [0.1, 0.1, 0.2, 0.2, 0.3, 0.1]),
    "near-one-3": ([0.999, 0.0006, 0.0004], [0.5, 0.3, 0.2]),
}
#: The bound is at most this many times the variance in every case tested (4.5 at
#: n = 2 for p ≈ (1, ε, ε), otherwise below 2.3).
BOUND_RATIO = 5.0
#: Largest n enumerated for each number of categories (the outcomes grow like n^(K−1)).
MAX_N = {3: 30, 4: 30, 5: 20, 6: 12}


def _cases():
    for name, (p, q) in PAIRS.items():
        for n in (1, 2, 3, 4, 5, 7, 9, 12, 16, 20, 25, 30):
            if n <= MAX_N[len(p)]:
                yield pytest.param(p, q, n, id=f"{name}-n{n}")


@pytest.mark.parametrize(("p", "q", "n"), list(_cases()))
def test_exact_variance_and_bound_against_enumeration(p, q, n):
    pair = d.Pair(d.categorical(p), d.categorical(q))
    mean, var, mu4 = _law_by_enumeration(pair, n)
    got = exact.plugin_variance(pair, n)
    assert got.exact
    assert float(abs(Decimal(got.variance) - var)) <= 1e-12 * float(var)  # 0 stays exactly 0
    m = exact.plugin_moments(pair, n)
    assert m.sd == got.sd and m.mean == pytest.approx(float(mean), rel=1e-12)
    bound = exact._efron_stein_bound(pair, n)
    assert Decimal(bound) >= var
    assert bound <= BOUND_RATIO * float(var)
    if math.isnan(m.mu4):  # only bounded
        assert Decimal(exact.plugin_mu4_upper(pair, n)) >= mu4
    else:  # n = 1: the i.i.d. moments of −log q(X)
        assert m.mu4 == exact.plugin_mu4_upper(pair, n) == pytest.approx(float(mu4), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("n", [2, 7, 30])
def test_a_category_of_almost_all_the_mass(n):
    # ℓ_k − KL over 1 − p_k = 1e-9 would carry KL's rounding magnified 1e9 times;
    # the remaining error is that p's doubles sum to 1 only within 1e-16, which
    # is 1e-7 of the small categories' mass, with llr and KL(p̂‖p) cancelling 1e3.
    pair = d.Pair(d.categorical([1 - 1e-9, 6e-10, 4e-10]), d.categorical([0.5, 0.3, 0.2]))
    _, var, _ = _law_by_enumeration(pair, n)
    assert exact.plugin_variance(pair, n).variance == pytest.approx(float(var), rel=1e-11)
    assert float(var) <= exact._efron_stein_bound(pair, n) <= BOUND_RATIO * float(var)


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 40, 10_000, 1_000_000])
@pytest.mark.parametrize("n", [2, 5, 11, 25])
def test_a_uniform_vocabulary_shares_one_covariance_without_cancelling(k, n):
    # K(K − 1) equal covariances nearly cancel K variances when n ≪ K: the
    # common linear tilt keeps the difference to rounding.
    pair = d.Pair(d.uniform(k), d.uniform(k))
    var = _uniform_variance_by_partitions(k, n)
    got = exact.plugin_variance(pair, n)
    assert got.exact
    assert got.variance == pytest.approx(float(var), rel=1e-12)
    assert float(var) <= exact._efron_stein_bound(pair, n) <= BOUND_RATIO * float(var)


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.5, 0.8), (0.05, 0.3), (0.999, 0.5)])
@pytest.mark.parametrize("n", [2, 17, 1000, 10**6, 10**9, 10**12])
def test_two_categories_agree_with_the_law_of_a_coin(p, q, n):
    # A categorical pair on two categories goes through the covariance sums
    # (with the other count fixed at n − C); a coin through its heads alone.
    as_coin = exact.coin_plugin_moments(d.Pair(d.coin(p), d.coin(q)), n)
    pair = d.Pair(d.categorical([p, 1 - p]), d.categorical([q, 1 - q]))
    assert exact.plugin_variance(pair, n).sd == pytest.approx(as_coin.sd, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("n", [300, 2_000, 12_000])
def test_strided_double_sums_equal_full_ones(monkeypatch, n):
    """sd/4 lattice points per sd give the sums over every count to rounding."""
    pairs = [
        d.Pair(d.categorical([0.3, 0.25, 0.2, 0.15, 0.1, 0.0]), d.uniform(6)),
        d.Pair(d.categorical([0.97, 0.02, 0.01]), d.categorical([0.9, 0.05, 0.05])),
        d.Pair(d.categorical([0.499, 0.499, 0.002]), d.categorical([0.499, 0.499, 0.002])),
    ]
    strided = [exact._exact_plugin_variance(pair, n) for pair in pairs]
    monkeypatch.setattr(exact, "VARIANCE_STRIDE_PER_SD", 1e9)  # stride 1 everywhere
    monkeypatch.setattr(exact, "VARIANCE_BUDGET", 1e12)
    exact._exact_plugin_variance.cache_clear()
    try:
        for pair, value in zip(pairs, strided, strict=True):
            assert value == pytest.approx(exact._exact_plugin_variance(pair, n), rel=1e-13)
    finally:
        exact._exact_plugin_variance.cache_clear()


@pytest.mark.parametrize("n", [10, 1_000, 10**5, 10**9, 2**53])
@pytest.mark.parametrize(
    ("p", "q"),
    [
        (d.categorical([0.3, 0.25, 0.2, 0.15, 0.1, 0.0]), d.uniform(6)),
        (d.zipf(12, 1.07), d.uniform(12)),
        (d.uniform(200), d.zipf(200, 1.07)),
        (d.dirichlet(12, 0.3, 1), d.dirichlet(12, 1.0, 2)),
    ],
    ids=["die", "zipf", "uniform", "dirichlet"],
)
def test_the_bound_holds_and_tightens_as_n_grows(p, q, n, monkeypatch):
    monkeypatch.setattr(exact, "VARIANCE_BUDGET", 1 << 22)  # exact sums here, whatever the budget
    pair = d.Pair(p, q)
    variance = exact._exact_plugin_variance(pair, n)
    assert variance is not None
    bound = exact._efron_stein_bound(pair, n)
    assert variance <= bound <= BOUND_RATIO * variance
    if n >= 10**9:  # exact for the llr, the dominant part at large n
        assert bound == pytest.approx(variance, rel=1e-6)


def test_beyond_the_budget_only_the_bound_is_given():
    pair = d.Pair(d.zipf(50_000, 1.07), d.uniform(50_000))  # configs/vocabulary.yaml
    for n in (10, 1000):
        m = exact.plugin_moments(pair, n)
        assert math.isnan(m.sd) and math.isnan(m.mu4)  # a bound never fills the exact sd
        v = exact.plugin_variance(pair, n)
        assert not v.exact and 0 < v.variance < math.inf
        assert exact.plugin_sd_upper(pair, n) == (v.sd, False)
        assert exact.plugin_mu4_upper(pair, n) > 0


def test_a_bound_from_the_budget_matches_enumeration(monkeypatch):
    pair = d.Pair(d.categorical([0.3, 0.25, 0.2, 0.15, 0.1, 0.0]), d.uniform(6))
    _, var, _ = _law_by_enumeration(pair, 9)
    monkeypatch.setattr(exact, "VARIANCE_BUDGET", 0)
    exact._exact_plugin_variance.cache_clear()
    exact.plugin_variance.cache_clear()
    try:
        got = exact.plugin_variance(pair, 9)
        assert not got.exact and float(var) <= got.variance <= BOUND_RATIO * float(var)
    finally:
        exact._exact_plugin_variance.cache_clear()
        exact.plugin_variance.cache_clear()


def test_degenerate_cases():
    one = d.Pair(d.categorical([0.0, 1.0, 0.0]), d.uniform(3))  # one category: a constant
    assert exact.plugin_variance(one, 50) == (0.0, True)
    assert exact.plugin_moments(one, 50) == exact.Moments(math.log(3), 0.0, 0.0)
    coin = d.Pair(d.coin(0.7), d.coin(0.4))
    assert exact.plugin_variance(coin, 30).sd == exact.coin_plugin_moments(coin, 30).sd
