"""Markov sources: rates, asymptotic variances and finite-n laws against independent references;
the sampler's laws; config errors; ``sim check`` on a run and on a tampered one.

References are independent of the code under test: 50-digit Decimal enumeration of every path
(means and central moments 2–4 at small n), the stationary law from numpy's eigenvectors, rates
as Decimal sums, and the CLT variance from the pair chain's autocovariances (summed until they
vanish).  Statistical tests use fixed seeds and a 1e-3 false-alarm level (Bonferroni over the
rows), with standard errors the exact sds over √R.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from decimal import Decimal, getcontext

import numpy as np
import pytest

from sim import registry
from sim.check import check_tables
from sim.config import parse_config
from sim.errors import ConfigError
from sim.markov import Chain, MarkovPair, unigram
from sim.markov.paths import plugin, walk
from sim.pipelines import pipeline_for
from tests.helpers import z_crit

getcontext().prec = 50
D = Decimal

STICKY = np.array([[0.9, 0.1], [0.1, 0.9]])
THREE_P = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
THREE_Q = np.array([[0.45, 0.35, 0.2], [0.15, 0.55, 0.3], [0.3, 0.25, 0.45]])
PERIODIC = np.array([[0.0, 1.0], [1.0, 0.0]])
ZEROS = np.array([[0.0, 0.7, 0.3], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])

PAIRS = {
    "sticky-vs-unigram": lambda: MarkovPair(Chain(STICKY), unigram(np.array([0.5, 0.5]))),
    "three-from-state-0": lambda: MarkovPair(Chain(THREE_P, np.array([1.0, 0.0, 0.0])), Chain(THREE_Q)),
    "three-given-starts": lambda: MarkovPair(
        Chain(THREE_P, np.array([0.2, 0.5, 0.3])), Chain(THREE_Q, np.array([0.3, 0.3, 0.4]))
    ),
    "periodic": lambda: MarkovPair(Chain(PERIODIC), Chain(np.array([[0.2, 0.8], [0.7, 0.3]]))),
    "zeros-vs-unigram": lambda: MarkovPair(Chain(ZEROS), unigram(np.array([0.2, 0.5, 0.3]))),
}
TERMS = {"llr": registry.log_ratio, "cross_entropy": registry.minus_log_q, "entropy": registry.minus_log_p}


def _normalised(a) -> list:
    """Rows (or a vector) of floats as Decimals divided by their Decimal sum: probabilities exactly."""
    rows = np.atleast_2d(a)
    out = []
    for row in rows:
        exact = [D(float(x)) for x in row]
        total = sum(exact)
        out.append([x / total for x in exact])
    return out if np.ndim(a) == 2 else out[0]


def _decimal_logs(pair: MarkovPair, name: str):
    """g and F of an estimator as 50-digit Decimals, from the definitions on exactly normalised rows
    (the floats of a row sum to 1 only within an ulp; see sim.markov.theory.kl_rows)."""
    k = pair.p.k
    mu, nu = _normalised(pair.p.start), _normalised(pair.q.start)
    big_p, big_q = _normalised(pair.p.transition), _normalised(pair.q.transition)

    def g(i):
        return {
            "llr": mu[i].ln() - nu[i].ln(),
            "cross_entropy": -nu[i].ln(),
            "entropy": -mu[i].ln(),
        }[name]

    def f(i, j):
        return {
            "llr": big_p[i][j].ln() - big_q[i][j].ln(),
            "cross_entropy": -big_q[i][j].ln(),
            "entropy": -big_p[i][j].ln(),
        }[name]

    gs = {i: g(i) for i in range(k) if pair.p.start[i] > 0}
    fs = {(i, j): f(i, j) for i in range(k) for j in range(k) if pair.p.transition[i, j] > 0}
    return gs, fs


def _enumerated(pair: MarkovPair, name: str, n: int) -> tuple[float, float, float, float]:
    """Mean and central moments 2–4 of the per-token estimator at n, over every path (Decimal)."""
    gs, fs = _decimal_logs(pair, name)
    k = pair.p.k
    start, steps = _normalised(pair.p.start), _normalised(pair.p.transition)
    law = []
    for path in itertools.product(range(k), repeat=n):
        if path[0] not in gs:
            continue
        w, v = start[path[0]], gs[path[0]]
        for a, b in itertools.pairwise(path):
            if (a, b) not in fs:
                w = D(0)
                break
            w *= steps[a][b]
            v += fs[a, b]
        if w:
            law.append((w, v / n))
    mean = sum(w * v for w, v in law)
    central = [sum(w * (v - mean) ** j for w, v in law) for j in (2, 3, 4)]
    return float(mean), *(float(c) for c in central)


@pytest.mark.parametrize("n", [1, 2, 3, 6])
@pytest.mark.parametrize("name", list(TERMS))
@pytest.mark.parametrize("case", list(PAIRS))
def test_finite_n_mean_and_moments_against_enumeration(case, name, n):
    pair = PAIRS[case]()
    mean, var, mu3, mu4 = _enumerated(pair, name, n)
    exact = pair.exact(TERMS[name])
    got_var, got_mu3, got_mu4 = exact.central_moments(n)
    assert exact.mean(n) == pytest.approx(mean, rel=1e-13, abs=0.0)
    if var <= (8 * 2.2e-16 * mean) ** 2:  # equal values up to the floats' own rounding: exactly 0
        assert got_var == 0.0
        return
    assert got_var == pytest.approx(var, rel=1e-11, abs=0.0)
    assert got_mu3 == pytest.approx(mu3, rel=1e-9, abs=1e-11 * var**1.5)
    assert got_mu4 == pytest.approx(mu4, rel=1e-10, abs=0.0)


def _stationary_by_eigenvector(p: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eig(p.T)
    v = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    return v / v.sum()


def _decimal_rates(pair: MarkovPair) -> dict[str, float]:
    """KL, entropy and cross-entropy rates as Decimal sums over π (from numpy's eigenvectors)."""
    pi = _stationary_by_eigenvector(pair.p.transition)
    steps = _normalised(pair.p.transition)
    out = {}
    for name in TERMS:
        _, fs = _decimal_logs(pair, name)
        out[name] = float(sum(D(float(pi[i])) * steps[i][j] * v for (i, j), v in fs.items()))
    return out


def _pair_chain_sigma2(pair: MarkovPair, name: str, lags: int = 4000) -> float:
    """lim n·Var by the pair chain Y_t = (X_{t−1}, X_t): Var_π(f) + 2 Σ_k Cov(f(Y_0), f(Y_k))."""
    big_p, k = pair.p.transition, pair.p.k
    pi = _stationary_by_eigenvector(big_p)
    _, fs = _decimal_logs(pair, name)
    f = np.zeros((k, k))
    for (i, j), v in fs.items():
        f[i, j] = float(v)
    w = pi[:, None] * big_p  # P(Y = (i, j)) under stationarity
    mean = float(np.sum(w * f))
    c = f - mean
    var = float(np.sum(w * c * c))
    # E[c(Y_0) c(Y_k)] = Σ_{ij} w_ij c_ij Σ_l (P^(k−1))_jl Σ_m P_lm c_lm
    after = np.sum(big_p * c, axis=1)  # E[c(Y_1) | X_0 = l]
    total, vec = 0.0, after
    for _ in range(lags):
        total += float(np.sum(w * c * vec[None, :]))
        vec = big_p @ vec
    return var + 2.0 * total


@pytest.mark.parametrize("case", [c for c in PAIRS if c != "periodic"])
def test_rates_and_sigmas_against_independent_references(case):
    pair = PAIRS[case]()
    rates = _decimal_rates(pair)
    assert pair.kl_pq == pytest.approx(rates["llr"], rel=1e-13, abs=0.0)
    assert pair.entropy_p == pytest.approx(rates["entropy"], rel=1e-13, abs=0.0)
    assert pair.cross_entropy_pq == pytest.approx(rates["cross_entropy"], rel=1e-13, abs=0.0)
    assert np.allclose(pair.p.stationary, _stationary_by_eigenvector(pair.p.transition), rtol=1e-13, atol=0)
    for name, column in [
        ("llr", "llr_sigma"),
        ("cross_entropy", "cross_entropy_sigma"),
        ("entropy", "entropy_sigma"),
    ]:
        want = _pair_chain_sigma2(pair, name)
        assert getattr(pair, column) ** 2 == pytest.approx(want, rel=1e-11, abs=0.0), column


@pytest.mark.parametrize("n", [2, 7, 10**6, 10**12, 10**12 + 1])
def test_a_periodic_chain_has_its_exact_law_at_every_n(n):
    """p alternates 0, 1, 0, … from a fair first state: two paths, whose values are Decimal sums."""
    pair = PAIRS["periodic"]()
    gs, fs = _decimal_logs(pair, "llr")
    values = []
    for start in (0, 1):
        up = (n - 1 + (1 - start)) // 2  # transitions 0→1 on the path that starts at ``start``
        values.append((gs[start] + up * fs[0, 1] + (n - 1 - up) * fs[1, 0]) / n)
    mean, sd = (values[0] + values[1]) / 2, abs(values[0] - values[1]) / 2
    exact = pair.exact(registry.log_ratio)
    assert exact.mean(n) == pytest.approx(float(mean), rel=1e-13, abs=0.0)
    assert math.sqrt(exact.central_moments(n)[0]) == pytest.approx(
        float(sd), rel=1e-9, abs=1e-15 * float(mean)
    )
    assert pair.kl_pq == pytest.approx(float((fs[0, 1] + fs[1, 0]) / 2), rel=1e-14, abs=0.0)
    assert pair.llr_sigma == pytest.approx(0.0, abs=1e-7)  # n·Var → 0: the two paths' gap is O(1/n)


@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-9])
def test_nearly_equal_rows_keep_their_relative_precision(delta):
    """KL rate ≈ δ²-sized: Decimal sums of π_i Σ_j P_ij log(P_ij/Q_ij), and σ² ≈ δ²-sized too."""
    tilt = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [-1.0, 0.0, 1.0]]) * delta * 0.1
    q = THREE_P + tilt
    pair = MarkovPair(Chain(THREE_P), Chain(q))
    rates = _decimal_rates(pair)
    assert pair.kl_pq == pytest.approx(rates["llr"], rel=1e-11, abs=0.0)
    assert pair.llr_sigma**2 == pytest.approx(_pair_chain_sigma2(pair, "llr"), rel=1e-9, abs=0.0)
    # n = 1 (the stationary laws' KL): the test below, against 50-digit stationary laws
    explicit = MarkovPair(Chain(THREE_P, np.array([0.2, 0.5, 0.3])), Chain(q, np.array([0.3, 0.3, 0.4])))
    for n in (2, 3):
        got = explicit.exact(registry.log_ratio).mean(n)
        assert got == pytest.approx(_enumerated(explicit, "llr", n)[0], rel=1e-12, abs=0.0)
    for n in (1000, 10**12):  # the transient is O(1/n) of the rate
        assert pair.exact(registry.log_ratio).mean(n) == pytest.approx(
            pair.kl_pq, rel=10.0 / n + 1e-12, abs=0.0
        )


