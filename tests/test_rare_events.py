"""Honest rare-event estimates: the tilted replicate's bound and its hit probability.

References are independent of the code under test: the Chernoff tilt and
information in 60-digit decimals (:mod:`tests.oracles`), the llr's sign per
head count in decimals, Binomial probabilities by exact enumeration or
scipy.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pandas as pd
import pytest
from scipy import stats

from sim import distributions as d
from sim.config import parse_config
from sim.decision import (
    chernoff,
    coin_tilted_hit_probability,
    coin_wrong_bound,
    log_tilted_bound,
    tilted,
    tilted_bound,
)
from sim.runner import run_experiment
from tests.oracles import chernoff_decimal


def _tilted_heads_decimal(pair: d.Pair) -> Decimal:
    """The tilted coin's heads probability P^(1−s) Q^s / Σ, at the decimal s*."""
    _, s = chernoff_decimal(pair)
    with localcontext() as ctx:
        ctx.prec = 60
        hp, hq = Decimal(pair.p.heads), Decimal(pair.q.heads)
        heads = (hp.ln() * (1 - s) + hq.ln() * s).exp()
        tails = ((1 - hp).ln() * (1 - s) + (1 - hq).ln() * s).exp()
        return heads / (heads + tails)


def _weight_decimal(pair: d.Pair, n: int, h: int) -> Decimal:
    """A tilted coin replicate's weight (p/r)^h ((1 − p)/(1 − r))^(n − h), in decimals."""
    r = _tilted_heads_decimal(pair)
    with localcontext() as ctx:
        ctx.prec = 60
        hp = Decimal(pair.p.heads)
        return (h * (hp / r).ln() + (n - h) * ((1 - hp) / (1 - r)).ln()).exp()


def _wrong_decimal(p: float, q: float, n: int, h: int) -> bool:
    """llr_n ≤ 0 at h heads, the sign decided in 60-digit decimals."""
    with localcontext() as ctx:
        ctx.prec = 60
        dp, dq = Decimal(p), Decimal(q)
        return h * (dp / dq).ln() + (n - h) * ((1 - dp) / (1 - dq)).ln() <= 0


# --------------------------------------------------------------------------
# The largest value of one tilted replicate


BOUND_CASES = {
    "tie": ("0.6666666666666666", "0.3333333333333333"),  # boundary count n/2 at even n: llr = 0 there
    "coins": ("0.7", "0.5"),
    "near": ("0.3", "0.300000001"),
    "rare": ("1.0e-10", "2.0e-10"),
}
BOUND_NS = [2, 10, 100, 1000, 10**9]
BOUND_CONFIG = f"""
name: bound
seed: 11
replicates: 2000
n: {BOUND_NS}
estimators: [llr, p_wrong_tilted]
cases:
{"".join(f"  - {{name: {k}, p: {p}, q: {q}}}{chr(10)}" for k, (p, q) in BOUND_CASES.items())}\
  - {{name: die, p: [0.3, 0.25, 0.2, 0.15, 0.1], q: [0.1, 0.15, 0.2, 0.25, 0.3]}}
"""


@pytest.fixture(scope="module")
def bound_run(tmp_path_factory):
    e = parse_config(BOUND_CONFIG)
    report = run_experiment(e, tmp_path_factory.mktemp("bound"))
    reps = pd.read_csv(report.path / "replicates.csv.gz")
    return e, reps


def test_no_tilted_replicate_exceeds_the_bound(bound_run):
    e, reps = bound_run
    for case in e.cases:
        for n in BOUND_NS:
            values = reps[(reps.case == case.name) & (reps.n == n)].p_wrong_tilted
            assert values.max() <= tilted_bound(case.pair, n), (case.name, n)


