"""The likelihood-ratio test's error probability: exact, Chernoff exponent, importance sampling."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
from scipy import special, stats

from sim import distributions as d
from sim.decision import chernoff, coin_p_wrong, p_wrong_tilted, tilted
from tests.helpers import skip_rendering, z_crit
from tests.oracles import chernoff_decimal


@pytest.mark.parametrize(
    ("p", "q", "n", "strict", "expected"),
    [
        (0.7, 0.5, 100, False, 2.098858e-2),
        (0.7, 0.5, 1000, False, 2.690399e-11),
        (2 / 3, 1 / 3, 10, False, 0.21313),  # the tie at 5 heads counts as favouring q
        (2 / 3, 1 / 3, 10, True, 0.07656),
    ],
)
def test_issue_values(p, q, n, strict, expected):
    assert coin_p_wrong(p, q, n, strict=strict)[0] == pytest.approx(expected, rel=5e-5)


def _llr_sign_decimal(p: float, q: float, n: int, h: int) -> int:
    getcontext().prec = 60
    dp, dq = Decimal(p), Decimal(q)
    value = h * (dp / dq).ln() + (n - h) * ((1 - dp) / (1 - dq)).ln()
    return (value > 0) - (value < 0)


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.5, 0.8), (0.31, 0.29), (0.9, 0.2)])
@pytest.mark.parametrize("n", [1, 7, 60, 250])
def test_coin_p_wrong_against_enumeration(p, q, n):
    h = np.arange(n + 1)
    signs = np.array([_llr_sign_decimal(p, q, n, k) for k in h])
    pmf = stats.binom.pmf(h, n, p)
    assert coin_p_wrong(p, q, n)[0] == pytest.approx(pmf[signs <= 0].sum(), rel=1e-10, abs=1e-300)
    assert coin_p_wrong(p, q, n, strict=True)[0] == pytest.approx(pmf[signs < 0].sum(), rel=1e-10, abs=1e-300)


def test_deep_tails_keep_their_logarithm():
    n = 10**6
    prob, log_prob = coin_p_wrong(0.7, 0.5, n)
    assert prob == 0.0  # below the smallest double
    h = np.arange(0, 500_001)  # llr ≤ 0 ⇔ H ≤ n·log(5/3)/log(7/3) ≈ 602,863; every term up to it counts
    h = np.arange(0, math.floor(n * math.log(0.5 / 0.3) / math.log(0.7 * 0.5 / (0.5 * 0.3))) + 1)
    reference = float(special.logsumexp(stats.binom.logpmf(h, n, 0.7)))
    assert log_prob == pytest.approx(reference, rel=1e-9)


def test_error_exponent_approaches_chernoff_information():
    pair = d.Pair(d.coin(0.7), d.coin(0.5))
    c = chernoff(pair).information
    rates = [-coin_p_wrong(0.7, 0.5, n)[1] / n for n in (10**3, 10**4, 10**5, 10**6)]
    assert all(r > c for r in rates)  # the polynomial prefactor makes p_wrong smaller
    assert np.all(np.diff(rates) < 0)
    assert rates[-1] == pytest.approx(c, rel=2e-3)


def _chernoff_grid(p, q):
    s = np.linspace(0, 1, 200_001)
    both = (p > 0) & (q > 0)
    values = special.logsumexp(np.outer(1 - s, np.log(p[both])) + np.outer(s, np.log(q[both])), axis=1)
    return -values.min()


@pytest.mark.slow
def test_chernoff_information_against_a_grid_and_its_properties():
    rng = np.random.default_rng(5)
    for _ in range(20):
        p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
        pair, back = d.Pair(d.categorical(p), d.categorical(q)), d.Pair(d.categorical(q), d.categorical(p))
        c = chernoff(pair).information
        assert c == pytest.approx(_chernoff_grid(pair.p.probs, pair.q.probs), rel=1e-8)
        assert c == pytest.approx(chernoff(back).information, rel=1e-9)  # symmetric
        assert 0 < c <= min(pair.kl_pq, pair.kl_qp)
    assert chernoff(d.Pair(d.coin(0.3), d.coin(0.3))).information == 0.0


def test_chernoff_with_categories_one_side_lacks():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    c = chernoff(d.Pair(d.categorical(p), d.categorical(q)))
    # Σ p^(1−s) q^s over the shared support = 0.5^(1−s)·0.25^s·2, minimised at s = 1
    assert c.information == pytest.approx(-math.log(0.5), rel=1e-9)
    assert tilted(d.Pair(d.categorical(p), d.categorical(q)), c.s)[2] == 0.0


def test_importance_sampling_reaches_1e_minus_11():
    # Plain Monte Carlo would need ~1e11 replicates to see one such sample.
    est = p_wrong_tilted(d.Pair(d.coin(0.7), d.coin(0.5)), 1000, 4000, rng=np.random.default_rng(8))
    exact = 2.690399e-11
    assert abs(est.estimate - exact) <= z_crit() * est.mcse
    assert est.relative_error < 0.05  # "within a few percent from a few thousand replicates"


def test_importance_sampling_for_a_categorical_pair_against_enumeration():
    p, q, n = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 150
    comps = np.array([c for c in itertools.product(range(n + 1), repeat=3) if sum(c) == n])
    getcontext().prec = 60
    logs = [(Decimal(a) / Decimal(b)).ln() for a, b in zip(p, q, strict=True)]
    # signs in 60-digit arithmetic: c_1 = c_3 is an exact tie (log ratios ±log 2.5, 0)
    wrong = np.array(
        [sum(int(c) * lg for c, lg in zip(row, logs, strict=True)) <= Decimal("1e-40") for row in comps]
    )
    exact = float(stats.multinomial.pmf(comps, n, p)[wrong].sum())
    est = p_wrong_tilted(d.Pair(d.categorical(p), d.categorical(q)), n, 4000, rng=np.random.default_rng(9))
    assert exact < 1e-5  # beyond plain Monte Carlo with 4000 replicates
    assert abs(est.estimate - exact) <= z_crit() * est.mcse


PW_CONFIG = """
name: pw
seed: 3
replicates: 20000
estimators: [llr, p_wrong]
n: [10, 100, 1000]
cases:
  - {name: coin, p: 0.7, q: 0.5}
  - {name: tie, p: 0.6666666666666666, q: 0.3333333333333333}
  - {name: die, p: [0.5, 0.3, 0.2], q: [0.2, 0.3, 0.5]}