def test_the_sticky_source_has_a_positive_kl_rate_with_equal_marginals():
    pair = PAIRS["sticky-vs-unigram"]()
    assert pair.kl_stationary == 0.0
    want = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert pair.kl_pq == pytest.approx(want, rel=1e-15, abs=0.0)
    assert pair.cross_entropy_sigma == 0.0  # −log ½ on every token


def test_plugin_is_the_empirical_transitions_kl_rate():
    pair = PAIRS["three-from-state-0"]()
    counts = np.array([[3, 1, 0, 2, 5, 1, 0, 0, 4], [0, 0, 0, 0, 7, 0, 1, 1, 7]])
    got = plugin(pair, counts, n=1 + int(counts[0].sum()))
    for row, value in zip(counts, got, strict=True):
        c = row.reshape(3, 3).astype(float)
        total = D(0)
        for i in range(3):
            out = c[i].sum()
            for j in range(3):
                if c[i, j] > 0:
                    total += D(c[i, j]) * (D(c[i, j]) / (D(out) * D(float(pair.q.transition[i, j])))).ln()
        assert value == pytest.approx(float(total / D(int(row.sum()))), rel=1e-13, abs=0.0)


def test_checkpoints_are_prefixes_of_one_path_whatever_the_grid():
    pair = PAIRS["three-from-state-0"]()
    a = [(f.copy(), c.copy()) for f, c in walk(pair, [3, 50, 400], 64, np.random.default_rng(5))]
    b = [(f.copy(), c.copy()) for f, c in walk(pair, [400], 64, np.random.default_rng(5))]
    assert np.array_equal(a[-1][1], b[-1][1]) and np.array_equal(a[-1][0], b[-1][0])
    for (_, before), (_, after), n in zip(a[:-1], a[1:], [3, 50], strict=True):
        assert np.all(after >= before) and np.all(before.sum(axis=1) == n - 1)
    assert np.all(a[-1][1].sum(axis=1) == 399)
    assert np.all(a[0][0] == 0)  # p starts in state 0


