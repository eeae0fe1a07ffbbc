"""plugin_kl_mm: the plug-in KL less (K̂ − 1)/(2N), checked against enumeration and Decimal sums.

References never call the code under test: exact means (and a coin's sd)
by enumerating every count vector with 50-digit Decimal probabilities, and
E[K̂] = Σ_k 1 − (1 − p_k)^N by Decimal powers.
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest

from sim import distributions as d
from sim import exact, registry
from sim.config import parse_config
from sim.estimators import SparseSums, SupportArrays, estimate
from sim.sampling import count_paths

NAMES = ("plugin_kl", "plugin_kl_mm")
MM = registry.get("plugin_kl_mm")

PAIRS = {
    "coin": d.Pair(d.coin(0.7), d.coin(0.5)),
    "close_coin": d.Pair(d.coin(0.3), d.coin(0.300000001)),
    "die": d.Pair(d.categorical([0.1, 0.2, 0.3, 0.4]), d.uniform(4)),
    "outside": d.Pair(d.categorical([0.5, 0.5, 0.0]), d.categorical([0.3, 0.3, 0.4])),
    "skewed": d.Pair(d.categorical([0.9, 0.05, 0.03, 0.02]), d.categorical([0.25, 0.25, 0.25, 0.25])),
}


def _compositions(n: int, k: int):
    """Every count vector of n observations over k categories."""
    for cuts in itertools.combinations(range(n + k - 1), k - 1):
        bounds = (-1, *cuts, n + k - 1)
        yield [bounds[i + 1] - bounds[i] - 1 for i in range(k)]


def _enumerated(pair, n: int) -> tuple[float, float]:
    """Exact mean and sd of plugin_kl_mm at n, by enumerating every count vector (Decimal)."""
    support = [int(i) for i in pair.support]
    p = [Decimal(float(pair.p.probs[i])) for i in support]
    q = [Decimal(float(pair.q.probs[i])) for i in support]
    with localcontext() as ctx:
        ctx.prec = 50
        law = []
        for counts in _compositions(n, len(support)):
            prob = Decimal(math.factorial(n))
            for c, pk in zip(counts, p, strict=True):
                prob = prob / math.factorial(c) * pk**c
            kl = sum(
                (Decimal(c) / n) * ((Decimal(c) / n) / qk).ln() for c, qk in zip(counts, q, strict=True) if c
            )
            seen = sum(1 for c in counts if c)
            law.append((prob, kl - Decimal(seen - 1) / (2 * n)))
        mean = sum(w * v for w, v in law)
        var = sum(w * (v - mean) ** 2 for w, v in law)
        return float(mean), float(var.sqrt())


@pytest.mark.parametrize("case", list(PAIRS))
@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_exact_mean_agrees_with_enumeration_to_1e_12(case, n):
    pair = PAIRS[case]
    mean, sd = _enumerated(pair, n)
    m = MM.moments(pair, n)
    assert m.mean == pytest.approx(mean, rel=1e-12, abs=0.0)
    # exact for a coin, at n = 1, and elsewhere by pairwise (trinomial) sums within their budget
    assert m.sd == pytest.approx(sd, rel=1e-10, abs=1e-15)
    assert sd <= exact.plugin_sd_upper(pair, n)[0] + 0.5 * exact.observed_sd_upper(pair, n) / n or n == 1


@pytest.mark.parametrize("n", [10, 1000, 10**6, 10**9, 10**12])
def test_expected_categories_observed_agrees_with_decimal_powers(n):
    pair = d.Pair(d.zipf(50, 1.1), d.uniform(50))
    with localcontext() as ctx:
        ctx.prec = 60
        ref = sum(1 - (1 - Decimal(float(p))) ** n for p in pair.p.probs)
    assert exact.expected_observed(pair, n) == pytest.approx(float(ref), rel=1e-12, abs=0.0)
    plugin = registry.get("plugin_kl").moments(pair, n).mean
    assert MM.moments(pair, n).mean == pytest.approx(plugin - (float(ref) - 1) / (2 * n), rel=1e-12)


@pytest.mark.parametrize("case", ["coin", "die", "outside", "zipf"])
@pytest.mark.parametrize("n", [1, 7, 1000, 10**9])
def test_every_kernel_subtracts_half_the_categories_observed_less_one(case, n):
    pair = PAIRS.get(case) or d.Pair(d.zipf(300, 1.1), d.uniform(300))  # 300 > DENSE_K: the sparse kernel
    arrays = SupportArrays.from_pair(pair)
    counts = np.random.default_rng(n).multinomial(n, arrays.probs, size=40)
    est = estimate(counts, n, arrays, NAMES)
    seen = (counts > 0).sum(axis=1)
    np.testing.assert_array_equal(est["plugin_kl_mm"], est["plugin_kl"] - 0.5 * (seen - 1.0) / n)


def test_running_sums_count_the_categories_observed():
    """SparseSums' K̂ along sampled paths (sparse updates, then full recounts) against a recount."""
    arrays = SupportArrays.from_pair(d.Pair(d.zipf(1500, 1.1), d.uniform(1500)))
    ckpts = [3, 40, 700, 1499, 5000, 10**6]
    sums = SparseSums(30, arrays, NAMES)
    paths = count_paths(arrays.probs, ckpts, 30, rng=np.random.default_rng(5), sparse=True)
    dense = count_paths(arrays.probs, ckpts, 30, rng=np.random.default_rng(5))
    for n, (counts, change), reference in zip(ckpts, paths, dense, strict=True):
        got = sums.update(counts, change, n)
        seen = (reference > 0).sum(axis=1)
        np.testing.assert_array_equal(got["plugin_kl_mm"], got["plugin_kl"] - 0.5 * (seen - 1.0) / n)


