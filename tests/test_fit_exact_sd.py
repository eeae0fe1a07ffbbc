"""Exact sds of the fit estimators (saturated and constant families, α > 0) against independent sums.

The references never call :mod:`sim.fitting`: the fits are the closed-form
smoothed frequencies, and the laws are enumerated (every multinomial outcome
for small N) or summed in full over every count (one- and two-dimensional
cases at large N, with scipy's pmfs).
"""

from __future__ import annotations

import decimal
import itertools
import math

import numpy as np
import pytest
from scipy import special, stats

from sim import fitting
from sim.config import load_config
from sim.fitting import Truth
from tests.helpers import z_crit

ESTIMATORS = ("kl_fitted", "train_cross_entropy", "test_cross_entropy")


def _truth(probs, table) -> Truth:
    probs, table = np.array(probs, dtype=float), np.array(table, dtype=float)
    return Truth(probs, table, np.zeros((probs.size, 0)))


def _fits(counts: np.ndarray, family: str, alpha: float) -> np.ndarray:
    """q̂ of every outcome, shape (outcomes, X, K): the smoothed frequencies."""
    x, k = counts.shape[1:]
    if family == "saturated":
        return (counts + alpha) / (counts.sum(axis=2, keepdims=True) + k * alpha)
    classes = counts.sum(axis=1)
    q = (classes + x * alpha) / (counts.sum(axis=(1, 2))[:, None] + k * x * alpha)
    return np.broadcast_to(q[:, None, :], counts.shape)


def _estimators(truth: Truth, counts: np.ndarray, q: np.ndarray, n: int) -> dict[str, np.ndarray]:
    j, p = truth.input_probs[:, None] * truth.table, truth.table
    seen = j > 0
    log_q = np.log(q)
    return {
        "kl_fitted": np.sum(np.where(seen, j * (np.log(np.where(seen, p, 1.0)) - log_q), 0.0), axis=(1, 2)),
        "train_cross_entropy": -np.sum(counts * log_q, axis=(1, 2)) / n,
        "test_cross_entropy": -np.sum(np.where(seen, j * log_q, 0.0), axis=(1, 2)),
    }


def _sds(pmf: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, float]:
    pmf = pmf / math.fsum(pmf)
    out = {}
    for name, v in values.items():
        mean = math.fsum(pmf * v)
        out[name] = math.sqrt(math.fsum(pmf * (v - mean) ** 2))
    return out


def _enumerated(truth: Truth, family: str, alpha: float, n: int) -> dict[str, float]:
    """sds over every outcome of Multinomial(n, π(x) p(y|x)) on the X·K cells."""
    x, k = truth.table.shape
    cells = x * k
    outcomes = np.array(
        [
            np.diff((-1, *bars, n + cells - 1)) - 1
            for bars in itertools.combinations(range(n + cells - 1), cells - 1)
        ],
        dtype=float,
    )
    pmf = stats.multinomial.pmf(outcomes, n, (truth.input_probs[:, None] * truth.table).ravel())
    counts = outcomes.reshape(-1, x, k)
    return _sds(pmf, _estimators(truth, counts, _fits(counts, family, alpha), n))


TRUTHS = {
    "unequal inputs": ([0.35, 0.65], [[0.8, 0.15, 0.05], [0.3, 0.3, 0.4]]),
    "three inputs": ([0.2, 0.5, 0.3], [[0.9, 0.1], [0.4, 0.6], [0.25, 0.75]]),
    "tiny cell": ([0.45, 0.55], [[1 - 2e-9, 1e-9, 1e-9], [0.5, 0.3, 0.2]]),
    "tiny input": ([1e-7, 0.6, 0.4 - 1e-7], [[0.5, 0.5], [0.7, 0.3], [0.1, 0.9]]),
    "empty cells": ([0.1, 0.6, 0.3], [[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]]),
    "one input": ([1.0], [[0.4, 0.3, 0.15, 0.1, 0.05]]),
}