def test_transitions_and_first_states_follow_the_chain():
    """Counts out of each state follow P's rows (χ² per row); first states follow π."""
    from scipy import stats

    pair = PAIRS["three-given-starts"]()
    [(first, counts)] = list(walk(pair, [2001], 500, np.random.default_rng(11)))
    c = counts.sum(axis=0).reshape(3, 3)
    p_values = [stats.chisquare(c[i], c[i].sum() * pair.p.transition[i]).pvalue for i in range(3)]
    starts = np.bincount(first, minlength=3)
    p_values.append(stats.chisquare(starts, 500 * pair.p.start).pvalue)
    assert min(p_values) > 1e-3 / len(p_values)


def _config(cases: str, n: str = "[2, 3, 10, 100, 1000, 5000]", extra: str = "") -> str:
    return f"name: m\nseed: 7\nreplicates: 400\nn: {n}\nestimators: [llr, cross_entropy, entropy, plugin_kl]\n{extra}cases:\n{cases}"


CASES = """\
  - {name: sticky, p: {markov: {transition: [[0.9, 0.1], [0.1, 0.9]]}}, q: [0.5, 0.5]}
  - {name: three, p: {markov: {transition: [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]], initial: [1, 0, 0]}},
     q: {markov: {transition: [[0.45, 0.35, 0.2], [0.15, 0.55, 0.3], [0.3, 0.25, 0.45]]}}}
"""


