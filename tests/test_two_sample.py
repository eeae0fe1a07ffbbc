"""two_sample_kl: KL(f‖q̃) of p's sample against q's own sample, add-α smoothed (case option q_sample).

References never call the code under test: exact means and sds by
enumerating both samples' count vectors with 50-digit Decimal arithmetic,
and for large samples plain Binomial sums over every count (scipy's pmf,
E[Σ f log f] − Σ p E[log q̃] written directly).  Simulated rows are checked
by ``sim check`` (means within their MCSE), and a tampered kernel is caught.
"""

from __future__ import annotations

import gzip
import itertools
import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim import blocks, registry
from sim import distributions as d
from sim.check.report import ESTIMATED_TEST, STATISTICAL
from sim.config import parse_config
from sim.config.model import dump_config
from sim.errors import ConfigError
from sim.estimators import SupportArrays, two_sample
from tests.helpers import z_crit

PAIRS = {
    "coin": d.Pair(d.coin(0.7), d.coin(0.5), 1.0),
    "die": d.Pair(d.categorical([0.1, 0.3, 0.6]), d.categorical([0.2, 0.3, 0.5]), 2.0),
    "gap": d.Pair(d.categorical([0.5, 0.5, 0.0]), d.categorical([0.3, 0.3, 0.4]), 0.5),
}
#: q's sample a hundredth of p's: at n = 3000 it misses q's rare category one time in five.
SPARSE = d.Pair(d.categorical([0.1, 0.3, 0.6]), d.categorical([0.05, 0.35, 0.6]), 0.01)


def _alpha(rule: str, k: int, m: int) -> Decimal:
    """α by the rule's definition (on q's sample size m), independently of the registry."""
    return {"jeffreys": Decimal("0.5"), "perks": Decimal(1) / k, "minimax": Decimal(m).sqrt() / k}.get(
        rule
    ) or Decimal(rule)


def _compositions(total: int, k: int):
    return (c for c in itertools.product(range(total + 1), repeat=k) if sum(c) == total)


def _multinomial(counts, probs) -> Decimal:
    w = Decimal(math.factorial(sum(counts)))
    for c, p in zip(counts, probs, strict=True):
        w = w / math.factorial(c) * (p**c if c else 1)  # Decimal refuses 0**0
    return w


def _enumerated(pair: d.Pair, n: int, rule: str) -> tuple[float, float]:
    """Mean and sd of KL(f‖q̃) over every pair of count vectors, at 50 digits."""
    ps = [Decimal(float(v)) for v in pair.p.probs]
    qs = [Decimal(float(v)) for v in pair.q.probs]
    k, m = len(ps), pair.q_sample_size(n)
    with localcontext() as ctx:
        ctx.prec = 50
        alpha = _alpha(rule, k, m)
        total = m + k * alpha
        p_law = [(_multinomial(c, ps), c) for c in _compositions(n, k)]
        q_law = [(_multinomial(c, qs), c) for c in _compositions(m, k)]
        law = []
        for (wp, c), (wq, dd) in itertools.product(p_law, q_law):
            if wp and wq:
                value = sum(
                    Decimal(ci) / n * (Decimal(ci) / n / ((di + alpha) / total)).ln()
                    for ci, di in zip(c, dd, strict=True)
                    if ci
                )
                law.append((wp * wq, value))
        mean = sum(w * v for w, v in law)
        return float(mean), float(sum(w * (v - mean) ** 2 for w, v in law).sqrt())


def _spec(rule: str) -> registry.Estimator:
    return registry.parameterised("two_sample_kl", {"alpha": rule})


@pytest.mark.parametrize("rule", ["0.5", "minimax", "perks"])
@pytest.mark.parametrize("name", list(PAIRS))
@pytest.mark.parametrize("n", [1, 2, 4])
def test_exact_mean_agrees_with_both_samples_enumerated(name, n, rule):
    pair = PAIRS[name]
    mean, sd = _enumerated(pair, n, rule)
    got = _spec(rule).moments(pair, n)
    assert got.mean == pytest.approx(mean, rel=1e-12, abs=0.0)
    if pair.family == "coin":  # the double sum over both samples' heads
        assert got.sd == pytest.approx(sd, rel=1e-10, abs=0.0)
    else:
        assert math.isnan(got.sd)


