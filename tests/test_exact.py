"""Exact estimator moments against brute-force enumeration of the sampling law."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from sim import distributions as d
from sim import exact, registry


def _coin_law(p: float, q: float, n: int):
    """Every head count, its probability and its plug-in KL (scipy)."""
    h = np.arange(n + 1)
    pmf = stats.binom.pmf(h, n, p)
    plugin = np.array([stats.entropy([k / n, 1 - k / n], [q, 1 - q]) for k in h])
    return h, pmf, plugin


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.5, 0.8), (0.05, 0.3), (0.3, 0.3)])
@pytest.mark.parametrize("n", [1, 2, 7, 50, 300])
def test_coin_plugin_moments_by_enumeration(p, q, n):
    _, pmf, plugin = _coin_law(p, q, n)
    mean = np.sum(pmf * plugin)
    sd = math.sqrt(np.sum(pmf * (plugin - mean) ** 2))
    m = exact.plugin_moments(d.Pair(d.coin(p), d.coin(q)), n)
    assert m.mean == pytest.approx(mean, rel=1e-10)
    assert m.sd == pytest.approx(sd, rel=1e-8, abs=1e-15)


@pytest.mark.parametrize(
    ("p", "q"),
    [
        ([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]),
        ([0.6, 0.4, 0.0], [1 / 3, 1 / 3, 1 / 3]),
        ([0.25] * 4, [0.1, 0.2, 0.3, 0.4]),
    ],
)
@pytest.mark.parametrize("n", [1, 3, 8])
def test_categorical_plugin_mean_by_enumeration(p, q, n):
    k = len(p)
    comps = np.array([c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n])
    pmf = stats.multinomial.pmf(comps, n, p)
    plugin = np.array([stats.entropy(c / n, q) for c in comps])
    pair = d.Pair(d.categorical(p), d.categorical(q))
    m = exact.plugin_moments(pair, n)
    mean = np.sum(pmf * plugin)
    assert m.mean == pytest.approx(mean, rel=1e-10)
    # few distinct probabilities: the exact sd (see tests/test_plugin_variance.py)
    assert m.sd == pytest.approx(math.sqrt(np.sum(pmf * (plugin - mean) ** 2)), rel=1e-8, abs=1e-15)


def test_a_single_category_has_no_bias():
    # C = n surely: the Binomial(n, 1) sum used to give nan
    pair = d.Pair(d.categorical([0.0, 1.0, 0.0]), d.uniform(3))
    assert exact.plugin_bias(pair, 50) == 0.0
    assert exact.plugin_moments(pair, 50).mean == pytest.approx(math.log(3), rel=1e-15)


def test_bias_is_not_the_asymptotic_formula_for_a_large_vocabulary():
    # Uniform on K = 50,000 at n = 1000: (K − 1)/(2n) would say 25.
    k, n = 50_000, 1000
    pair = d.Pair(d.uniform(k), d.uniform(k))
    c = np.arange(0, 60)
    f = c / n
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(c > 0, f * np.log(f * k), 0.0)
    independent = k * np.sum(stats.binom.pmf(c, n, 1 / k) * term)
    assert exact.plugin_bias(pair, n) == pytest.approx(independent, rel=1e-10)
    assert exact.plugin_bias(pair, n) == pytest.approx(3.9258, abs=1e-4)


@pytest.mark.parametrize("n", [10**6, 10**9, 10**12, 10**15])
def test_bias_at_huge_n_is_cheap_and_exact(n):
    # E[KL(p̂‖p)] = (K' − 1)/(2n) + O(1/n²) for a coin: the O(1/n) relative
    # correction bounds the difference; the sum stays ~1000 terms whatever n.
    bias = exact.plugin_bias(d.Pair(d.coin(0.7), d.coin(0.5)), n)
    assert bias * 2 * n == pytest.approx(1.0, rel=10 / n + 1e-10)


def test_iid_moments_by_enumeration():
    pair = d.Pair(d.categorical([0.5, 0.3, 0.2]), d.categorical([0.2, 0.3, 0.5]))
    for n in (1, 2, 5):
        comps = np.array([c for c in itertools.product(range(n + 1), repeat=3) if sum(c) == n])
        pmf = stats.multinomial.pmf(comps, n, [0.5, 0.3, 0.2])
        llr = comps @ np.log(np.array([0.5, 0.3, 0.2]) / np.array([0.2, 0.3, 0.5])) / n
        mean = np.sum(pmf * llr)
        m = registry.LLR.moments(pair, n)
        assert m.mean == pytest.approx(mean, rel=1e-12)
        assert m.sd == pytest.approx(math.sqrt(np.sum(pmf * (llr - mean) ** 2)), rel=1e-10)
        assert m.mu4 == pytest.approx(np.sum(pmf * (llr - mean) ** 4), rel=1e-10)


def _coverage_by_fractions(p: str, n: int) -> float:
    """P(|H − np| ≤ 1.96 √(np(1 − p))) with the boundary decided in exact rationals."""
    pf, z = Fraction(p), Fraction("1.96")
    bound = z * z * n * pf * (1 - pf)
    inside = [h for h in range(n + 1) if (h - n * pf) ** 2 <= bound]
    return float(stats.binom.pmf(inside, n, float(pf)).sum())


@pytest.mark.parametrize(("p", "n"), [("0.7", 10), ("0.7", 100), ("0.5", 2500), ("0.5", 100), ("0.2", 625)])
def test_coin_coverage_exact_with_ties_on_integer_counts(p, n):
    # p = 0.5, n = 2500: |H − 1250| ≤ 49 has its boundary exactly on H = 1201, 1299.
    pair = d.Pair(d.coin(float(p)), d.coin(0.9))
    assert exact.coverage95(pair, n) == pytest.approx(_coverage_by_fractions(p, n), rel=1e-12)


def test_coverage_of_degenerate_and_categorical_cases():
    assert exact.coverage95(d.Pair(d.coin(0.3), d.coin(0.3)), 10) == 1.0
    assert math.isnan(exact.coverage95(d.Pair(d.uniform(3), d.uniform(3)), 10))


@pytest.mark.parametrize(("n", "p"), [(10**9, 1e-8), (10**12, 5e-13), (10**15, 5e-13), (2**53, 1e-14)])
def test_narrow_binomial_sums_stay_exact_at_huge_n(n, p):
    """Σ pmf = 1 and Σ c·pmf = np for a narrow binomial (sd ≤ 30) at huge n.

    Started from scipy's gammaln-based logpmf these summed to 0.9994 at
    n = 10¹² and 0.0245 at 10¹⁵ (|log n!|·1e-16 of error in the log).
    """
    import numpy as np

    from sim.exact import expect

    total = expect(n, np.array([p]), lambda c, k: np.ones_like(c))[0]
    mean = expect(n, np.array([p]), lambda c, k: c)[0]
    assert abs(total - 1.0) < 1e-11
    assert abs(mean / (n * p) - 1.0) < 1e-11