def _tables(experiment) -> dict:
    def run_tasks(tasks, fn):
        for task in tasks:
            yield task, fn(experiment, task)

    return pipeline_for(experiment).tables(experiment, lambda name: contextlib.nullcontext(), run_tasks)


@pytest.fixture(scope="module")
def simulated():
    experiment = parse_config(_config(CASES))
    return experiment, _tables(experiment)


def test_simulated_means_and_sds_agree_with_the_exact_finite_n_laws(simulated):
    """Every (case, n) row of llr, cross_entropy and entropy within z·MCSE of its exact mean."""
    _, tables = simulated
    s = tables["summary.csv"]
    rows = s[s.estimator != "plugin_kl"]
    z = (rows["mean"] - rows.exact_mean) / (rows.exact_sd / np.sqrt(rows.replicates))
    z = z[rows.exact_sd > 0]
    assert len(z) >= 30 and np.all(np.abs(z) <= z_crit(len(z)))
    analytic = tables["analytic.csv"].set_index("case")
    assert analytic.loc["sticky", "kl_stationary"] == 0.0 and analytic.loc["sticky", "kl_pq"] > 0.3


def test_sim_check_passes_and_catches_a_shift_of_ten_mcse(simulated):
    experiment, tables = simulated
    report = check_tables(experiment, tables, name="m")
    assert report.passed, report.table()
    tampered = tables["summary.csv"].copy()
    row = (tampered.case == "three") & (tampered.n == 1000) & (tampered.estimator == "llr")
    tampered.loc[row, "mean"] += 10 * tampered.loc[row, "mcse"]
    failed = check_tables(experiment, {**tables, "summary.csv": tampered}, name="m")
    assert not failed.passed
    assert set(failed.failures.case) == {"three"}


def test_bits_are_nats_over_ln2():
    nats = _tables(parse_config(_config(CASES, n="[2, 50]")))
    bits = _tables(parse_config(_config(CASES, n="[2, 50]", extra="units: bits\n")))
    for table, column in [("analytic.csv", "kl_pq"), ("analytic.csv", "llr_sigma"), ("summary.csv", "mean")]:
        assert np.allclose(bits[table][column] * math.log(2), nats[table][column], rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "{name: a, p: {markov: {transition: [[1, 0], [0.5, 0.5]]}}, q: [0.5, 0.5]}",
            "cases[0].p.markov.transition: the chain is not irreducible (state 1 cannot be reached from "
            "state 0), so its KL rate does not exist",
        ),
        (
            "{name: a, p: {markov: {transition: [[0.9, 0.1], [0.2, 0.8]]}}, "
            "q: {markov: {transition: [[1, 0], [0.5, 0.5]], initial: [0.5, 0.5]}}}",
            "cases[0].q.markov.transition: q's transition 0→1 has probability 0 where p's is 0.1 > 0",
        ),
        (
            "{name: a, p: {markov: {transition: [[0.9, 0.1], [0.2, 0.7]]}}, q: [0.5, 0.5]}",
            "cases[0].p.markov.transition[1]: probabilities sum to 0.9, not 1",
        ),
        (
            "{name: a, p: {markov: {transition: [[0.9, 0.1], [0.2, 0.8]]}}, q: [0.2, 0.3, 0.5]}",
            "q has 3 categories",
        ),
        (
            "{name: a, p: [0.5, 0.5], q: {markov: {transition: [[0.9, 0.1], [0.2, 0.8]]}}}",
            "p must be one too",
        ),
        (
            "{name: a, p: {markov: {transition: [[0.9, 0.1], [0.2, 0.8]], initial: [1, 0]}}, "
            "q: {markov: {transition: [[0.9, 0.1], [0.2, 0.8]], initial: [0, 1]}}}",
            "q.markov.initial: q's initial law gives state 0 probability 0",
        ),
        (
            "{name: a, p: {markov: {transition: [[0.9, 0.1], [0.2, 0.8]], initial: 1}}, q: [0.5, 0.5]}",
            "initial",
        ),
    ],
)
def test_config_errors_name_the_key(case, message):
    with pytest.raises(ConfigError) as info:
        parse_config(_config("  - " + case + "\n"), "m.yaml")
    assert any(message in str(issue) for issue in info.value.issues), info.value.issues
    assert all(str(issue).startswith("m.yaml:") for issue in info.value.issues)


