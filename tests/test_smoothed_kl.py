"""smoothed_kl: KL(f̃‖q) with add-α frequencies f̃ = (c + α)/(N + Kα), and parameterised estimators.

References never call the code under test: per-count values and exact means
by enumerating every count vector with 50-digit Decimal arithmetic, and a
plain Binomial sum over every count for large n.
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim import distributions as d
from sim import exact, registry
from sim.config import parse_config
from sim.errors import ConfigError
from sim.estimators import SparseSums, SupportArrays, estimate
from sim.sampling import count_paths
from tests.helpers import ESTIMATOR_CASES

PAIRS = {
    "coin": d.Pair(d.coin(0.7), d.coin(0.5)),
    "die": d.Pair(d.categorical([0.1, 0.2, 0.3, 0.4]), d.uniform(4)),
    "gap": d.Pair(d.categorical([0.5, 0.5, 0.0]), d.categorical([0.3, 0.3, 0.4])),
    "near": d.Pair(
        d.categorical([0.25, 0.25, 0.25, 0.25]), d.categorical([0.25, 0.25, 0.25000001, 0.24999999])
    ),
}
ALPHAS = {"laplace": 1.0, "jeffreys": 0.5, "perks": None, "minimax": None, "0.01": 0.01}


def _alpha(rule: str, k: int, n: int) -> Decimal:
    """α by the rule's definition, independently of the registry."""
    return {
        "laplace": Decimal(1),
        "jeffreys": Decimal("0.5"),
        "perks": Decimal(1) / k,
        "minimax": Decimal(n).sqrt() / k,
    }.get(rule) or Decimal(float(rule))


def _decimal_value(counts, qs, rule: str) -> Decimal:
    """KL(f̃‖q) at 50 digits over the whole alphabet."""
    k, n = len(counts), sum(counts)
    alpha = _alpha(rule, k, n)
    total = n + k * alpha
    return sum(
        ((c + alpha) / total) * (((c + alpha) / total) / q).ln() for c, q in zip(counts, qs, strict=True)
    )


def _enumerated(pair, n: int, rule: str) -> tuple[float, float]:
    ps = [Decimal(float(v)) for v in pair.p.probs]
    qs = [Decimal(float(v)) for v in pair.q.probs]
    k = len(ps)
    with localcontext() as ctx:
        ctx.prec = 50
        law = []
        for counts in itertools.product(range(n + 1), repeat=k):
            if sum(counts) != n or any(c and not p for c, p in zip(counts, ps, strict=True)):
                continue
            prob = Decimal(math.factorial(n))
            for c, p in zip(counts, ps, strict=True):
                prob = prob / math.factorial(c) * (p**c if c else 1)  # Decimal refuses 0**0
            law.append((prob, _decimal_value(counts, qs, rule)))
        mean = sum(w * v for w, v in law)
        var = sum(w * (v - mean) ** 2 for w, v in law)
        return float(mean), float(var.sqrt())


def _spec(rule: str) -> registry.Estimator:
    return registry.parameterised("smoothed_kl", {"alpha": rule})


@pytest.mark.parametrize("rule", list(ALPHAS))
@pytest.mark.parametrize("case", list(PAIRS))
@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_exact_mean_agrees_with_enumeration_to_1e_12(case, n, rule):
    pair, spec = PAIRS[case], _spec(rule)
    mean, sd = _enumerated(pair, n, rule)
    m = spec.moments(pair, n)
    assert m.mean == pytest.approx(mean, rel=1e-12, abs=0.0)
    # exact: sums over a coin's heads, the K' outcomes of one draw, or pairwise (trinomial) sums
    assert m.sd == pytest.approx(sd, rel=1e-9, abs=1e-15)
    assert sd <= exact.smoothed_sd_upper(pair, n, spec.smoothing) * (1 + 1e-12)  # the check's fallback bound


@pytest.mark.parametrize("n", [1000, 10**5])
def test_exact_mean_agrees_with_a_plain_binomial_sum_at_large_n(n):
    """Every count 0..n of every category, scipy's pmf: no window, no recurrence."""
    pair = d.Pair(d.zipf(20, 1.1), d.uniform(20))
    alpha = 0.5
    c = np.arange(n + 1.0)
    total = n + 20 * alpha
    ref = 0.0
    for p, q in zip(pair.p.probs, pair.q.probs, strict=True):
        f = (c + alpha) / total
        ref += float(np.sum(stats.binom.pmf(c, n, p) * (f * np.log(f / q) - f + q)))
    assert _spec("0.5").moments(pair, n).mean == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("case", ["coin", "die", "gap", "near", "zipf"])
