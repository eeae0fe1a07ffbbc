"""k1, k2, k3: KL estimated from r = q(x)/p(x) scored at samples of p, against Decimal arithmetic.

The references here never call the code under test: each per-observation
term, its mean and its variance are computed with :mod:`decimal` at 50
digits from the float probabilities themselves (converted exactly), so a
reference is exact to far below the 1e-12 relative tolerance the issue asks.
"""

from __future__ import annotations

import gzip
import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest

from sim import registry
from sim.config import parse_config
from sim.registry import exp_excess
from sim.runner import Execution, run_experiment

EPS = np.finfo(float).eps

CASES = """
name: ks
seed: 11
replicates: 3000
n: [1, 7, 100, 1000]
estimators: [llr, k1, k2, k3]
cases:
  - {name: coin, p: 0.6, q: 0.5}
  - {name: far, p: 0.9, q: 0.1}
  - {name: close, p: 0.5, q: 0.500000001}
  - {name: die, p: [0.1, 0.2, 0.3, 0.4], q: {uniform: 4}}
  - {name: outside, p: [0.5, 0.5, 0.0, 0.0], q: [0.25, 0.25, 0.25, 0.25]}
  - {name: huge_r, p: [0.98, 0.01, 0.01], q: [0.01, 0.01, 0.98]}
  - {name: zipf, p: {zipf: {k: 50, s: 1.1}}, q: {uniform: 50}}
"""
EXPERIMENT = parse_config(CASES)
PAIRS = {case.name: case.pair for case in EXPERIMENT.cases}
KS = ("k1", "k2", "k3")


def _decimal_excess(x: Decimal) -> Decimal:
    """e^x − 1 − x at 50 digits: its series near 0 (no cancellation), else exp directly."""
    if abs(x) >= 1:
        return x.exp() - 1 - x
    total, term, k = Decimal(0), x, 1
    while True:
        k += 1
        term = term * x / k
        if term == 0 or abs(term) < abs(total) * Decimal("1e-45"):
            return total + term
        total += term


def _reference_terms(pair, name: str) -> tuple[list[Decimal], list[Decimal]]:
    """p and one observation's term per category of p's support, in Decimal."""
    ps, terms = [], []
    for i in pair.support:
        p, q = Decimal(float(pair.p.probs[i])), Decimal(float(pair.q.probs[i]))
        log_r = (q / p).ln()
        terms.append({"k1": -log_r, "k2": log_r * log_r / 2, "k3": _decimal_excess(log_r)}[name])
        ps.append(p)
    return ps, terms


def _reference_moments(pair, name: str, n: int) -> tuple[float, float, float]:
    """Exact mean and sd at ``n``, and the largest |term| (what the terms' rounding scales with)."""
    with localcontext() as ctx:
        ctx.prec = 50
        ps, terms = _reference_terms(pair, name)
        mean = sum(p * t for p, t in zip(ps, terms, strict=True))
        var = sum(p * (t - mean) ** 2 for p, t in zip(ps, terms, strict=True))
        return float(mean), float((var / n).sqrt()), float(max(abs(t) for t in terms))


def _reference_kl_minus_outside(pair) -> float:
    """KL(p‖q) − q(outside p's support), the mean of k3, from its definition."""
    with localcontext() as ctx:
        ctx.prec = 50
        kl = Decimal(0)
        for i in pair.support:
            p, q = Decimal(float(pair.p.probs[i])), Decimal(float(pair.q.probs[i]))
            kl += p * (p / q).ln()
        inside = sum(Decimal(float(pair.q.probs[i])) for i in pair.support)
        return float(kl - (1 - inside))


def test_exp_excess_keeps_relative_precision_at_every_scale():
    """Within 6ε of 50-digit Decimal from 1e-300 to 700, both signs.

    The bound: below |x| = 1 the series' three final roundings and Horner's
    accumulated ones (|x|/k ≤ 1/3 per step) stay under 4ε; above it,
    expm1 (≤ 1 ulp) minus x cancels at most a factor (e − 1 + 1)/(e − 2) < 4.4
    (at x = −1: 1.632/0.368), so ≤ 5ε.
    """
    mags = np.logspace(-153, math.log10(700), 400)  # from x²/2 ≈ 5e-307, a normal float
    x = np.concatenate([-mags, mags, [-1.0, 1.0, -0.999999, 0.999999]])
    got = exp_excess(x)
    with localcontext() as ctx:
        ctx.prec = 50
        ref = np.array([float(_decimal_excess(Decimal(float(v)))) for v in x])
    assert np.all(ref > 0)
    assert np.all(np.abs(got - ref) <= 6 * EPS * ref)
    assert exp_excess(np.array([0.0, 1e-300, -1e-300])).tolist() == [0.0, 0.0, 0.0]  # x²/2 underflows