def _binomial_sums(pair: d.Pair, n: int, alpha: float) -> float:
    """E[Σ f log f] − Σ_k p_k E[log(D_k + α)] + log A over every count (scipy's pmf), in plain form."""
    m, k = pair.q_sample_size(n), pair.q.k
    c, dd = np.arange(n + 1.0), np.arange(m + 1.0)
    parts = [math.log(m + k * alpha)]
    for p, q in zip(pair.p.probs, pair.q.probs, strict=True):
        if p > 0:
            f = c / n
            parts.append(math.fsum(stats.binom.pmf(c, n, p) * f * np.log(np.where(f > 0, f, 1.0))))
            parts.append(-p * math.fsum(stats.binom.pmf(dd, m, q) * np.log(dd + alpha)))
    return math.fsum(parts)


@pytest.mark.parametrize("alpha", [0.5, 1e-6])
@pytest.mark.parametrize("name", ["die", "gap", "coin", "sparse"])
def test_exact_mean_agrees_with_plain_binomial_sums_at_large_n(name, alpha):
    """A tiny α leaves q̃ = α/A far below q where q's sample missed a category: log(q̃/q) far from 0."""
    pair, n = PAIRS.get(name, SPARSE), 3000
    got = _spec(repr(alpha)).moments(pair, n).mean
    assert got == pytest.approx(_binomial_sums(pair, n, alpha), rel=1e-11)


def _decimal_kernel(c, dd, n: int, m: int, alpha: float, k: int) -> float:
    with localcontext() as ctx:
        ctx.prec = 50
        a = Decimal(alpha)
        total = m + k * a
        return float(
            sum(
                Decimal(int(ci)) / n * (Decimal(int(ci)) / n / ((int(di) + a) / total)).ln()
                for ci, di in zip(c, dd, strict=True)
                if ci
            )
        )


def test_kernel_is_the_definition():
    pair = d.Pair(d.categorical([0.25, 0.25, 0.25, 0.25, 0.0]), d.categorical([0.2] * 5), 1.0)
    arrays = SupportArrays.from_pair(pair)
    rng = np.random.default_rng(3)
    n = m = 40
    counts = rng.multinomial(n, arrays.probs, size=30)
    q_counts = rng.multinomial(m, np.append(arrays.q_probs, arrays.q_outside), size=30)
    got = two_sample(counts, q_counts, n, m, 1.0, arrays)
    assert (got >= 0).all()
    for row in range(30):
        q_support = q_counts[row, :4]
        assert got[row] == pytest.approx(_decimal_kernel(counts[row], q_support, n, m, 1.0, 5), rel=1e-13)


def test_kernel_is_exactly_zero_where_f_equals_q_tilde():
    arrays = SupportArrays.from_pair(d.Pair(d.uniform(4), d.uniform(4), 0.9))
    counts, q_counts = np.array([[10, 10, 10, 10]]), np.array([[9, 9, 9, 9]])  # f = q̃ = ¼: (9 + 1)/(36 + 4)
    assert two_sample(counts, q_counts, 40, 36, 1.0, arrays)[0] == 0.0