"""


@pytest.fixture(scope="module")
def pw_runs(tmp_path_factory):
    from sim.config import parse_config
    from sim.runner import run_experiment

    out = tmp_path_factory.mktemp("pw")
    nats = run_experiment(parse_config(PW_CONFIG), out / "nats")
    bits = run_experiment(parse_config(PW_CONFIG + "units: bits\n"), out / "bits")
    return nats, bits


def test_p_wrong_estimator_against_exact_values(pw_runs):
    nats, _ = pw_runs
    s = nats.summary[nats.summary.estimator == "p_wrong"].set_index(["case", "n"])
    assert s.loc[("coin", 100), "exact_mean"] == pytest.approx(2.098858e-2, rel=5e-6)
    assert s.loc[("coin", 1000), "exact_mean"] == pytest.approx(2.690399e-11, rel=5e-6)
    assert s.loc[("tie", 10), "exact_mean"] == pytest.approx(0.21313, rel=5e-5)  # ties count
    assert (s.target == 0.0).all()
    assert nats.check.passed, nats.check.table()
    # the categorical case against enumeration with exact ties (c_1 = c_3), z-test with Bonferroni over n
    p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    getcontext().prec = 60
    logs = [(Decimal(a) / Decimal(b)).ln() for a, b in zip(p, q, strict=True)]
    for n in (10, 100):
        comps = np.array([c for c in itertools.product(range(n + 1), repeat=3) if sum(c) == n])
        wrong = np.array(
            [sum(int(c) * lg for c, lg in zip(row, logs, strict=True)) <= Decimal("1e-40") for row in comps]
        )
        exact = float(stats.multinomial.pmf(comps, n, p)[wrong].sum())
        row = s.loc[("die", n)]
        assert abs(row["mean"] - exact) <= z_crit(2) * math.sqrt(exact * (1 - exact) / row.replicates)


def test_p_wrong_is_a_probability_in_any_units(pw_runs):
    nats, bits = pw_runs
    a = nats.summary[nats.summary.estimator == "p_wrong"].reset_index(drop=True)
    b = bits.summary[bits.summary.estimator == "p_wrong"].reset_index(drop=True)
    for col in ("mean", "sd", "exact_mean", "exact_sd", "q50"):
        np.testing.assert_array_equal(a[col], b[col])
    assert bits.check.passed


def test_tilted_estimator_reaches_rare_events_and_is_checked(tmp_path):
    from sim.config import parse_config
    from sim.runner import run_experiment

    text = PW_CONFIG.replace("replicates: 20000", "replicates: 4000").replace(
        "estimators: [llr, p_wrong]", "estimators: [llr, p_wrong, p_wrong_tilted]"
    )
    report = run_experiment(parse_config(text), tmp_path)
    assert report.check.passed, report.check.table()
    s = report.summary[report.summary.estimator == "p_wrong_tilted"].set_index(["case", "n"])
    row = s.loc[("coin", 1000)]
    assert abs(row["mean"] - 2.690399e-11) <= z_crit() * row.mcse  # plain Monte Carlo reports 0 here
    assert row.mcse / row["mean"] < 0.06
    assert row.exact_sd > 0 and abs(row.z) < z_crit()
    # categorical: no exact value, so sim check tests the plain count against it
    t = report.check.tests
    assert (t.column == "mean vs p_wrong_tilted").any()
    assert s.loc[("die", 1000), "mean"] > 0 and math.isnan(s.loc[("die", 1000), "exact_mean"])


def test_tilted_exact_moments_by_enumeration():
    from sim.decision import coin_tilted_moments

    p, q, n = 0.7, 0.5, 30
    pair = d.Pair(d.coin(p), d.coin(q))
    r = tilted(pair, chernoff(pair).s)[0]
    h = np.arange(n + 1)
    signs = np.array([_llr_sign_decimal(p, q, n, k) for k in h])
    x = np.where(signs <= 0, stats.binom.pmf(h, n, p) / stats.binom.pmf(h, n, r), 0.0)
    w = stats.binom.pmf(h, n, r)
    mean = np.sum(w * x)
    m, sd, mu4 = coin_tilted_moments(p, q, n)
    assert m == pytest.approx(mean, rel=1e-10)
    assert sd == pytest.approx(math.sqrt(np.sum(w * (x - mean) ** 2)), rel=1e-8)
    assert mu4 == pytest.approx(np.sum(w * (x - mean) ** 4), rel=1e-6)


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.3, 0.6)])
def test_stein_type_two_error_by_enumeration(p, q):
    from sim.decision import coin_stein

    n, alpha = 40, 0.05
    h = np.arange(n + 1)
    a = math.log(p / q) - math.log((1 - p) / (1 - q))
    order = h if a > 0 else h[::-1]  # decide q first where the llr is smallest
    pmf_p, pmf_q = stats.binom.pmf(order, n, p), stats.binom.pmf(order, n, q)
    cum = np.cumsum(pmf_p)
    k = int(np.searchsorted(cum, alpha, side="right"))  # first count beyond the level
    gamma = (alpha - (cum[k - 1] if k else 0.0)) / pmf_p[k]
    assert (cum[k - 1] if k else 0.0) <= alpha < cum[k]
    beta = pmf_q[k + 1 :].sum() + (1 - gamma) * pmf_q[k]
    assert coin_stein(p, q, n, alpha)[0] == pytest.approx(beta, rel=1e-10)


def test_stein_exponent_approaches_kl():
    from sim.decision import coin_stein

    kl = d.Pair(d.coin(0.7), d.coin(0.5)).kl_pq
    rates = [-coin_stein(0.7, 0.5, n)[1] / n for n in (10**3, 10**4, 10**5, 10**6)]
    assert np.all(np.diff(rates) > 0) and rates[-1] < kl
    assert rates[-1] == pytest.approx(kl, rel=0.01)


@pytest.mark.slow
def test_testing_figure_and_chernoff_column(pw_runs, cli, tmp_path, monkeypatch):
    from sim import figures

    nats, _ = pw_runs
    a = nats.analytic.set_index("case")
    assert a.loc["coin", "chernoff"] == pytest.approx(
        chernoff(d.Pair(d.coin(0.7), d.coin(0.5))).information, rel=1e-12
    )
    tables = figures.load_tables(nats.path)
    assert "testing" in figures.figure_kinds(tables)
    fig = figures.testing_figure(tables["summary"], tables["analytic"], config=tables["config"])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 6  # three cases × (p_wrong, Stein)
    labels = {label for ax in axes for label in ax.get_legend_handles_labels()[1]}
    assert {"exact (Binomial tail)", "slope −C(p, q)", "KL(p‖q)"} <= labels
    fig.savefig(tmp_path / "testing.png")  # rendered for real; `sim plot` below builds every figure
    skip_rendering(monkeypatch)
    assert cli("plot", str(nats.path)).exit_code == 0
    assert (nats.path / "figures" / "testing.png").exists()


def test_simulated_stein_agrees_with_the_exact_exponent_for_coins(pw_runs):
    import pandas as pd

    from sim.decision import coin_stein
    from sim.figures.decision import simulated_stein

    nats, _ = pw_runs
    reps = pd.read_csv(nats.path / "replicates.csv.gz")
    sim = simulated_stein(reps[reps.case == "coin"], "nats").set_index("n")
    z = z_crit(len(sim))
    for n, row in sim.iterrows():
        exact = -coin_stein(0.7, 0.5, int(n))[1] / n
        assert abs(row.rate - exact) <= z * row.se + 1e-12, n  # randomised at the atom, like the exact test
    die = simulated_stein(reps[reps.case == "die"], "nats")
    kl = d.Pair(d.categorical([0.5, 0.3, 0.2]), d.categorical([0.2, 0.3, 0.5])).kl_pq
    assert np.all(die.rate < kl) and die.rate.iloc[-1] > die.rate.iloc[1]


# --------------------------------------------------------------------------
# Chernoff information to full relative precision, against 60-digit decimals


def _near_categoricals() -> list[tuple[str, d.Pair]]:
    """p = q·(1 + ε v) renormalised, K = 3…50, ε from 1e-2 to 1e-10."""
    rng = np.random.default_rng(13)
    out = []
    for k in (3, 5, 10, 20, 50):
        for eps in (1e-2, 1e-4, 1e-7, 1e-10):
            q = rng.dirichlet(np.ones(k))
            p = q * (1 + eps * rng.standard_normal(k))
            out.append((f"K={k} eps={eps:g}", d.Pair(d.categorical(p), d.categorical(q))))
    return out


def _dyadic_near_categoricals() -> list[tuple[str, d.Pair]]:
    """Near pairs whose doubles sum to exactly 1 (multiples of 2⁻⁵⁰), down to C ≈ 1e-25.

    Exactly normalised inputs test the expansion without the correction for
    doubles that sum to 1 ± 1e-17 (which moves C by ~(1e-17)²/C, 1e-13 at
    C = 1e-21, and is tested by the renormalised pairs above).
    """
    rng = np.random.default_rng(14)
    out = []
    for k in (3, 10, 50):
        for eps in (1e-7, 1e-10, 1e-12):
            m = np.floor(rng.dirichlet(np.ones(k)) * 2**50).astype(np.int64)
            m[-1] = 2**50 - m[:-1].sum()
            dm = np.round(eps * rng.standard_normal(k) * m).astype(np.int64)
            dm[-1] = -dm[:-1].sum()
            q, p = m / 2.0**50, (m + dm) / 2.0**50
            out.append((f"dyadic K={k} eps={eps:g}", d.Pair(d.categorical(p), d.categorical(q))))
    return out


CHERNOFF_CASES = [
    ("coin 0.3 vs 0.300000001", d.Pair(d.coin(0.3), d.coin(0.300000001))),
    ("coin 0.300000001 vs 0.3", d.Pair(d.coin(0.300000001), d.coin(0.3))),
    ("coin 0.5 vs 0.5000126", d.Pair(d.coin(0.5), d.coin(0.5000126))),
    ("coin 1e-10 vs 2e-10", d.Pair(d.coin(1e-10), d.coin(2e-10))),
    ("coin 2e-10 vs 1e-10", d.Pair(d.coin(2e-10), d.coin(1e-10))),
    ("coin 0.7 vs 0.5", d.Pair(d.coin(0.7), d.coin(0.5))),
    ("coin 0.99 vs 0.01", d.Pair(d.coin(0.99), d.coin(0.01))),
    (
        "die",
        d.Pair(d.categorical([0.3, 0.25, 0.2, 0.15, 0.1]), d.categorical([0.1, 0.15, 0.2, 0.25, 0.3])),
    ),
    ("s = 1", d.Pair(d.categorical([0.5, 0.5, 0.0]), d.categorical([0.25, 0.25, 0.5]))),
    ("near, s = 1", d.Pair(d.categorical([0.5, 0.5, 0.0]), d.categorical([0.5, 0.5 - 1e-9, 1e-9]))),
    *_near_categoricals(),
    *_dyadic_near_categoricals(),
]


@pytest.mark.parametrize(("name", "pair"), CHERNOFF_CASES, ids=[c[0] for c in CHERNOFF_CASES])
def test_chernoff_is_relatively_precise_at_every_scale(name, pair):
    # Measured: ≤ 5e-16 where p is near q, except 7e-15 where the pair's own KL is
    # that far off (a ratio p/q just beyond 1.03); 1.6e-14 for the 1e-10 coin, whose
    # log(p/q) = log 1e-10 − log 2e-10 carries 5e-15 of log's absolute rounding.
    c_ref, s_ref = chernoff_decimal(pair)
    c = chernoff(pair)
    assert abs(Decimal(c.information) - c_ref) <= Decimal("1e-13") * c_ref, (c.information, c_ref)
    assert abs(Decimal(c.s) - s_ref) <= Decimal("1e-14"), (c.s, s_ref)


def test_chernoff_is_symmetric_near_equality():
    for p, q in [(0.3, 0.300000001), (0.5, 0.5000126), (1e-10, 2e-10)]:
        a, b = chernoff(d.Pair(d.coin(p), d.coin(q))), chernoff(d.Pair(d.coin(q), d.coin(p)))
        assert a.information == pytest.approx(b.information, rel=1e-13)
        assert a.s + b.s == pytest.approx(1.0, abs=1e-14)
