"""Parametric sources (normal, Poisson, exponential, geometric): references, samplers, config, check.

References are independent of the code under test: 50-digit Decimal sums over the pmf for the
discrete families, 50-digit Decimal closed forms written from the definitions for the continuous
ones, and scipy's quadrature (relative error ~1e-10) for the plug-in laws.  Statistical tests use
fixed seeds and a 1e-3 false-alarm level: two-sample Kolmogorov–Smirnov tests (conservative for
discrete laws) and z-tests whose standard errors are the exact sds over √R.
"""

from __future__ import annotations

import contextlib
import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
from scipy import integrate, stats

from sim import registry
from sim.check import check_tables
from sim.config import parse_config
from sim.families import Exponential, FamilyPair, Geometric, Normal, Poisson
from sim.pipelines import pipeline_for
from sim.pipelines.convergence import run_task

getcontext().prec = 50
D = Decimal


def _poisson_log(rate: Decimal, x: int) -> Decimal:
    return (
        x * rate.ln() - rate - D(math.lgamma(x + 1))
        if x > 170
        else x * rate.ln() - rate - D(math.factorial(x)).ln()
    )


def _geometric_log(theta: Decimal, x: int) -> Decimal:
    return theta.ln() + x * (1 - theta).ln()


def _discrete_reference(logp, logq, xs):
    """KL(p‖q), H(p) and sd of log p/q by Decimal sums over xs (the tails beyond are < 1e-40)."""
    kl, h, m2 = D(0), D(0), D(0)
    for x in xs:
        lp, lq = logp(x), logq(x)
        p = lp.exp()
        kl += p * (lp - lq)
        h -= p * lp
        m2 += p * (lp - lq) ** 2
    return float(kl), float(h), float((m2 - kl * kl).sqrt())


@pytest.mark.parametrize(
    ("p", "q"),
    [(3.0, 4.0), (3.0, 3.0 * (1 + 1e-6)), (0.2, 7.0), (40.0, 39.0)],
)
def test_poisson_analytic_against_decimal_sums(p, q):
    xs = range(0, int(p + 40 * math.sqrt(p) + 120))
    kl, h, sd = _discrete_reference(lambda x: _poisson_log(D(p), x), lambda x: _poisson_log(D(q), x), xs)
    pair = FamilyPair(Poisson(p), Poisson(q))
    assert pair.kl_pq == pytest.approx(kl, rel=1e-12)
    assert pair.entropy_p == pytest.approx(h, rel=1e-12)
    assert pair.llr_sigma == pytest.approx(sd, rel=1e-9)  # the Decimal sd: m2 − kl² cancels near p = q


@pytest.mark.parametrize(("p", "q"), [(0.3, 0.5), (0.5, 0.5 + 1e-7), (0.9, 0.05)])
def test_geometric_analytic_against_decimal_sums(p, q):
    xs = range(0, int(100 / p) + 200)
    kl, h, sd = _discrete_reference(lambda x: _geometric_log(D(p), x), lambda x: _geometric_log(D(q), x), xs)
    pair = FamilyPair(Geometric(p), Geometric(q))
    assert pair.kl_pq == pytest.approx(kl, rel=1e-12)
    assert pair.entropy_p == pytest.approx(h, rel=1e-12)
    assert pair.llr_sigma == pytest.approx(sd, rel=1e-9)


@pytest.mark.parametrize(("lam", "theta"), [(3.0, 0.25), (0.01, 1 / 1.01), (12.0, 0.6)])
def test_mixed_poisson_geometric_against_decimal_sums(lam, theta):
    xs = range(0, int(lam + 40 * math.sqrt(lam) + 200))
    logp, logq = (lambda x: _poisson_log(D(lam), x)), (lambda x: _geometric_log(D(theta), x))
    kl, _, sd = _discrete_reference(logp, logq, xs)
    pair = FamilyPair(Poisson(lam), Geometric(theta))
    assert pair.kl_pq == pytest.approx(kl, rel=1e-12)
    assert pair.llr_sigma == pytest.approx(sd, rel=1e-9)
    back = _discrete_reference(logq, logp, range(0, int(200 / theta) + 400))
    assert pair.kl_qp == pytest.approx(back[0], rel=1e-12)