@pytest.mark.parametrize("name", KS)
@pytest.mark.parametrize("case", list(PAIRS))
def test_exact_mean_and_sd_agree_with_decimal_to_1e_12(case, name):
    """Means to 1e-12 relative at every scale (KL ≈ 2e-18 in ``close``).

    The sd is summed from the float terms, each within a few ε of exact, so
    its error is a few ε·max|term|/√n: 1e-12 relative wherever the terms'
    spread is not far below their size. Where it is (k2 and k3 of a
    near-equal or symmetric coin, whose terms agree to 1e-8 or to rounding),
    that bound is the one asserted.
    """
    pair, spec = PAIRS[case], registry.get(name)
    for n in (1, 7, 1000, 10**12):
        mean, sd, largest = _reference_moments(pair, name, n)
        m = spec.moments(pair, n)
        assert m.mean == pytest.approx(mean, rel=1e-12, abs=0.0), (case, name, n)
        rounding = 8 * EPS * largest / math.sqrt(n)
        assert abs(m.sd - sd) <= max(1e-12 * sd, rounding), (case, name, n, m.sd, sd)


@pytest.mark.parametrize("case", list(PAIRS))
def test_k1_and_k3_are_unbiased_for_kl_where_q_lives_inside_p_s_support(case):
    """k1 = llr exactly; k3's mean is KL − q(outside p's support): KL itself when q lives on p's support."""
    pair = PAIRS[case]
    k1, k3, llr = (registry.get(e).moments(pair, 10) for e in ("k1", "k3", "llr"))
    assert (k1.mean, k1.sd) == (llr.mean, llr.sd)
    assert k3.mean == pytest.approx(_reference_kl_minus_outside(pair), rel=1e-12, abs=0.0)
    if case != "outside":
        assert k3.mean == pytest.approx(pair.kl_pq, rel=1e-12, abs=0.0)
    else:
        assert k3.mean < pair.kl_pq - 0.49


def test_k2_is_half_the_mean_square_log_ratio():
    """E[k2] = ½E_p[(log r)²] = ½(σ² + KL²), σ² = Var_p[log p/q]: biased for KL."""
    for pair in PAIRS.values():
        expected = 0.5 * (pair.llr_sigma**2 + pair.kl_pq**2)
        assert registry.get("k2").moments(pair, 3).mean == pytest.approx(expected, rel=1e-9)


def test_k3_has_the_smaller_variance_near_q_and_the_larger_where_r_is_huge():
    """Exact sds: near p = q, k3 ≈ k2 is second order in log r and far less variable than k1;
    where q puts mass on a category p rarely draws (r = 98), k3's rare huge terms dominate."""
    sd = {(c, e): registry.get(e).moments(PAIRS[c], 100).sd for c in PAIRS for e in ("k1", "k3")}
    for case in ("close", "coin", "die", "zipf"):
        assert sd[case, "k3"] < sd[case, "k1"], case
    assert sd["close", "k3"] < 1e-8 * sd["close", "k1"]
    assert sd["huge_r", "k3"] > 8 * sd["huge_r", "k1"]
    assert sd["coin", "k3"] < sd["coin", "k1"] / 30
    assert sd["far", "k1"] < sd["far", "k3"] < 1.05 * sd["far", "k1"]  # p far from q: about equal


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ks")
    return run_experiment(EXPERIMENT, out, execution=Execution(workers=1))


def test_simulated_k_estimators_pass_sim_check_and_k3_is_never_negative(run):
    assert run.check.passed, run.check.table()
    with gzip.open(run.path / "replicates.csv.gz", "rt") as fh:
        replicates = pd.read_csv(fh)
    assert (replicates.k3 >= 0).all()
    assert (replicates.k1 == replicates.llr).all()
    summary = pd.read_csv(run.path / "summary.csv")
    analytic = pd.read_csv(run.path / "analytic.csv").set_index("case")
    for name in KS:
        rows = summary[summary.estimator == name]
        assert (rows.target.to_numpy() == analytic.kl_pq[rows.case].to_numpy()).all()


def test_in_bits_the_k_estimators_are_their_nats_over_log_2(tmp_path):
    text = CASES.replace("name: ks", "name: ks\nunits: bits").replace("replicates: 3000", "replicates: 200")
    summary = pd.read_csv(
        run_experiment(parse_config(text), tmp_path, execution=Execution(workers=1)).path / "summary.csv"
    )
    for row in summary[summary.estimator.isin(KS)].itertuples():
        nats = registry.get(row.estimator).moments(PAIRS[row.case], int(row.n)).mean
        assert row.exact_mean == pytest.approx(nats / math.log(2), rel=1e-15, abs=0.0)