@pytest.mark.parametrize("n", [1, 7, 1000])
@pytest.mark.parametrize("rule", ["jeffreys", "minimax"])
@pytest.mark.parametrize("family", ["smoothed_kl", "bayes_kl"])
def test_every_kernel_gives_the_definition(case, n, rule, family):
    """smoothed_kl against KL(f̃‖q), bayes_kl against the digamma closed form, both in Decimal."""
    pair = PAIRS.get(case) or d.Pair(d.zipf(100, 1.1), d.uniform(100))  # 100 > DENSE_K: sparse kernel
    arrays = SupportArrays.from_pair(pair)
    counts = np.random.default_rng(n).multinomial(n, arrays.probs, size=12)
    name = registry.parameterised(family, {"alpha": rule}).name
    got = estimate(counts, n, arrays, [name])[name]
    qs = [Decimal(float(v)) for v in pair.q.probs]
    definition = _decimal_value if family == "smoothed_kl" else _decimal_bayes
    with localcontext() as ctx:
        ctx.prec = 50
        for row, value in zip(counts, got, strict=True):
            full = np.zeros(pair.q.k, dtype=np.int64)
            full[arrays.index] = row
            ref = float(definition([int(c) for c in full], qs, rule))
            assert value == pytest.approx(ref, rel=1e-12, abs=0.0)


@pytest.mark.parametrize("name", ["smoothed_kl[alpha=jeffreys]", "bayes_kl[alpha=perks]"])
def test_running_sums_give_the_same_add_alpha_estimators_as_a_recount(name):
    arrays = SupportArrays.from_pair(d.Pair(d.zipf(1500, 1.1), d.uniform(1500)))
    ckpts = [3, 40, 700, 1499, 5000, 10**6]
    sums = SparseSums(30, arrays, [name])
    paths = count_paths(arrays.probs, ckpts, 30, rng=np.random.default_rng(5), sparse=True)
    dense = count_paths(arrays.probs, ckpts, 30, rng=np.random.default_rng(5))
    for n, (counts, change), reference in zip(ckpts, paths, dense, strict=True):
        got = sums.update(counts, change, n)[name]
        np.testing.assert_allclose(got, estimate(reference, n, arrays, [name])[name], rtol=1e-12)


def test_alpha_rules_and_labels():
    assert [_spec(r).name for r in ("Laplace", 1, 1.0, "0.50", 2.5e-5)] == [
        "smoothed_kl[alpha=laplace]",
        "smoothed_kl[alpha=1]",
        "smoothed_kl[alpha=1]",
        "smoothed_kl[alpha=0.5]",
        "smoothed_kl[alpha=2.5e-05]",
    ]
    assert registry.get("smoothed_kl[alpha=0.5]") == _spec(0.5)
    s = _spec("minimax").smoothing
    assert s.value(50, 10_000) == 2.0 and _spec("perks").smoothing.value(50, 7) == 0.02


CONFIG = """
name: s
n: [10]
estimators: {estimators}
cases:
  - {{name: c, p: [0.5, 0.5, 0.0], q: {q}}}
"""


def _config(estimators: str, q: str = "[0.3, 0.3, 0.4]"):
    return parse_config(CONFIG.format(estimators=estimators, q=q), "s.yaml")


def _issues(estimators: str, q: str = "[0.3, 0.3, 0.4]") -> list[str]:
    with pytest.raises(ConfigError) as info:
        _config(estimators, q)
    return [str(i) for i in info.value.issues]


def test_configs_write_parameters_as_mappings_or_labels():
    e = _config("[llr, {smoothed_kl: {alpha: 0.5}}, 'smoothed_kl[alpha=perks]', {smoothed_kl: {alpha: 1.0}}]")
    assert e.estimators == (
        "llr",
        "smoothed_kl[alpha=0.5]",
        "smoothed_kl[alpha=perks]",
        "smoothed_kl[alpha=1]",
    )


@pytest.mark.parametrize(
    ("estimators", "fragment", "where"),
    [
        ("[llr, smoothed_kl]", "needs alpha", "s.yaml:4: estimators[1]"),
        (
            "[{smoothed_kl: {alpha: -1}}]",
            "up to 1e+15 or one of laplace",
            "s.yaml:4: estimators[0].smoothed_kl",
        ),
        ("[{smoothed_kl: {alpha: 0}}]", "positive number", "s.yaml:4: estimators[0].smoothed_kl"),
        ("[{smoothed_kl: {alpha: yes}}]", "positive number", "s.yaml:4: estimators[0].smoothed_kl"),
        ("[{smoothed_kl: {beta: 1}}]", "no parameter 'beta'", "s.yaml:4: estimators[0].smoothed_kl"),
        ("[{smoothed_kl: 0.5}]", "mapping of parameters", "s.yaml:4: estimators[0].smoothed_kl"),
        ("['smoothed_kl[alpha=1.0]']", "did you mean 'smoothed_kl[alpha=1]'", "s.yaml:4: estimators[0]"),
        ("[{smoothed_kl: {alpha: 1}}, 'smoothed_kl[alpha=1]']", "listed twice", "s.yaml:4: estimators[1]"),
        ("[{smothed_kl: {alpha: 1}}]", "must be one of", "s.yaml:4: estimators[0]"),
    ],
)
def test_a_wrong_parameter_is_a_config_error_with_its_line(estimators, fragment, where):
    issues = _issues(estimators)
    assert len(issues) == 1 and fragment in issues[0] and issues[0].startswith(where), issues