def _normal_kl(m1, s1, m2, s2):
    """The textbook closed form, in Decimal: log(s2/s1) + (s1² + (m1 − m2)²)/(2 s2²) − ½."""
    m1, s1, m2, s2 = map(D, (m1, s1, m2, s2))
    return float((s2 / s1).ln() + (s1 * s1 + (m1 - m2) ** 2) / (2 * s2 * s2) - D("0.5"))


@pytest.mark.parametrize(
    ("p", "q"),
    [
        ((0, 1), (1, 2)),
        ((1, 2), (0, 1)),
        ((0, 1), (1e-9, 1)),
        ((0, 1), (0, 1 + 1e-7)),
        ((5, 1e-3), (-3, 1e3)),
    ],
)
def test_normal_analytic_against_decimal_closed_forms(p, q):
    pair = FamilyPair(Normal(*p), Normal(*q))
    assert pair.kl_pq == pytest.approx(_normal_kl(*p, *q), rel=1e-12)
    assert pair.kl_qp == pytest.approx(_normal_kl(*q, *p), rel=1e-12)
    h = float(D(2 * math.pi).ln() / 2 + D("0.5") + D(p[1]).ln())
    assert pair.entropy_p == pytest.approx(h, rel=1e-12)

    # sd of log p/q by quadrature against the density (independent of the closed form)
    def f(x):
        return stats.norm.pdf(x, *p) * (stats.norm.logpdf(x, *p) - stats.norm.logpdf(x, *q) - pair.kl_pq) ** 2

    if pair.kl_pq < 1e-10:  # log p − log q cancels to ~1e-16 in double precision: quadrature cannot resolve σ
        return
    lo, hi = p[0] - 12 * p[1], p[0] + 12 * p[1]
    assert pair.llr_sigma == pytest.approx(
        math.sqrt(integrate.quad(f, lo, hi, epsabs=0, limit=200)[0]), rel=1e-7
    )


@pytest.mark.parametrize(("p", "q"), [(2.0, 1.0), (1.0, 1.0 + 1e-8), (0.01, 50.0)])
def test_exponential_analytic_against_decimal_closed_forms(p, q):
    kl = float((D(p) / D(q)).ln() + D(q) / D(p) - 1)  # log(λp/λq) + λq/λp − 1
    pair = FamilyPair(Exponential(p), Exponential(q))
    assert pair.kl_pq == pytest.approx(kl, rel=1e-12)
    assert pair.entropy_p == pytest.approx(float(1 - D(p).ln()), rel=1e-12)


def test_exponential_against_normal_and_infinite_reverse():
    pair = FamilyPair(Exponential(2.0), Normal(0.5, 0.7))
    lam, mu, s = D(2), D("0.5"), D("0.7")
    second = 1 / lam**2 + (1 / lam - mu) ** 2  # E[(X − μ)²] under p
    kl = lam.ln() - 1 + (2 * D(math.pi) * s * s).ln() / 2 + second / (2 * s * s)
    assert pair.kl_pq == pytest.approx(float(kl), rel=1e-12)
    assert pair.kl_qp == math.inf


@pytest.mark.parametrize(
    "pair",
    [
        FamilyPair(Normal(0, 1), Normal(1, 2)),
        FamilyPair(Exponential(2.0), Exponential(1.0)),
        FamilyPair(Poisson(3.0), Poisson(4.0)),
        FamilyPair(Geometric(0.3), Geometric(0.5)),
    ],
    ids=lambda pair: pair.family,
)
@pytest.mark.parametrize("n", [2, 7, 50])
def test_plugin_exact_mean_and_sd_against_direct_sums_and_quadrature(pair, n):
    """E and sd of the fitted KL, from the law of the statistic written with scipy's distributions."""
    m = pair.moments(registry.PLUGIN_KL, n)
    p, q = pair.p, pair.q
    if isinstance(p, Normal):  # x̄ and the variance's χ²(n − 1) are independent; the x̄ part in closed form
        rho, d2 = (p.sd / q.sd) ** 2, ((p.mu - q.mu) / q.sd) ** 2
        g = lambda v: 0.5 * (rho * v / n - 1 - math.log(rho * v / n))  # noqa: E731
        law = stats.chi2(n - 1)
        xbar_mean, xbar_var = (d2 + rho / n) / 2, rho**2 / (2 * n * n) + rho * d2 / n
    elif isinstance(p, Exponential):
        g = lambda s: (q.rate * s / n - 1) - math.log(q.rate * s / n)  # noqa: E731
        law, xbar_mean, xbar_var = stats.gamma(n, scale=1 / p.rate), 0.0, 0.0
    else:
        law = stats.poisson(n * p.rate) if isinstance(p, Poisson) else stats.nbinom(n, p.theta)
        s = np.arange(0.0, law.mean() + 40 * law.std() + 100)
        w = law.pmf(s)
        v = (
            q.rate
            * ((s / (n * q.rate)) * np.log(np.where(s > 0, s / (n * q.rate), 1)) - s / (n * q.rate) + 1)
            if isinstance(p, Poisson)
            else _geometric_fitted(s, n, q.theta)
        )
        mean = math.fsum(w * v)
        assert m.mean == pytest.approx(mean, rel=1e-10)
        assert m.sd == pytest.approx(math.sqrt(math.fsum(w * (v - mean) ** 2)), rel=1e-8)
        return
    mean = law.expect(g, epsabs=0, epsrel=1e-12) + xbar_mean
    var = law.expect(lambda v: g(v) ** 2, epsabs=0, epsrel=1e-12) - (mean - xbar_mean) ** 2 + xbar_var
    assert m.mean == pytest.approx(mean, rel=1e-9)
    assert m.sd == pytest.approx(math.sqrt(var), rel=1e-7)


