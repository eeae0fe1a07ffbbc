"""Whole runs against exact theory: means, sds, plug-in bias, samplers, reproducibility."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim.blocks import simulate_case
from sim.config import parse_config
from sim.runner import run_experiment
from sim.tasks import block_size
from tests.helpers import z_crit

CHECKPOINTS = [1, 3, 10, 100, 10_000, 10**8]
CONFIG = f"""
name: theory
seed: 20261128
replicates: 4000
n: {CHECKPOINTS}
cases:
  - name: coin
    p: 0.7
    q: 0.5
  - name: die
    p: [0.5, 0.25, 0.15, 0.1, 0.0]
    q: [0.2, 0.2, 0.2, 0.2, 0.2]
  - name: same
    p: 0.3
    q: 0.3
"""


@pytest.fixture(scope="module")
def theory(tmp_path_factory):
    e = parse_config(CONFIG)
    report = run_experiment(e, tmp_path_factory.mktemp("out"))
    return e, report


def _moments(values, weights):
    """Mean, variance and 4th central moment of a discrete law."""
    m = np.sum(weights * values)
    c = values - m
    return m, np.sum(weights * c**2), np.sum(weights * c**4)


def _per_sample(pair, estimator):
    s = pair.support
    w = pair.p.probs[s]
    values = {
        "llr": pair.log_ratio,
        "cross_entropy": -pair.q.log_probs[s],
        "entropy": -pair.p.log_probs[s],
    }[estimator]
    return _moments(values, w)


def test_means_agree_with_exact_expectations(theory):
    # E[llr] = KL, E[cross_entropy] = H(p,q), E[entropy] = H(p) for every N.
    # z uses the exact sd of the mean, σ/√(N R); Bonferroni over all rows.
    e, report = theory
    s = report.summary
    rows = s[s.estimator != "plugin_kl"]
    z = z_crit(len(rows))
    for case in e.cases:
        for est in ("llr", "cross_entropy", "entropy"):
            mean, var, _ = _per_sample(case.pair, est)
            sub = rows[(rows.case == case.name) & (rows.estimator == est)]
            np.testing.assert_allclose(sub.target, mean, rtol=1e-12, atol=1e-15)
            se = np.sqrt(var / sub.n / e.replicates)
            tol = np.maximum(z * se, 1e-12 * max(1.0, abs(mean)))  # σ = 0: exact up to rounding
            assert np.all(np.abs(sub["mean"] - mean) <= tol), (case.name, est)


def test_sd_times_sqrt_n_is_sigma(theory):
    # The sample sd of R replicates of a mean of N draws; its standard error
    # follows from the exact 4th moment of that mean:
    #   μ4(mean) = (μ4 + 3 (N − 1) σ⁴) / N³,  Var(s²) ≈ (μ4(mean) − σ_N⁴)/R,  se(s) ≈ se(s²)/(2 σ_N).
    e, report = theory
    s = report.summary
    z = z_crit(len(s))
    for case in e.cases:
        for est in ("llr", "cross_entropy", "entropy"):
            _, var, mu4 = _per_sample(case.pair, est)
            sub = s[(s.case == case.name) & (s.estimator == est)]
            n = sub.n.to_numpy(dtype=float)
            sd_n = np.sqrt(var / n)
            mu4_mean = (mu4 + 3 * (n - 1) * var**2) / n**3
            se_sd = np.sqrt(np.maximum(mu4_mean - sd_n**4, 0) / e.replicates) / np.where(
                sd_n > 0, 2 * sd_n, 1
            )
            tol = np.maximum(z * se_sd, 1e-12)
            assert np.all(np.abs(sub.sd.to_numpy() - sd_n) <= tol), (case.name, est)
            if case.name == "coin" and est == "llr":
                sigma = report.analytic.set_index("case").loc["coin", "llr_sigma"]
                assert sigma**2 == pytest.approx(0.150761869486, rel=1e-10)


def _exact_plugin_mean(p: float, q: float, n: int) -> float:
    """E[KL(p̂‖q)] for a coin by summing over the Binomial(n, p) law."""
    h = np.arange(n + 1)
    f = h / n
    kl = np.array([stats.entropy([fi, 1 - fi], [q, 1 - q]) for fi in f])
    return float(np.sum(stats.binom.pmf(h, n, p) * kl))


def test_plugin_kl_matches_its_exact_binomial_expectation(theory):
    _e, report = theory
    s = report.summary
    sub = s[(s.case == "coin") & (s.estimator == "plugin_kl") & (s.n <= 100)]
    z = z_crit(len(sub))
    for _, row in sub.iterrows():
        exact = _exact_plugin_mean(0.7, 0.5, int(row.n))
        assert exact > row.target  # biased upward
        # mcse is estimated from R = 4000 replicates (its sd within ±5%); where
        # plug-in KL is constant (n = 1, q = ½) only rounding is left.
        assert abs(row["mean"] - exact) <= max(z * row.mcse * 1.05, 1e-12)


def test_replicate_identities(theory, tmp_path):
    e, report = theory
    df = pd.read_csv(report.path / "replicates.csv.gz")
    assert list(df.columns) == ["case", "replicate", "n", "llr", "cross_entropy", "entropy", "plugin_kl"]
    assert len(df) == len(e.cases) * e.replicates * len(CHECKPOINTS)
    scale = np.maximum(1.0, df.cross_entropy.abs())
    assert np.all(np.abs(df.cross_entropy - df.entropy - df.llr) <= 1e-12 * scale)
    # KL(f‖q) = llr + KL(f‖p) ≥ llr: evaluated separately, equal up to rounding where f = p
    assert np.all(df.plugin_kl >= df.llr - 4 * np.finfo(float).eps * df.llr.abs())
    assert np.all(df.plugin_kl >= 0.0)
    same = df[df.case == "same"]
    assert np.all(same.llr == 0.0)


def test_summary_columns_and_definitions(theory):
    e, report = theory
    s = pd.read_csv(report.path / "summary.csv")
    for col in (
        "case",
        "n",
        "estimator",
        "target",
        "mean",
        "sd",
        "mcse",
        "bias",
        "rmse",
        "q05",
        "q50",
        "q95",
        "replicates",
    ):
        assert col in s.columns
    assert len(s) == len(e.cases) * len(CHECKPOINTS) * 4
    df = pd.read_csv(report.path / "replicates.csv.gz")
    row = s[(s.case == "die") & (s.n == 10) & (s.estimator == "llr")].iloc[0]
    x = df[(df.case == "die") & (df.n == 10)].llr.to_numpy()
    assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert row.sd == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert row.mcse == pytest.approx(x.std(ddof=1) / math.sqrt(len(x)), rel=1e-12)
    assert row.bias == pytest.approx(x.mean() - row.target, rel=1e-9)
    assert row.rmse == pytest.approx(np.sqrt(np.mean((x - row.target) ** 2)), rel=1e-12)
    assert row.q50 == pytest.approx(np.quantile(x, 0.5), rel=1e-12)
    a = pd.read_csv(report.path / "analytic.csv")
    for col in ("case", "k", "kl_pq", "kl_qp", "entropy_p", "cross_entropy_pq", "llr_sigma"):
        assert col in a.columns
    assert a.set_index("case").loc["die", "kl_qp"] == math.inf


def test_same_config_gives_same_bytes(tmp_path):
    e = parse_config(CONFIG.replace("replicates: 4000", "replicates: 300"))
    a = run_experiment(e, tmp_path / "a").path
    b = run_experiment(e, tmp_path / "b").path
    for name in ("summary.csv", "analytic.csv", "config.yaml", "replicates.csv.gz"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert gzip.decompress((a / "replicates.csv.gz").read_bytes()).startswith(b"case,replicate,n,")


def test_case_streams_do_not_depend_on_other_cases():
    e1 = parse_config(CONFIG.replace("replicates: 4000", "replicates: 50"))
    e2 = parse_config(
        CONFIG.replace("replicates: 4000", "replicates: 50").replace("name: coin", "name: other")
    )
    np.testing.assert_array_equal(simulate_case(e1, e1.cases[1])[0], simulate_case(e2, e2.cases[1])[0])


def test_both_samplers_agree():
    # Two-sample z-test of the llr means with the exact sd σ/√N of each
    # replicate, and the multinomial law of the counts themselves is tested in
    # test_sampling.py for both methods.
    text = CONFIG.replace("replicates: 4000", "replicates: 3000").replace(str(CHECKPOINTS), "[1, 5, 50, 500]")
    counts = parse_config(text)
    per_sample = parse_config(text + "sampler: per-sample\n")
    z = z_crit(2 * 4)
    for case_c, case_s in zip(counts.cases[:2], per_sample.cases[:2], strict=True):
        a = simulate_case(counts, case_c)[0][:, :, 0]
        b = simulate_case(per_sample, case_s)[0][:, :, 0]
        sigma = case_c.pair.llr_sigma / np.sqrt([1, 5, 50, 500])
        diff = np.abs(a.mean(axis=0) - b.mean(axis=0))
        assert np.all(diff <= z * sigma * np.sqrt(2 / 3000))
        # and the two differ as samples (not the same stream)
        assert not np.array_equal(a, b)


def test_block_size_bounds_memory():
    assert block_size(2) == 8192
    assert block_size(50_000) * 50_000 <= 1 << 21
    assert block_size(10**7) == 1