def test_smoothing_needs_q_positive_everywhere():
    issues = _issues("[llr, {smoothed_kl: {alpha: 0.5}}]", q="[0.5, 0.5, 0.0]")
    assert len(issues) == 1 and issues[0].startswith("s.yaml:4: estimators[1]")
    assert "case 'c' has q = 0 on 1 of its 3 categories" in issues[0]


def test_fit_experiments_take_no_parameterised_estimator():
    text = """
name: f
kind: fit
n: [20]
estimators: [kl_fitted, {smoothed_kl: {alpha: 1}}]
inputs: {probs: [0.5, 0.5], features: [[0.0], [1.0]]}
truth: {weights: [[0.3, 1.6], [0.0, 0.0]]}
cases:
  - {name: saturated, model: saturated}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.yaml")
    assert any("estimators[1]" in str(i) for i in info.value.issues)


RUN = (
    """
name: sm
seed: 4
replicates: 2000
units: UNITS
n: [1, 2, 10, 1000]
estimators: [llr, plugin_kl, {smoothed_kl: {alpha: jeffreys}}, {smoothed_kl: {alpha: minimax}}, {bayes_kl: {alpha: perks}}]
"""
    + ESTIMATOR_CASES
)


@pytest.fixture(scope="module")
def run(units, run_serially):
    return run_serially(RUN.replace("UNITS", units))


@pytest.mark.slow
def test_simulated_smoothed_kl_passes_sim_check_in_either_units(run):
    assert run.check.passed, run.check.table()
    summary = pd.read_csv(run.path / "summary.csv")
    scale = math.log(2) if summary.units.iloc[0] == "bits" else 1.0
    experiment = parse_config(RUN.replace("UNITS", summary.units.iloc[0]))
    pairs = {case.name: case.pair for case in experiment.cases}
    for row in summary[summary.estimator.str.contains(r"_kl\[")].itertuples():
        nats = registry.get(row.estimator).moments(pairs[row.case], int(row.n)).mean
        assert row.exact_mean == pytest.approx(nats / scale, rel=1e-15, abs=0.0)
    assert exact.smoothed_moments.cache_info().currsize > 0


# --------------------------------------------------------------------------
# bayes_kl: the posterior mean of KL(θ‖q) under Dirichlet(c + α)

_BERNOULLI = [Decimal(1) / 6, Decimal(-1) / 30, Decimal(1) / 42, Decimal(-1) / 30, Decimal(5) / 66]
_BERNOULLI += [Decimal(-691) / 2730, Decimal(7) / 6, Decimal(-3617) / 510, Decimal(43867) / 798]


def _decimal_digamma(x: Decimal) -> Decimal:
    """ψ(x) at 50 digits: the recurrence up to x ≥ 60, then the asymptotic series (error < 1e-35)."""
    shift = Decimal(0)
    while x < 60:
        shift += 1 / x
        x += 1
    series = x.ln() - 1 / (2 * x)
    for j, b in enumerate(_BERNOULLI, start=1):
        series -= b / (2 * j * x ** (2 * j))
    return series - shift


def _decimal_bayes(counts, qs, rule: str) -> Decimal:
    """Σ_k (a_k/A)(ψ(a_k + 1) − ψ(A + 1) − log q_k), a = c + α, A = n + Kα, at 50 digits."""
    k, n = len(counts), sum(counts)
    alpha = _alpha(rule, k, n)
    total = n + k * alpha
    psi_total = _decimal_digamma(total + 1)
    return sum(
        ((c + alpha) / total) * (_decimal_digamma(c + alpha + 1) - psi_total - q.ln())
        for c, q in zip(counts, qs, strict=True)
    )


def test_digamma_excess_keeps_relative_precision_from_tiny_to_huge_x():
    """ψ(x + 1) − log x within 2e-15 of 50-digit Decimal (a few ε: no step cancels by more than
    12): below x = 4 scipy's digamma, to 12 a recurrence of positive steps, above the series.
    scipy's digamma less log x is off by 8e-15 near x = 10, and the series by 9e-16 at x = 10."""
    from sim.distributions import digamma_excess

    x = np.concatenate([np.logspace(-6, 12, 90), np.linspace(3.5, 12.5, 40)])
    with localcontext() as ctx:
        ctx.prec = 50
        ref = np.array([float(_decimal_digamma(Decimal(float(v)) + 1) - Decimal(float(v)).ln()) for v in x])
    np.testing.assert_allclose(digamma_excess(x), ref, rtol=2e-15, atol=0.0)


