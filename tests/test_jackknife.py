"""plugin_kl_jackknife: n·KL(f_n‖q) − ((n − 1)/n)·Σ_i KL(f_(−i)‖q), against its definition in Decimal.

The references compute the estimator from its definition (every leave-one-out
plug-in), not from the per-category form the code uses, with 50-digit
Decimal arithmetic on the float probabilities.
"""

from __future__ import annotations

import gzip
import itertools
import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest

from sim import distributions as d
from sim import registry
from sim.config import parse_config
from sim.estimators import SparseSums, SupportArrays, estimate
from sim.sampling import count_paths
from tests.helpers import ESTIMATOR_CASES

JK = registry.get("plugin_kl_jackknife")
PAIRS = {
    "coin": d.Pair(d.coin(0.7), d.coin(0.5)),
    "die": d.Pair(d.categorical([0.1, 0.2, 0.3, 0.4]), d.uniform(4)),
    "gap": d.Pair(d.categorical([0.5, 0.5, 0.0]), d.categorical([0.3, 0.3, 0.4])),
}


def _kl(counts, qs) -> Decimal:
    m = sum(counts)
    return sum((Decimal(c) / m) * ((Decimal(c) / m) / q).ln() for c, q in zip(counts, qs, strict=True) if c)


def _jackknife(counts, qs) -> Decimal:
    """From its definition: every observation left out in turn (all of a category's give the same)."""
    n = sum(counts)
    if n == 1:
        return _kl(counts, qs)
    left_out = sum(
        c * _kl([x - (i == k) for i, x in enumerate(counts)], qs) for k, c in enumerate(counts) if c
    )
    return n * _kl(counts, qs) - Decimal(n - 1) / n * left_out


def _enumerated(pair, n: int) -> tuple[float, float]:
    ps = [Decimal(float(v)) for v in pair.p.probs]
    qs = [Decimal(float(v)) for v in pair.q.probs]
    with localcontext() as ctx:
        ctx.prec = 50
        law = []
        for counts in itertools.product(range(n + 1), repeat=len(ps)):
            if sum(counts) != n or any(c and not p for c, p in zip(counts, ps, strict=True)):
                continue
            prob = Decimal(math.factorial(n))
            for c, p in zip(counts, ps, strict=True):
                prob = prob / math.factorial(c) * (p**c if c else 1)
            law.append((prob, _jackknife(counts, qs)))
        mean = sum(w * v for w, v in law)
        var = sum(w * (v - mean) ** 2 for w, v in law)
        return float(mean), float(var.sqrt())