def _geometric_fitted(s, n, theta):
    """KL(Geometric(θ̂)‖Geometric(θ)) from the definition of the Bernoulli KL, θ̂ = n/(n + s)."""
    t = n / (n + s)
    with np.errstate(divide="ignore", invalid="ignore"):
        fail = np.where(t < 1, (1 - t) * np.log((1 - t) / (1 - theta)), 0.0)
    return (t * np.log(t / theta) + fail) / t


def _values(text: str) -> tuple[np.ndarray, object]:
    """Every replicate's values of a one-case experiment, (checkpoints, estimators, replicates)."""
    experiment = parse_config(text)
    parts = [run_task(experiment, t)["values"] for t in pipeline_for(experiment).plan(experiment)]
    return np.concatenate(parts, axis=-1), experiment


_CASES = {
    "normal": "{normal: {mean: 0, sd: 1}}, q: {normal: {mean: 0.5, sd: 1.5}}",
    "exponential": "{exponential: {rate: 2}}, q: {exponential: {rate: 1}}",
    "poisson": "{poisson: {rate: 3}}, q: {poisson: {rate: 4}}",
    "geometric": "{geometric: {p: 0.3}}, q: {geometric: {p: 0.5}}",
}


def _config(family: str, sampler: str, n: str, replicates: int, estimators="[llr, plugin_kl]") -> str:
    return (
        f"name: t\nseed: 11\nreplicates: {replicates}\nsampler: {sampler}\nn: {n}\n"
        f"estimators: {estimators}\ncases: [{{name: c, p: {_CASES[family]}}}]\n"
    )


@pytest.mark.parametrize("family", list(_CASES))
def test_both_samplers_follow_the_same_laws(family):
    """Statistics grown in exact steps and observations drawn one by one: the same law at each n
    (two-sample KS at each checkpoint and estimator, Bonferroni over the 4 comparisons)."""
    counts, _ = _values(_config(family, "counts", "[2, 30]", 4000))
    drawn, _ = _values(_config(family, "per-sample", "[2, 30]", 4000).replace("seed: 11", "seed: 12"))
    for j in range(2):
        for e in range(2):
            assert _same_law(counts[j, e], drawn[j, e]) > 1e-3 / 4


@pytest.mark.parametrize("family", list(_CASES))
def test_llr_at_n_1_follows_the_law_of_the_log_ratio(family):
    """The counts sampler's llr at n = 1 against log p(X)/q(X) for X drawn directly (scipy's samplers)."""
    config = _config(family, "counts", "[1, 5]", 4000, "[llr]")
    values, experiment = _values(config)
    pair = experiment.cases[0].pair
    direct = {
        "normal": stats.norm(0, 1),
        "exponential": stats.expon(scale=0.5),
        "poisson": stats.poisson(3),
        "geometric": stats.geom(0.3, loc=-1),
    }[family]
    x = direct.rvs(size=4000, random_state=np.random.default_rng(5))
    reference = pair.p.log_density(x) - pair.q.log_density(x)
    assert _same_law(values[0, 0], reference) > 1e-3