def test_estimators_a_markov_case_cannot_have_are_config_errors():
    text = _config(CASES, n="[1, 10]").replace("plugin_kl]", "plugin_kl, k2]") + ""
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace("seed: 7", "seed: 7\nsave_replicates: false"), "m.yaml")
    lines = [str(i) for i in info.value.issues]
    assert any("plugin_kl is not available" in line and "n ≥ 2" in line for line in lines)
    assert any("k2 is not available" in line for line in lines)
    assert any("save_replicates" in line for line in lines)
    defaults = parse_config(
        _config(CASES, n="[1, 10]").replace("estimators: [llr, cross_entropy, entropy, plugin_kl]\n", "")
    )
    assert defaults.estimators == ("llr", "cross_entropy", "entropy")


def _decimal_stationary(rows: list) -> list:
    """π of exactly normalised Decimal rows: π(I − P) = 0, Σπ = 1, by Gaussian elimination."""
    k = len(rows)
    a = [[(D(1) if i == j else D(0)) - rows[j][i] for j in range(k)] + [D(0)] for i in range(k)]
    a[-1] = [D(1)] * k + [D(1)]
    for c in range(k):
        pivot = max(range(c, k), key=lambda r: abs(a[r][c]))
        a[c], a[pivot] = a[pivot], a[c]
        for r in range(k):
            if r != c and a[r][c]:
                factor = a[r][c] / a[c][c]
                a[r] = [x - factor * y for x, y in zip(a[r], a[c], strict=True)]
    return [a[i][k] / a[i][i] for i in range(k)]


@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-9])
def test_the_stationary_marginals_kl_keeps_its_precision_for_nearly_equal_chains(delta):
    """KL(π_p‖π_q) ~ δ²: from the gap solved for directly, against 50-digit stationary laws."""
    tilt = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [-1.0, 0.0, 1.0]]) * delta * 0.1
    pair = MarkovPair(Chain(THREE_P), Chain(THREE_P + tilt))
    pi_p = _decimal_stationary(_normalised(THREE_P))
    pi_q = _decimal_stationary(_normalised(THREE_P + tilt))
    want = sum(a * (a / b).ln() for a, b in zip(pi_p, pi_q, strict=True))
    assert pair.kl_stationary == pytest.approx(float(want), rel=1e-13, abs=0.0)
    assert pair.exact(registry.log_ratio).mean(1) == pytest.approx(float(want), rel=1e-13, abs=0.0)


def test_the_convergence_figure_names_the_kl_rate(simulated):
    import matplotlib.pyplot as plt

    from sim.figures.convergence import plot_convergence

    _, tables = simulated
    analytic = tables["analytic.csv"].set_index("case", drop=False)
    summary = tables["summary.csv"]
    fig, ax = plt.subplots()
    try:
        plot_convergence(summary[summary.case == "sticky"], analytic.loc["sticky"], ax=ax)
        assert "KL rate (per token)" in [line.get_label() for line in ax.get_lines()]
        assert "KL rate = 0.3681" in ax.get_title()
    finally:
        plt.close(fig)


def test_paths_longer_than_ten_million_tokens_are_refused():
    with pytest.raises(
        ConfigError, match=r"n: Markov paths are simulated step by step .* at most 10,000,000"
    ):
        parse_config(_config(CASES, n="[2, 20000000]"), "m.yaml")