@pytest.mark.parametrize("case", list(PAIRS))
@pytest.mark.parametrize("n", [1, 2, 3, 7, 12])
def test_exact_mean_and_sd_agree_with_the_definition_enumerated(case, n):
    mean, sd = _enumerated(PAIRS[case], n)
    m = JK.moments(PAIRS[case], n)
    assert m.mean == pytest.approx(mean, rel=1e-12, abs=0.0)
    assert m.sd == pytest.approx(sd, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(
    "case",
    ["coin", "die", "gap", pytest.param("zipf", marks=pytest.mark.slow)],  # zipf: 2 s a size
)
@pytest.mark.parametrize("n", [1, 2, 9, 1000, 10**6])
def test_every_kernel_gives_the_definition(case, n):
    """To 1e-13 relative at every n: the n-scaled plug-ins of the definition cancel in closed form
    (differenced as computed, they lost about ε·n·KL(f_n‖q), 1e-10 of the value at n = 10⁶)."""
    pair = PAIRS.get(case) or d.Pair(d.zipf(100, 1.1), d.uniform(100))  # 100 > DENSE_K: sparse kernel
    arrays = SupportArrays.from_pair(pair)
    counts = np.random.default_rng(n).multinomial(n, arrays.probs, size=3)
    got = estimate(counts, n, arrays, [JK.name])[JK.name]
    qs = [Decimal(float(v)) for v in pair.q.probs]
    with localcontext() as ctx:
        ctx.prec = 50
        for row, value in zip(counts, got, strict=True):
            full = np.zeros(pair.q.k, dtype=np.int64)
            full[arrays.index] = row
            assert value == pytest.approx(float(_jackknife([int(c) for c in full], qs)), rel=1e-13)


def test_running_sums_give_the_jackknife_of_a_recount():
    arrays = SupportArrays.from_pair(d.Pair(d.zipf(1500, 1.1), d.uniform(1500)))
    ckpts = [3, 40, 700, 5000, 10**6]
    sums = SparseSums(20, arrays, [JK.name])
    paths = count_paths(arrays.probs, ckpts, 20, rng=np.random.default_rng(7), sparse=True)
    dense = count_paths(arrays.probs, ckpts, 20, rng=np.random.default_rng(7))
    for n, (counts, change), reference in zip(ckpts, paths, dense, strict=True):
        got = sums.update(counts, change, n)[JK.name]
        np.testing.assert_allclose(got, estimate(reference, n, arrays, [JK.name])[JK.name], rtol=1e-9)


RUN = (
    """
name: jk
seed: 9
replicates: 2000
units: UNITS
n: [1, 2, 5, 30, 1000]
estimators: [llr, plugin_kl, plugin_kl_jackknife]
"""
    + ESTIMATOR_CASES
)


@pytest.fixture(scope="module")
def run(units, run_serially):
    return run_serially(RUN.replace("UNITS", units))


def test_simulated_jackknife_passes_sim_check_within_its_bounds(run):
    assert run.check.passed, run.check.table()
    with gzip.open(run.path / "replicates.csv.gz", "rt") as fh:
        replicates = pd.read_csv(fh)
    units = pd.read_csv(run.path / "summary.csv").units.iloc[0]
    scale = math.log(2) if units == "bits" else 1.0
    for case in parse_config(RUN.replace("UNITS", units)).cases:
        rows = replicates[replicates.case == case.name]
        for n, values in rows.groupby("n").plugin_kl_jackknife:
            low, high = (b[0] / scale * (1 + 4e-16) for b in JK.bounds_at(case.pair, [int(n)]))  # outward
            assert values.min() >= low and values.max() <= high  # to rounding: at n = 1 the value is H


def _decimal_coin_jackknife_mean(h: float, q: float, n: int) -> Decimal:
    """E[jackknife] of a coin at 45 digits from its definition, the pmf by its exact ratio from P(H = 0)."""
    with localcontext() as ctx:
        ctx.prec = 45
        hd, qd = Decimal(h), Decimal(q)
        td = 1 - hd

        def kl(heads: int, size: int) -> Decimal:
            f = Decimal(heads) / size
            return (f * (f / qd).ln() if heads else 0) + (
                (1 - f) * ((1 - f) / (1 - qd)).ln() if heads < size else 0
            )

        sd = math.sqrt(n * h * (1 - h))
        lo, hi = n * h - 14 * sd - 20, n * h + 14 * sd + 20
        pmf, total = td**n, Decimal(0)
        for c in range(n + 1):
            if lo <= c <= hi:
                left_out = (c * kl(c - 1, n - 1) if c else 0) + ((n - c) * kl(c, n - 1) if c < n else 0)
                total += pmf * (n * kl(c, n) - Decimal(n - 1) / n * left_out)
            pmf = pmf * (n - c) * hd / ((c + 1) * td)
        return total


@pytest.mark.parametrize(("h", "q", "n"), [(0.5, 0.5, 2000), (0.3, 0.3, 20000), (0.3, 0.31, 20000)])
def test_exact_mean_near_p_equal_q_keeps_its_relative_precision(h, q, n):
    """At p = q the mean is O(1/n²), what is left of the plug-in's bias and the jackknife's O(1/n)
    correction: both are cancelled in closed form (r²/2 has mean (1 − p)/(2n); A(c) = 1/(2c) + B(c)).
    Summed as the per-category terms' mean, it lost 3e-11 relatively at n = 1e5."""
    got = JK.moments(d.Pair(d.coin(h), d.coin(q)), n).mean
    assert got == pytest.approx(float(_decimal_coin_jackknife_mean(h, q, n)), rel=1e-12, abs=0.0)