def _bayes(rule) -> registry.Estimator:
    return registry.parameterised("bayes_kl", {"alpha": rule})


@pytest.mark.parametrize("rule", ["jeffreys", "perks", "0.01"])
@pytest.mark.parametrize("case", ["coin", "die", "gap"])
@pytest.mark.parametrize("n", [1, 3, 8])
def test_bayes_exact_mean_agrees_with_enumeration_to_1e_12(case, n, rule):
    pair, spec = PAIRS[case], _bayes(rule)
    ps = [Decimal(float(v)) for v in pair.p.probs]
    qs = [Decimal(float(v)) for v in pair.q.probs]
    with localcontext() as ctx:
        ctx.prec = 50
        mean = Decimal(0)
        for counts in itertools.product(range(n + 1), repeat=len(ps)):
            if sum(counts) != n or any(c and not p for c, p in zip(counts, ps, strict=True)):
                continue
            prob = Decimal(math.factorial(n))
            for c, p in zip(counts, ps, strict=True):
                prob = prob / math.factorial(c) * (p**c if c else 1)
            mean += prob * _decimal_bayes(counts, qs, rule)
    assert spec.moments(pair, n).mean == pytest.approx(float(mean), rel=1e-12, abs=0.0)


def test_the_digamma_closed_form_is_the_posterior_mean_of_kl():
    """For two categories θ ~ Beta(c₁ + α, c₂ + α): E[KL(θ‖q)] by numerical integration."""
    from scipy import integrate

    pair = PAIRS["coin"]
    q1, q2 = pair.q.probs
    for heads, n, alpha in [(3, 10, 0.5), (0, 4, 1.0), (70, 100, 0.25)]:
        a, b = heads + alpha, n - heads + alpha
        density = stats.beta(a, b).pdf

        def kl(t, density=density):
            return (t * math.log(t / q1) + (1 - t) * math.log((1 - t) / q2)) * density(t)

        expected = integrate.quad(kl, 0, 1, epsabs=0, epsrel=1e-12, limit=200)[0]
        arrays = SupportArrays.from_pair(pair)
        name = _bayes(alpha).name
        got = estimate(np.array([[heads, n - heads]]), n, arrays, [name])[name][0]
        assert got == pytest.approx(expected, rel=1e-9)


def test_bayes_labels_and_config():
    e = _config("[{bayes_kl: {alpha: jeffreys}}, 'bayes_kl[alpha=0.5]', {smoothed_kl: {alpha: 0.5}}]")
    assert e.estimators == ("bayes_kl[alpha=jeffreys]", "bayes_kl[alpha=0.5]", "smoothed_kl[alpha=0.5]")
    assert "needs alpha" in _issues("[bayes_kl]")[0]


def test_every_problem_is_reported_at_once_with_the_q_that_has_zeros():
    text = """
name: s
n: [10]
estimators: [llr, {smoothed_kl: {alpha: -2}}, {bayes_kl: {alpha: 0.5}}, zipff]
cases:
  - {name: c, p: [0.5, 0.5, 0.0], q: [0.5, 0.5, 0.0]}
  - {name: bad, p: [0.5, 0.6], q: [0.5, 0.5]}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "s.yaml")
    issues = [str(i) for i in info.value.issues]
    assert any(i.startswith("s.yaml:4: estimators[1].smoothed_kl") for i in issues)
    assert any(i.startswith("s.yaml:4: estimators[3]") for i in issues)
    assert any(i.startswith("s.yaml:7: cases[1].p") for i in issues)
    zeros = [i for i in issues if "q = 0 on 1 of its 3 categories" in i]
    assert len(zeros) == 1 and zeros[0].startswith("s.yaml:4: estimators[2]")


def test_alpha_is_bounded_where_its_terms_stay_exact():
    assert registry.MAX_ALPHA == 1e15 and _spec(1e15).smoothing.alpha == 1e15
    assert "up to 1e+15" in _issues("[{smoothed_kl: {alpha: 1.0e+16}}]")[0]
    # the largest α gives q's own uniform limit KL((½, ½)‖q), not an overflow
    pair = d.Pair(d.coin(0.5), d.coin(0.25))
    limit = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    for family in ("smoothed_kl", "bayes_kl"):
        spec = registry.parameterised(family, {"alpha": 1e15})
        assert spec.moments(pair, 10).mean == pytest.approx(limit, rel=1e-12)