def _tables(experiment) -> dict:
    """The experiment's tables, its tasks run serially in this process."""

    def run_tasks(tasks, fn):
        for task in tasks:
            yield task, fn(experiment, task)

    return pipeline_for(experiment).tables(experiment, lambda name: contextlib.nullcontext(), run_tasks)


def _same_law(a: np.ndarray, b: np.ndarray) -> float:
    """p-value of a two-sample test: χ² on the values' table where they take few values (discrete laws,
    whose equal values two computations may round apart: matched to 9 significant digits; values seen
    fewer than 20 times pooled), else Kolmogorov–Smirnov."""
    ra, rb = (np.array([float(f"{v:.9g}") for v in x]) for x in (a, b))
    values = np.union1d(ra, rb)
    if values.size > 200:
        return stats.ks_2samp(a, b).pvalue
    table = np.array([[np.sum(r == v) for v in values] for r in (ra, rb)])
    common = table.sum(axis=0) >= 20
    table = np.column_stack([table[:, common], table[:, ~common].sum(axis=1)])
    table = table[:, table.sum(axis=0) > 0]
    return stats.chi2_contingency(table).pvalue


def test_a_path_to_1e12_costs_nothing_and_agrees_with_theory():
    text = _config(
        "normal", "counts", "{min: 2, max: 1000000000000, points: 6}", 300, "[llr, entropy, plugin_kl]"
    )
    experiment = parse_config(text)
    tables = _tables(experiment)
    report = check_tables(experiment, tables, name="t")
    assert report.passed, report.table()
    tampered = tables["summary.csv"].copy()
    row = (tampered.n == 10**12) & (tampered.estimator == "llr")
    tampered.loc[row, "mean"] += 10 * tampered.loc[row, "mcse"]
    assert not check_tables(experiment, {**tables, "summary.csv": tampered}, name="t").passed


@pytest.mark.parametrize(
    ("case", "sampler", "message"),
    [
        (
            "p: {normal: {mean: 0, sd: 0}}, q: {normal: {mean: 0, sd: 1}}",
            "counts",
            "cases[0].p.normal.sd: must be in",
        ),
        (
            "p: {poisson: {rate: -1}}, q: {poisson: {rate: 1}}",
            "counts",
            "cases[0].p.poisson.rate: must be in",
        ),
        (
            "p: {geometric: {p: 1}}, q: {geometric: {p: 0.5}}",
            "counts",
            "cases[0].p.geometric.p: must be below 1",
        ),
        ("p: {normal: {mean: 0, sd: 1}}, q: {exponential: {rate: 1}}", "per-sample", "KL(p‖q) is infinite"),
        ("p: {poisson: {rate: 3}}, q: {geometric: {p: 0.25}}", "counts", "needs sampler: per-sample"),
        ("p: {poisson: {rate: 3}}, q: 0.5", "counts", "must both be parametric families"),
        ("p: {normal: {mean: 0}}, q: {normal: {mean: 0, sd: 1}}", "counts", "missing key 'sd'"),
    ],
)
def test_config_errors_name_the_key(case, sampler, message):
    from sim.errors import ConfigError

    text = f"name: t\nsampler: {sampler}\nn: [2, 10]\ncases:\n  - {{name: c, {case}}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="t.yaml")
    assert message in str(info.value)
    assert "t.yaml:5" in str(info.value)


def test_estimators_a_case_cannot_have_are_config_errors():
    from sim.errors import ConfigError

    text = (
        "name: t\nn: [1, 10]\nestimators: [llr, entropy, plugin_kl, k3, p_wrong]\ncases:\n"
        "  - {name: a, p: {poisson: {rate: 3}}, q: {poisson: {rate: 4}}}\n"
        "  - {name: b, p: {normal: {mean: 0, sd: 1}}, q: {normal: {mean: 0, sd: 2}}}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="t.yaml")
    text = str(info.value)
    assert "entropy is not available for case 'a'" in text and "Σ log x!" in text
    assert "plugin_kl is not available for case 'b'" in text and "start n at 2" in text
    assert "k3 is not available" in text and "p_wrong is not available" in text


def test_defaults_leave_out_what_a_case_cannot_have_with_a_note():
    e = parse_config(
        "name: t\nn: [1, 10]\ncases: [{name: a, p: {poisson: {rate: 3}}, q: {poisson: {rate: 4}}}]\n"
    )
    assert e.estimators == ("llr", "plugin_kl")
    assert any("entropy left out of the defaults" in note for note in e.notes)