def test_coin_replicates_at_the_boundary_count_reach_the_bound(bound_run):
    # The largest value is the weight at the boundary count h (w grows towards
    # it), which some of 2000 replicates hit whenever P_r(H = h) ≥ 0.01 (missed
    # with probability 0.99²⁰⁰⁰ = 2e-9).  It is exp(−nC + s·a·(h − t)), and
    # e^(−nC) itself for the tie, whose h = t = n/2 (to ~1e-16·n counts).
    e, reps = bound_run
    reached = 0
    for case in e.cases:
        if case.pair.family != "coin":
            continue
        c_ref = chernoff_decimal(case.pair)[0]
        r = float(_tilted_heads_decimal(case.pair))
        for n in BOUND_NS:
            _, h = coin_wrong_bound(case.pair.p.heads, case.pair.q.heads, n)
            if stats.binom.pmf(h, n, r) < 0.01:
                continue
            values = reps[(reps.case == case.name) & (reps.n == n)].p_wrong_tilted
            bound = tilted_bound(case.pair, n)
            exact = float(_weight_decimal(case.pair, n, h))
            assert values.max() == pytest.approx(exact, rel=1e-12 + 1e-15 * n), (case.name, n)
            assert values.max() <= bound and exact <= bound
            if case.name == "tie":
                allowance = math.log(bound) + n * chernoff(case.pair).information
                assert abs(math.log(values.max()) + n * float(c_ref)) <= allowance, n
            reached += 1
    assert reached >= 12  # every coin at n ≤ 1000, and the rare coin at 10⁹ (H = 1)


def test_the_bound_is_e_to_the_minus_nc_up_to_rounding():
    for p, q in BOUND_CASES.values():
        pair = d.Pair(d.coin(float(p)), d.coin(float(q)))
        c_ref = float(chernoff_decimal(pair)[0])
        for n in BOUND_NS:
            excess = log_tilted_bound(pair, n) + n * c_ref
            assert 0 < excess <= 1e-13 * n + 1e-12, (p, q, n)  # above e^(−nC), by rounding only


# --------------------------------------------------------------------------
# The chance one tilted replicate sees the event


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.5, 0.8), (0.31, 0.29), (1e-10, 2e-10)])
@pytest.mark.parametrize("n", [1, 7, 60, 250])
def test_coin_tilted_hit_probability_against_enumeration(p, q, n):
    pair = d.Pair(d.coin(p), d.coin(q))
    r = _tilted_heads_decimal(pair)
    with localcontext() as ctx:
        ctx.prec = 60
        exact = sum(
            (math.comb(n, h) * r**h * (1 - r) ** (n - h) for h in range(n + 1) if _wrong_decimal(p, q, n, h)),
            Decimal(0),
        )
    assert coin_tilted_hit_probability(p, q, n) == pytest.approx(float(exact), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (2 / 3, 1 / 3), (0.5, 0.5000126), (1e-10, 2e-10)])
@pytest.mark.parametrize("n", [10**4, 10**6, 10**9])
def test_coin_tilted_hit_probability_against_scipy(p, q, n):
    pair = d.Pair(d.coin(p), d.coin(q))
    r = float(tilted(pair, chernoff(pair).s)[0])
    side, h = coin_wrong_bound(p, q, n)
    ref = stats.binom.cdf(h, n, r) if side == "le" else stats.binom.sf(h - 1, n, r)
    assert coin_tilted_hit_probability(p, q, n) == pytest.approx(float(ref), rel=1e-9)


def test_hit_probability_of_the_rare_coin_is_what_empties_its_rows():
    # H ≥ 1 under r ≈ 1.4427e-10: one tilted replicate in 70,000 sees the event at n = 10⁵
    assert coin_tilted_hit_probability(1e-10, 2e-10, 10**5) == pytest.approx(1.4427e-5, rel=1e-4)
    assert coin_tilted_hit_probability(0.3, 0.3, 10) == 1.0  # p = q: every sample ties
    assert coin_tilted_hit_probability(0.0, 0.5, 10) == 0.0  # all tails: llr = log 2 > 0