def test_a_deterministic_source_with_sigma_zero_passes_sim_check():
    """A periodic chain from a fixed state: the llr is the rate exactly at even n (σ = 0); coverage
    flags and sim check's recount must agree however the last bit falls."""
    text = _config(
        "  - {name: alt, p: {markov: {transition: [[0, 1], [1, 0]], initial: [1, 0]}}, q: [0.3, 0.7]}\n"
        "  - {name: half, p: {markov: {transition: [[0, 1], [1, 0]], initial: [1, 0]}}, q: [0.5, 0.5]}\n",
        n="[2, 10, 100, 1000]",
    ).replace("replicates: 400", "replicates: 50")
    experiment = parse_config(text)
    tables = _tables(experiment)
    report = check_tables(experiment, tables, name="m")
    assert report.passed, report.table()
    s = tables["summary.csv"]
    assert set(s[s.estimator == "llr"].coverage95) == {1.0}


def test_a_unigram_model_of_the_rounded_stationary_law_has_its_tiny_kl_right():
    """q = p's stationary law rounded to doubles: KL(π_p‖q) ~ 1e-32, against 50-digit laws."""
    r = Chain(THREE_P).stationary.copy()
    r[0] = np.nextafter(r[0], 1.0)  # one more ulp: a gap of ~1e-17, a KL of ~1e-33
    pair = MarkovPair(Chain(THREE_P), unigram(r))
    pi_p, q = _decimal_stationary(_normalised(THREE_P)), _normalised(r)
    want = sum(a * (a / b).ln() for a, b in zip(pi_p, q, strict=True))
    assert 0.0 < float(want) < 1e-30
    assert pair.kl_stationary == pytest.approx(float(want), rel=1e-12, abs=0.0)


#: Two blocks {0, 1} and {2, 3} joined by transitions of probability 10⁻⁶ only.
BLOCKS = np.array(
    [[0.6, 0.4 - 1e-6, 1e-6, 0.0], [0.3, 0.7, 0.0, 0.0], [0.0, 0.0, 0.2, 0.8], [1e-6, 0.0, 0.5, 0.5 - 1e-6]]
)


def test_nearly_reducible_chains_keep_the_marginals_kl_to_full_precision():
    """π_q − π_p of two nearly reducible chains hinges on their slow exchange between the blocks,
    which a linear solve of the gap's system loses (it agreed to 2e-11); against 50-digit laws."""
    tilt = np.random.default_rng(18).uniform(-1e-3, 1e-3, size=BLOCKS.shape)
    q = BLOCKS * (1.0 + tilt)
    q /= q.sum(axis=1, keepdims=True)  # as a config's rows are (to within an ulp of 1)
    pair = MarkovPair(Chain(BLOCKS), Chain(q))
    pi_p, pi_q = _decimal_stationary(_normalised(BLOCKS)), _decimal_stationary(_normalised(q))
    want = sum(a * (a / b).ln() for a, b in zip(pi_p, pi_q, strict=True))
    assert 1e-8 < float(want) < 1e-5
    assert pair.kl_stationary == pytest.approx(float(want), rel=1e-13, abs=0.0)
    assert pair.exact(registry.log_ratio).mean(1) == pytest.approx(float(want), rel=1e-13, abs=0.0)


@pytest.mark.parametrize("name", list(TERMS))
def test_exit_rates_of_1e_minus_12_leave_sigma_its_precision(name):
    """A cycle leaving each state with probability 10⁻¹², against a circulant model: every state's
    expected term d_i is the same (the rows are rotations of each other), so the Poisson solution
    is 0 and σ² = Σ_j P_0j (F_0j − d_0)², exactly, in 50 digits.  A rounding of the rate along 1
    (1e-17) used to reach u through the 10⁻¹² rates and move the cross-entropy's σ by 2e-11."""
    p = np.array([[1 - 1e-12, 1e-12, 0.0], [0.0, 1 - 1e-12, 1e-12], [1e-12, 0.0, 1 - 1e-12]])
    q = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    pair = MarkovPair(Chain(p), Chain(q))
    _, fs = _decimal_logs(pair, name)
    row = _normalised(p)[0]
    d0 = sum(row[j] * fs[0, j] for j in range(3) if (0, j) in fs)
    want = sum(row[j] * (fs[0, j] - d0) ** 2 for j in range(3) if (0, j) in fs)
    assert pair.exact(TERMS[name]).sigma2 == pytest.approx(float(want), rel=1e-13, abs=0.0)