CONFIG = """
name: mm
seed: 12
replicates: 3000
units: {units}
n: [1, 3, 30, 1000, 100000]
estimators: [llr, plugin_kl, plugin_kl_mm]
cases:
  - {{name: coin, p: 0.7, q: 0.5}}
  - {{name: die, p: [0.1, 0.2, 0.3, 0.4], q: {{uniform: 4}}}}
  - {{name: zipf, p: {{zipf: {{k: 2000, s: 1.1}}}}, q: {{uniform: 2000}}}}
"""


@pytest.fixture(scope="module")
def run(units, run_serially):
    return run_serially(CONFIG.format(units=units))


@pytest.mark.slow
def test_simulated_miller_madow_passes_sim_check(run):
    assert run.check.passed, run.check.table()


@pytest.mark.slow
def test_the_correction_is_in_the_experiment_s_units(run):
    """In bits the correction is (K̂ − 1)/(2N ln 2), not the nats formula added to bits (infomap #1033)."""
    summary = pd.read_csv(run.path / "summary.csv")
    units = summary.units.iloc[0]
    scale = math.log(2) if units == "bits" else 1.0
    experiment = parse_config(CONFIG.format(units=units))
    pairs = {case.name: case.pair for case in experiment.cases}
    wide = summary.pivot_table(index=["case", "n"], columns="estimator", values="exact_mean")
    for (case, n), row in wide.iterrows():
        gap = (exact.expected_observed(pairs[case], int(n)) - 1) / (2 * n) / scale
        assert row.plugin_kl - row.plugin_kl_mm == pytest.approx(gap, rel=1e-9, abs=1e-300)


def test_pairwise_sd_agrees_with_a_float_enumeration_at_moderate_n():
    """Die at n = 60: all 39,711 count vectors, scipy's multinomial pmf (an independent route)."""
    from scipy import stats

    pair, n = PAIRS["skewed"], 60
    p, q = pair.p.probs, pair.q.probs
    counts = np.array(list(_compositions(n, 4)), dtype=float)
    weights = stats.multinomial.pmf(counts, n, p)
    f = counts / n
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(f > 0, f * np.log(f / q), 0.0).sum(axis=1)
    values = kl - ((counts > 0).sum(axis=1) - 1) / (2 * n)
    mean = np.sum(weights * values)
    sd = math.sqrt(np.sum(weights * (values - mean) ** 2))
    m = MM.moments(pair, n)
    assert m.mean == pytest.approx(mean, rel=1e-10) and m.sd == pytest.approx(sd, rel=1e-9)


def _decimal_coin_mm_mean(h: float, q: float, n: int) -> Decimal:
    """E[KL(p̂‖q) − (K̂ − 1)/(2n)] of a coin at 45 digits, the pmf by its exact ratio from P(H = 0).

    Values are summed within 14 sd (+20) of nh, where the pmf stays above 1e-40 of its peak.
    """
    with localcontext() as ctx:
        ctx.prec = 45
        hd, qd = Decimal(h), Decimal(q)
        td, qt = 1 - hd, 1 - qd
        sd = math.sqrt(n * h * (1 - h))
        lo, hi = n * h - 14 * sd - 20, n * h + 14 * sd + 20
        pmf, total = td**n, Decimal(0)
        for c in range(n + 1):
            if lo <= c <= hi:
                f = Decimal(c) / n
                value = (f * (f / qd).ln() if c else 0) + ((1 - f) * ((1 - f) / qt).ln() if c < n else 0)
                total += pmf * (value - Decimal(1 if 0 < c < n else 0) / (2 * n))
            pmf = pmf * (n - c) * hd / ((c + 1) * td)
        return total


@pytest.mark.parametrize(
    ("h", "q", "n"),
    [
        (0.5, 0.5, 2000),
        (0.3, 0.3, 1000),
        (0.3, 0.3000001, 2000),
        (0.3, 0.3, 20000),
        (0.7, 0.7, 20000),
        (0.3, 0.3, 200000),
    ],
)
def test_mean_near_p_equal_q_keeps_its_relative_precision(h, q, n):
    """Near p = q the mean is O(1/n²), the difference of two O(1/n) parts: computed without forming them.

    Before the plug-in's r²/2 was split off (its mean is exactly (1 − p)/(2n)) it lost 2e-8 relatively
    here; a coin's stored tails (the double nearest 1 − h) must not count as 1 − h (7e-11 at n = 2e6).
    """
    got = registry.get("plugin_kl_mm").moments(d.Pair(d.coin(h), d.coin(q)), n).mean
    assert got == pytest.approx(float(_decimal_coin_mm_mean(h, q, n)), rel=1e-11, abs=0.0)