@pytest.mark.parametrize("name", TRUTHS)
@pytest.mark.parametrize("family", ["saturated", "constant"])
@pytest.mark.parametrize(("alpha", "n"), [(0.5, 2), (0.5, 7), (0.5, 12), (3.0, 10)])
def test_exact_sds_by_enumeration(name, family, alpha, n):
    truth = _truth(*TRUTHS[name])
    if name == "one input" and n > 7:
        n = 7  # five cells: C(16, 4) outcomes at most
    got = fitting.exact_sds(truth, family, alpha, n)
    ref = _enumerated(truth, family, alpha, n)
    for est in ESTIMATORS:
        assert getattr(got, est) == pytest.approx(ref[est], rel=1e-12, abs=1e-300), est


def test_at_one_sample_the_training_loss_is_constant():
    truth = _truth(*TRUTHS["unequal inputs"])
    for family in ("saturated", "constant"):
        got, ref = fitting.exact_sds(truth, family, 0.5, 1), _enumerated(truth, family, 0.5, 1)
        assert got.train_cross_entropy == 0.0 and ref["train_cross_entropy"] < 1e-15
        assert got.test_cross_entropy == pytest.approx(ref["test_cross_entropy"], rel=1e-12)


def test_unknown_sds_are_nan():
    truth = _truth(*TRUTHS["unequal inputs"])
    for family, alpha in (("linear", 0.5), ("ordinal", 0.5), ("saturated", 0.0), ("constant", 0.0)):
        assert all(math.isnan(v) for v in fitting.exact_sds(truth, family, alpha, 10))


def test_beyond_the_budget_the_sds_are_nan(monkeypatch):
    truth = _truth(*TRUTHS["unequal inputs"])
    assert not math.isnan(fitting.exact_sds(truth, "saturated", 0.5, 1000).kl_fitted)
    monkeypatch.setattr(fitting, "SD_BUDGET", 10_000)
    assert all(math.isnan(v) for v in fitting.exact_sds(truth, "saturated", 0.5, 1000))


def test_one_count_at_large_n_against_the_full_binomial_sum():
    # One input, two classes: every estimator is a function of one Binomial
    # count c, summed here over all n + 1 values with scipy's pmf.  The lattice
    # sums take every 32nd count.  The reference's own kl values are good to
    # ~1e-16 absolute against an sd of ~1e-6, hence its looser tolerance.
    n, alpha, p = 2 * 10**5, 0.5, 0.3
    truth = _truth([1.0], [[1 - p, p]])
    c = np.arange(n + 1, dtype=float)
    counts = np.stack([n - c, c], axis=1)[:, None, :]
    ref = _sds(stats.binom.pmf(c, n, p), _estimators(truth, counts, _fits(counts, "saturated", alpha), n))
    for family in ("saturated", "constant"):  # the same fit with one input
        got = fitting.exact_sds(truth, family, alpha, n)
        assert got.train_cross_entropy == pytest.approx(ref["train_cross_entropy"], rel=1e-13)
        assert got.kl_fitted == pytest.approx(ref["kl_fitted"], rel=1e-10)


@pytest.mark.slow
def test_two_counts_against_the_full_trinomial_sum():
    # One input, three classes: a function of two counts, summed over the whole
    # triangle (lattice strides 2 here).  The reference's log-pmf (gammaln) is
    # good to ~1e-13 relative at this n.
    n, alpha = 1000, 0.5
    p = np.array([0.5, 0.3, 0.2])
    truth = _truth([1.0], [p])
    c1, c2 = (v.ravel() for v in np.meshgrid(np.arange(n + 1.0), np.arange(n + 1.0), indexing="ij"))
    keep = c1 + c2 <= n
    counts = np.stack([n - c1[keep] - c2[keep], c1[keep], c2[keep]], axis=1)
    pmf = np.exp(special.gammaln(n + 1) - special.gammaln(counts + 1).sum(axis=1) + counts @ np.log(p))
    counts = counts[:, None, :]
    ref = _sds(pmf, _estimators(truth, counts, _fits(counts, "saturated", alpha), n))
    got = fitting.exact_sds(truth, "saturated", alpha, n)
    for est in ESTIMATORS:
        assert getattr(got, est) == pytest.approx(ref[est], rel=1e-11), est