def test_kernel_keeps_relative_precision_near_equality():
    pair = d.Pair(d.uniform(2), d.uniform(2), 1.0)
    arrays = SupportArrays.from_pair(pair)
    n = m = 10**9
    counts = np.array([[n // 2 + 1, n // 2 - 1]])
    q_counts = np.array([[m // 2, m // 2]])
    got = two_sample(counts, q_counts, n, m, 0.5, arrays)[0]
    assert got == pytest.approx(_decimal_kernel(counts[0], q_counts[0], n, m, 0.5, 2), rel=1e-9)
    assert 0 < got < 1e-16


def test_q_samples_are_nested_multinomials_from_their_own_stream():
    text = TWO.replace("UNITS", "nats").replace("RATIO_DIE", "0.3")
    experiment = parse_config(text)
    case = experiment.cases[1]
    arrays = SupportArrays.from_pair(case.pair)
    rows = 4000
    samples = [(m, counts.copy()) for m, counts in blocks._q_samples(experiment, case, arrays, 0, rows)]
    sizes = [m for m, _ in samples]
    assert sizes == [case.pair.q_sample_size(n) for n in experiment.checkpoints] == [1, 1, 3, 30]
    assert (samples[0][1] == samples[1][1]).all()  # one draw for a repeated M
    previous = np.zeros_like(samples[0][1])
    tests = []
    for m, counts in samples:
        assert (counts.sum(axis=1) == m).all() and (counts >= previous).all()  # nested: prefixes
        previous = counts
        q = case.pair.q.probs[arrays.index]
        tests.append((counts[:, : q.size].mean(axis=0) - m * q) / np.sqrt(m * q * (1 - q) / rows))
    # 4 checkpoints × 4 categories, Bonferroni
    assert np.abs(np.concatenate(tests)).max() < z_crit(16)


TWO = """
name: two
seed: 11
replicates: 400
units: UNITS
n: [1, 3, 10, 100]
estimators: [llr, plugin_kl, {two_sample_kl: {alpha: 0.5}}, {two_sample_kl: {alpha: minimax}}]
cases:
  - {name: coin, p: 0.7, q: 0.5, q_sample: {ratio: 1}}
  - {name: die, p: [0.1, 0.3, 0.6, 0], q: [0.2, 0.3, 0.4, 0.1], q_sample: {ratio: RATIO_DIE}}
  - {name: zipf, p: {zipf: {k: 100, s: 1.1}}, q: {uniform: 100}, q_sample: {ratio: 2}}
"""


@pytest.fixture(scope="module")
def run(units, run_serially):
    return run_serially(TWO.replace("UNITS", units).replace("RATIO_DIE", "0.5"))


def test_simulated_two_sample_passes_sim_check_in_either_units(run):
    assert run.check.passed, run.check.table()
    summary = pd.read_csv(run.path / "summary.csv")
    units = summary.units.iloc[0]
    scale = math.log(2) if units == "bits" else 1.0
    pairs = {
        c.name: c.pair for c in parse_config(TWO.replace("UNITS", units).replace("RATIO_DIE", "0.5")).cases
    }
    rows = summary[summary.estimator.str.startswith("two_sample_kl")]
    assert len(rows) == 3 * 4 * 2
    for row in rows.itertuples():
        nats = registry.get(row.estimator).moments(pairs[row.case], int(row.n)).mean
        assert row.exact_mean == pytest.approx(nats / scale, rel=1e-15, abs=0.0)
    with gzip.open(run.path / "replicates.csv.gz", "rt") as fh:
        replicates = pd.read_csv(fh)
    assert (replicates.filter(like="two_sample_kl") >= 0).all().all()
    tested = run.check.tests
    means = tested[(tested.column == "mean") & tested.estimator.str.startswith("two_sample_kl")]
    statistical = means[means.test.isin(STATISTICAL)]
    assert len(statistical) == len(rows)  # every mean tested: Bernstein (exact sd, or Popoviciu's bound) …
    nearly_normal = statistical[(statistical.n == 100) & (statistical.case != "coin")]
    assert len(nearly_normal) == 4 and (nearly_normal.test == ESTIMATED_TEST).all()  # … or the replicates' sd


def test_asking_for_two_samples_changes_none_of_p_draws(run, run_serially):
    alone = run_serially(
        TWO.replace("UNITS", "nats")
        .replace("RATIO_DIE", "0.5")
        .replace(
            "estimators: [llr, plugin_kl, {two_sample_kl: {alpha: 0.5}}, {two_sample_kl: {alpha: minimax}}]",
            "estimators: [llr, plugin_kl]",
        )
    )
    summary = pd.read_csv(run.path / "summary.csv")
    plain = pd.read_csv(alone.path / "summary.csv")
    scale = math.log(2) if summary.units.iloc[0] == "bits" else 1.0
    both = summary[summary.estimator.isin(["llr", "plugin_kl"])].reset_index(drop=True)
    np.testing.assert_allclose(both["mean"] * scale, plain["mean"], rtol=1e-14)


def test_streamed_two_sample_rows_pass_sim_check(run_serially):
    text = TWO.replace("UNITS", "nats").replace("RATIO_DIE", "0.5") + "save_replicates: false\n"
    report = run_serially(text)
    assert report.check.passed, report.check.table()


def test_a_tampered_two_sample_kernel_is_caught(run_serially, monkeypatch):
    monkeypatch.setattr(blocks, "two_sample", lambda *args: 1.1 * two_sample(*args))
    report = run_serially(TWO.replace("UNITS", "nats").replace("RATIO_DIE", "0.5"))
    assert not report.check.passed
    failed = report.check.tests[~report.check.tests.passed.astype(bool)]
    means = failed[(failed.table == "summary.csv") & (failed.column == "mean")]
    assert set(means.estimator) == {"two_sample_kl[alpha=0.5]", "two_sample_kl[alpha=minimax]"}
    assert (
        failed.estimator.str.startswith("two_sample_kl") | failed.column.str.startswith("two_sample_kl")
    ).all()


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [str(issue) for issue in info.value.issues]


def test_two_samples_need_q_sample_on_every_case():
    text = TWO.replace("UNITS", "nats").replace(", q_sample: {ratio: RATIO_DIE}", "")
    problems = _problems(text)
    assert len(problems) == 2  # one per two-sample estimator, at its line
    for problem, label in zip(
        problems, ["two_sample_kl[alpha=0.5]", "two_sample_kl[alpha=minimax]"], strict=True
    ):
        assert problem.startswith("<config>:7: estimators[") and label in problem
        assert "'die' has none" in problem and "q_sample: {ratio: …}" in problem


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        ("0", "must be in (0, 1e+06]"),
        ("-1", "must be in (0, 1e+06]"),
        ("2e6", "must be in (0, 1e+06]"),
        ("many", "must be a number"),
        ("{size: 3}", "unknown key"),
        ("{}", "missing key 'ratio'"),
    ],
)
def test_a_bad_q_sample_is_a_config_error_at_its_line(ratio, expected):
    written = ratio if ratio.startswith("{") else "{ratio: " + ratio + "}"
    problems = _problems(TWO.replace("UNITS", "nats").replace("{ratio: RATIO_DIE}", written))
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("<config>:10: cases[1].q_sample") for p in problems)


def test_q_sample_is_written_to_the_resolved_config_and_read_back():
    experiment = parse_config(TWO.replace("UNITS", "nats").replace("RATIO_DIE", "0.25"))
    assert experiment.cases[1].to_dict()["q_sample"] == {"ratio": 0.25}
    again = parse_config(dump_config(experiment))  # what config.yaml holds, as sim check reads it
    assert [c.pair.q_sample for c in again.cases] == [1.0, 0.25, 2.0]
    assert experiment.cases[1].pair.q_sample_size(10) == 3  # the nearest integer to 2.5 upwards
    assert experiment.cases[1].pair.q_sample_size(1) == 1  # at least one draw


def test_two_sample_label_and_rules():
    spec = registry.get("two_sample_kl[alpha=jeffreys]")
    assert spec.needs_q_sample and spec.target == "kl_pq"
    assert registry.parameterised("two_sample_kl", {"alpha": 1.0}).name == "two_sample_kl[alpha=1]"
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        registry.parameterised("two_sample_kl", {"alpha": 0})


@pytest.mark.parametrize(
    ("n", "sampler", "limit"),
    [("10000000000000", "counts", "9,007,199,254,740,992"), ("1000", "per-sample", "10,000,000")],
)
def test_q_sample_beyond_what_can_be_drawn_is_a_config_error(n, sampler, limit):
    text = f"name: x\nn: [10, {n}]\nsampler: {sampler}\nestimators: [{{two_sample_kl: {{alpha: 1}}}}]\n"
    text += "cases:\n  - {name: b, p: 0.5, q: 0.6, q_sample: {ratio: 1000000}}\n"
    (problem,) = _problems(text)
    assert problem.startswith("<config>:6: cases[0].q_sample.ratio:") and problem.endswith(limit)


def test_a_q_sample_no_estimator_reads_gets_a_note():
    experiment = parse_config(
        "name: x\nn: [10]\ncases:\n  - {name: b, p: 0.5, q: 0.6, q_sample: {ratio: 1}}\n"
    )
    assert experiment.notes == (
        "case 'b': q_sample is read only by a two-sample estimator (two_sample_kl), and none is asked for",
    )
