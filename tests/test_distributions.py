"""Analytic quantities against independent references (scipy, exact arithmetic)."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
from scipy import stats

from sim import distributions as d


def test_coin_reference_values():
    # p = 0.7 against q = 0.5, values given in the issue tracker.
    pair = d.Pair(d.coin(0.7), d.coin(0.5))
    assert pair.kl_pq == pytest.approx(0.0822828785051, rel=1e-11)
    assert pair.llr_sigma**2 == pytest.approx(0.150761869486, rel=1e-11)


def test_source_coin_example():
    assert d.Pair(d.coin(0.5), d.coin(0.8)).kl_pq == pytest.approx(0.2231435513, rel=1e-9)


def test_kl_keeps_precision_when_p_is_close_to_q():
    pair = d.Pair(d.coin(0.3), d.coin(0.3 + 1e-9))
    # scipy.stats.entropy returns about -5.3e-17 here; the exact value for these
    # two doubles is 2.3809525e-18 (issue 4), ≈ δ²/(2 q (1 − q)).
    assert pair.kl_pq == pytest.approx(2.3809525e-18, rel=1e-7)
    assert pair.kl_qp == pytest.approx(2.3809525e-18, rel=1e-6)


def _exact_kl(p: list[float], q: list[float]) -> float:
    """KL in 50-digit decimal arithmetic from the exact binary values of p, q."""
    getcontext().prec = 50
    total = Decimal(0)
    for pk, qk in zip(p, q, strict=True):
        if pk > 0:
            dp, dq = Decimal(pk), Decimal(qk)
            total += dp * (dp / dq).ln()
    # the float vectors do not sum exactly to 1; KL for normalised vectors:
    sp, sq = sum(Decimal(x) for x in p), sum(Decimal(x) for x in q)
    return float(total / sp - (sp / sq).ln())


@pytest.mark.parametrize("eps", [1e-3, 1e-6, 1e-9, 1e-12])
def test_close_categorical_against_exact_arithmetic(eps):
    p = [0.1, 0.2, 0.3, 0.4]
    q = [0.1 + eps, 0.2 - eps, 0.3 + 2 * eps, 0.4 - 2 * eps]
    kl = d.Pair(d.categorical(p), d.categorical(q)).kl_pq
    assert kl >= 0
    # normalisation by the float sum perturbs at the 1e-16 level only.
    assert kl == pytest.approx(_exact_kl(p, q), rel=1e-6, abs=1e-30)


def _random_pairs(k: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))


@pytest.mark.parametrize("k", [2, 3, 10, 1000])
def test_against_scipy_on_random_distributions(k):
    for p, q in _random_pairs(k, 20, seed=k):
        pair = d.Pair(d.categorical(p), d.categorical(q))
        pn, qn = p / p.sum(), q / q.sum()
        assert pair.kl_pq == pytest.approx(stats.entropy(pn, qn), rel=1e-10)
        assert pair.kl_qp == pytest.approx(stats.entropy(qn, pn), rel=1e-10)
        assert pair.entropy_p == pytest.approx(stats.entropy(pn), rel=1e-12)
        ce = -np.sum(pn * np.log(qn))
        assert pair.cross_entropy == pytest.approx(ce, rel=1e-12)
        assert pair.cross_entropy == pytest.approx(pair.entropy_p + pair.kl_pq, rel=1e-12)
        lr = np.log(pn / qn)
        assert pair.llr_sigma == pytest.approx(math.sqrt(np.sum(pn * lr**2) - np.sum(pn * lr) ** 2), rel=1e-8)
        assert pair.cross_entropy_sigma == pytest.approx(
            np.sqrt(np.cov(np.log(qn), aweights=pn, ddof=0)), rel=1e-8
        )
        assert pair.entropy_sigma == pytest.approx(np.sqrt(np.cov(np.log(pn), aweights=pn, ddof=0)), rel=1e-8)


def test_zero_in_p_contributes_nothing_and_makes_reverse_kl_infinite():
    p, q = [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]
    pair = d.Pair(d.categorical(p), d.categorical(q))
    assert pair.kl_pq == pytest.approx(stats.entropy(p, q), rel=1e-14)
    assert pair.kl_qp == math.inf
    assert pair.entropy_p == pytest.approx(math.log(2), rel=1e-15)


def test_sigma_zero_when_log_ratio_is_constant():
    # p = (1/2, 1/2, 0) against uniform on 3: log p/q = log 1.5 wherever p > 0.
    pair = d.Pair(d.categorical([0.5, 0.5, 0.0]), d.uniform(3))
    assert pair.kl_pq == pytest.approx(math.log(1.5), rel=1e-15)
    assert pair.llr_sigma == pytest.approx(0.0, abs=1e-16)


def test_identical_distributions_have_exactly_zero_divergence():
    for dist in (d.coin(0.3), d.zipf(100, 1.1), d.dirichlet(5, 0.5, seed=3)):
        pair = d.Pair(dist, dist)
        assert pair.kl_pq == 0.0
        assert pair.kl_qp == 0.0
        assert pair.llr_sigma == 0.0


def test_degenerate_coins():
    pair = d.Pair(d.coin(1.0), d.coin(0.5))
    assert pair.kl_pq == pytest.approx(math.log(2), rel=1e-15)
    assert pair.kl_qp == math.inf
    assert pair.entropy_p == 0.0
    with pytest.raises(ValueError, match="infinite"):
        d.Pair(d.coin(0.5), d.coin(1.0))


def test_tiny_coin_probabilities_use_log1p():
    c = d.coin(1e-12)
    assert c.log_probs[1] == pytest.approx(-1e-12, rel=1e-12)
    pair = d.Pair(d.coin(1e-10), d.coin(2e-10))
    exact = 1e-10 * math.log(0.5) + (1 - 1e-10) * (math.log1p(-1e-10) - math.log1p(-2e-10))
    assert pair.kl_pq == pytest.approx(3.0685282e-11, rel=1e-7)
    assert pair.kl_pq == pytest.approx(exact, rel=1e-6)


def test_generators():
    z = d.zipf(1000, 1.07)
    w = np.arange(1, 1001, dtype=float) ** -1.07
    np.testing.assert_allclose(z.probs, w / w.sum(), rtol=1e-13)
    np.testing.assert_allclose(z.log_probs, np.log(w / w.sum()), rtol=1e-13)
    assert d.uniform(7).probs.sum() == pytest.approx(1.0)
    a, b = d.dirichlet(20, 0.5, seed=1), d.dirichlet(20, 0.5, seed=1)
    np.testing.assert_array_equal(a.probs, b.probs)
    assert not np.array_equal(a.probs, d.dirichlet(20, 0.5, seed=2).probs)


def test_bits_are_nats_over_ln2():
    pair = d.Pair(d.coin(0.5), d.coin(0.8))
    assert d.to_units(pair.kl_pq, "bits") == pytest.approx(pair.kl_pq / math.log(2), rel=1e-15)
    assert d.to_units(d.Pair(d.coin(0.5), d.coin(0.5)).entropy_p, "bits") == pytest.approx(1.0, rel=1e-15)


def _h_exact(r: float) -> float:
    getcontext().prec = 60
    x = Decimal(r)
    return float((1 + x) * (1 + x).ln() - x) if r > -1 else 1.0


def test_h_is_accurate_everywhere():
    r = np.concatenate(
        [np.linspace(-1, 3, 401), np.geomspace(1e-14, 0.5, 300), -np.geomspace(1e-14, 0.5, 300)]
    )
    h = d.xlog1px_minus_x(r)
    ref = np.array([_h_exact(x) for x in r])
    assert np.all(h >= 0)
    np.testing.assert_allclose(h, ref, rtol=2e-14, atol=0)


def _kl_two_exact(d: float, a: float) -> float:
    getcontext().prec = 60
    a_, d_ = Decimal(a), Decimal(d)
    b_ = 1 - a_
    total = Decimal(0)
    for prob, freq in ((a_, a_ + d_), (b_, b_ - d_)):
        if freq > 0:
            total += freq * (freq / prob).ln()
    return float(total)


@pytest.mark.parametrize("a", [0.5, 0.7, 0.01, 1 - 1e-6])
def test_kl_two_is_accurate_near_and_far_from_p(a):
    """Both branches (the series in d, and two h terms) against 60-digit arithmetic."""
    b = 1.0 - a
    low = min(a, b)
    near = np.concatenate([low * np.geomspace(1e-12, 0.029, 40), -low * np.geomspace(1e-12, 0.029, 40)])
    far = np.linspace(-a, b, 101)
    for d_values in (near, far):  # one array each: the branch is chosen per array
        got = d.kl_two(d_values, a, b)
        ref = np.array([_kl_two_exact(x, a) for x in d_values])
        assert np.all(got >= 0)
        # as for h: the closed form loses at most ~2 eps/|r| ≈ 1e-14 at the series radius
        np.testing.assert_allclose(got, ref, rtol=2e-14, atol=0)