@pytest.mark.parametrize("n", [3000, 20000])
def test_strided_sums_equal_full_sums(monkeypatch, n):
    # The same sums over every lattice point (strides 1), at sizes where the
    # strided ones skip most of them (strides up to 8 at n = 20000).
    truth = _truth([0.35, 0.65], [[0.8, 0.2], [0.3, 0.7]])
    strided = {f: fitting.exact_sds(truth, f, 0.5, n) for f in ("saturated", "constant")}
    monkeypatch.setattr(fitting, "SD_POINTS_PER_SD", 10**9)
    monkeypatch.setattr(fitting, "SD_BUDGET", 10**9)
    for family, sds in strided.items():
        full = fitting.exact_sds(truth, family, 0.5, n)
        for est in ESTIMATORS:
            assert getattr(sds, est) == pytest.approx(getattr(full, est), rel=1e-14), (family, est)


def test_classifier_sds_against_simulated_fits():
    # The shipped classifier's truth at its largest N: sds of 20,000 simulated
    # fits (closed form) against the exact ones, with the standard error of a
    # sample sd from the sample's own fourth moment.
    e = load_config("configs/classifier.yaml")
    truth, n, r = e.truth, e.checkpoints[-1], 20_000
    rng = np.random.default_rng(13)
    counts = rng.multinomial(n, truth.joint.ravel(), size=r).reshape(r, *truth.table.shape).astype(float)
    for family in ("saturated", "constant"):
        exact = fitting.exact_sds(truth, family, e.smoothing, n)
        values = _estimators(truth, counts, _fits(counts, family, e.smoothing), n)
        for est, v in values.items():
            d = v - v.mean()
            s2, m4 = np.mean(d**2) * r / (r - 1), np.mean(d**4)
            se_sd = math.sqrt(max(m4 / r - s2**2 * (r - 3) / (r * (r - 1)), 0.0)) / (2 * math.sqrt(s2))
            assert abs(math.sqrt(s2) - getattr(exact, est)) <= z_crit(6) * se_sd, (family, est)


def test_largest_n_reaches_the_asymptotic_laws():
    # At N → ∞ the fitted KL is χ²_d/(2N) (sd √(d/2)/N; d = X(K − 1) for the
    # saturated model; K − 1 for the constant one, whose first-order term
    # vanishes too) and the training loss a mean of −log p (sd σ/√N).  The
    # exact sds at FIT_MAX_N differ from those by their O(1/N) corrections:
    # a hundred times smaller than at N/100, to within 1 %.
    e = load_config("configs/classifier.yaml")
    truth, j = e.truth, e.truth.joint
    x, k = truth.table.shape
    for family, log_p, d in (
        ("saturated", np.log(truth.table), x * (k - 1)),
        ("constant", np.log(np.broadcast_to(j.sum(axis=0), j.shape)), k - 1),
    ):
        sigma = math.sqrt(np.sum(j * (log_p - np.sum(j * log_p)) ** 2))
        gaps = []
        for n in (10**5, 10**7):
            sds = fitting.exact_sds(truth, family, e.smoothing, n)
            gaps.append(
                np.array(
                    [
                        sds.kl_fitted * n / math.sqrt(d / 2) - 1,
                        sds.train_cross_entropy * math.sqrt(n) / sigma - 1,
                    ]
                )
            )
        assert np.all(np.abs(gaps[1]) < 1e-5), family
        np.testing.assert_allclose(gaps[0], 100 * gaps[1], rtol=0.01)


def _log_poisson_decimal(x: int, m: float) -> float:
    """log(e^(−m) m^x / x!) in 40-digit decimals (m's binary value taken exactly)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        dm = decimal.Decimal(m)
        log_factorial = sum((decimal.Decimal(k).ln() for k in range(2, x + 1)), decimal.Decimal(0))
        return float(x * dm.ln() - dm - log_factorial)


def test_log_poisson_against_decimals():
    # The multinomial pmfs above are sums of these: accurate to ~1e-15 absolute,
    # where scipy's gammaln-based logpmf is off by 1e-12 at x = m = 1000.
    x = [0, 1, 2, 5, 15, 16, 17, 100, 1000, 1900]
    for m in (1e-9, 0.3, 7.0, 1000.0, 1900.5):
        got = fitting.log_poisson(np.array(x, dtype=float), m)
        ref = np.array([_log_poisson_decimal(k, m) for k in x])
        np.testing.assert_allclose(got, ref, rtol=1e-14, atol=2e-15)
    assert fitting.log_poisson_norm(1000) == pytest.approx(-_log_poisson_decimal(1000, 1000.0), rel=1e-15)
