"""`sim check` and the exact-reference columns of summary.csv."""

from __future__ import annotations

import math
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import sim.blocks
from sim import exact, registry
from sim.check import check_results, check_tables
from sim.config import parse_config
from sim.runner import run_experiment

CONFIG = """
name: exactness
seed: 4
replicates: 400
n: [1, 4, 30, 1000, 1000000]
cases:
  - {name: coin, p: 0.7, q: 0.5}
  - {name: die, p: [0.4, 0.3, 0.2, 0.1], q: [0.1, 0.2, 0.3, 0.4]}
  - {name: same, p: [0.2, 0.3, 0.5], q: [0.2, 0.3, 0.5]}
  - {name: flat, p: [0.5, 0.5, 0.0], q: {uniform: 3}}
  - {name: close, p: 0.3, q: 0.300000001}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return run_experiment(parse_config(CONFIG), tmp_path_factory.mktemp("out")).path


@pytest.fixture
def copy(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_a_correct_run_passes_and_says_so(folder, cli):
    report = check_results(folder)
    assert report.passed, report.table()
    assert "agrees with theory" in report.headline() and "Bonferroni" in report.headline()
    r = cli("check", str(folder))
    assert r.exit_code == 0 and "agrees with theory" in r.stdout


def test_summary_has_exact_references(folder):
    s = pd.read_csv(folder / "summary.csv")
    for col in ("exact_mean", "exact_sd", "z", "coverage95", "coverage95_mcse", "coverage95_exact"):
        assert col in s.columns
    llr = s[s.estimator == "llr"]
    np.testing.assert_allclose(llr.exact_mean, llr.target, rtol=1e-14)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (s["mean"] - s.exact_mean) / (s.exact_sd / np.sqrt(s.replicates))
    z = z.where(s.exact_sd > 0)
    np.testing.assert_allclose(s.z, z, rtol=1e-12, equal_nan=True)
    plugin = s[(s.estimator == "plugin_kl") & (s.case == "die")]
    assert plugin.exact_mean.notna().all() and (plugin.exact_sd > 0).all()  # four distinct p: exact
    assert s[s.estimator != "llr"].coverage95.isna().all()
    assert llr[llr.case == "coin"].coverage95_exact.notna().all()
    assert llr[llr.case == "die"].coverage95_exact.isna().all()
    coin = llr[llr.case == "coin"]
    np.testing.assert_allclose(coin.coverage95_mcse, np.sqrt(coin.coverage95 * (1 - coin.coverage95) / 400))


def test_zero_spread_rows_pass_without_dividing_by_zero(folder):
    s = pd.read_csv(folder / "summary.csv")
    for case in ("same", "flat"):
        rows = s[(s.case == case) & (s.estimator == "llr")]
        assert (rows.exact_sd == 0).all() and rows.z.isna().all()
    a = pd.read_csv(folder / "analytic.csv").set_index("case")
    assert a.loc["same", "kl_pq"] == 0.0 and a.loc["flat", "llr_sigma"] == 0.0
    assert a.loc["close", "kl_pq"] == pytest.approx(2.3809525e-18, rel=1e-6)


@pytest.mark.parametrize(
    ("case", "estimator"), [("coin", "llr"), ("die", "plugin_kl"), ("coin", "plugin_kl")]
)
def test_a_mean_moved_by_a_few_mcse_fails_naming_the_row(copy, cli, case, estimator):
    s = pd.read_csv(copy / "summary.csv")
    i = s.index[(s.case == case) & (s.estimator == estimator) & (s.n == 30)][0]
    s.loc[i, "mean"] += 6 * s.loc[i, "mcse"]
    s.to_csv(copy / "summary.csv", index=False)
    r = cli("check", str(copy))
    assert r.exit_code == 1
    assert "DISAGREES with theory" in r.stdout
    assert f"case {case}, n = 30, {estimator}: column mean" in r.stdout


@pytest.mark.parametrize("case", ["same", "flat"])
def test_an_exact_row_fails_when_changed_at_all(copy, case):
    s = pd.read_csv(copy / "summary.csv")
    i = s.index[(s.case == case) & (s.estimator == "llr") & (s.n == 4)][0]
    s.loc[i, "mean"] += 1e-7
    s.to_csv(copy / "summary.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero anywhere
        report = check_results(copy)
    assert not report.passed
    f = report.failures
    assert ((f.case == case) & (f.estimator == "llr") & (f.column == "mean")).any()


def test_a_tampered_exact_column_is_caught(copy):
    s = pd.read_csv(copy / "summary.csv")
    s.loc[s.index[(s.case == "coin") & (s.estimator == "plugin_kl")][0], "exact_mean"] *= 1.01
    s.to_csv(copy / "summary.csv", index=False)
    report = check_results(copy)
    assert not report.passed and "exact_mean" in set(report.failures.column)


def test_a_biased_sampler_is_caught(monkeypatch, tmp_path, cli):
    real = sim.blocks.count_paths

    def biased(probs, *args, **kwargs):
        p = np.asarray(probs, dtype=float).copy()
        p[0] += 0.02  # the most likely category a little too likely
        return real(p / p.sum(), *args, **kwargs)

    monkeypatch.setattr(sim.blocks, "count_paths", biased)
    text = "name: biased\nseed: 1\nreplicates: 400\nn: [10, 1000, 100000]\ncases:\n  - {name: coin, p: 0.7, q: 0.5}\n"
    report = run_experiment(parse_config(text), tmp_path)
    assert not report.check.passed
    r = cli("check", str(report.path))
    assert r.exit_code == 1 and "coin" in r.stdout


def test_bits_are_nats_over_ln2(tmp_path):
    nats = run_experiment(parse_config(CONFIG), tmp_path / "n").summary
    bits_report = run_experiment(parse_config(CONFIG + "units: bits\n"), tmp_path / "b")
    bits = bits_report.summary
    assert bits_report.check.passed
    for col in ("target", "mean", "sd", "exact_mean", "exact_sd", "q50"):
        # atol: constant estimators carry ~1e-15 of rounding noise in their sd
        np.testing.assert_allclose(bits[col], nats[col] / math.log(2), rtol=1e-12, atol=1e-13, equal_nan=True)
    np.testing.assert_allclose(bits.z, nats.z, rtol=1e-8, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(bits.coverage95, nats.coverage95)


def test_check_refuses_a_folder_without_results(cli, tmp_path):
    r = cli("check", str(tmp_path))
    assert r.exit_code == 2 and "missing summary.csv" in r.stderr


def test_run_reports_agreement_in_one_line(cli, write_config, tmp_path):
    cfg = write_config(CONFIG)
    r = cli("run", str(cfg), "--out", str(tmp_path), "--no-figures")
    assert r.exit_code == 0
    assert "exactness: agrees with theory" in r.stdout


@pytest.fixture
def no_exact_plugin_variance(monkeypatch):
    """The exact plug-in variance out of budget, as for a large vocabulary of distinct p."""
    monkeypatch.setattr(exact, "VARIANCE_BUDGET", 0)
    caches = (registry._moments, exact.plugin_moments, exact._exact_plugin_variance, exact.plugin_variance)
    for cached in caches:
        cached.cache_clear()
    yield
    for cached in caches:
        cached.cache_clear()


RARE = (
    "name: rare\nseed: 5\nreplicates: 300\nn: [2, 1000]\ncases:\n"
    "  - {name: c, p: [0.0, 0.9995405001157497, 0.00045949988425031396], q: [0.8324, 0.1466, 0.021]}\n"
)


def test_identical_replicates_of_an_estimator_with_unknown_spread_are_not_misjudged(
    tmp_path, no_exact_plugin_variance
):
    # p puts 0.9995 on one category: at n = 2 all 300 replicates usually give the
    # same plug-in KL, while its exact mean includes outcomes none of them drew.
    report = run_experiment(parse_config(RARE), tmp_path)
    s = report.summary.set_index(["n", "estimator"])
    assert s.loc[(2, "plugin_kl"), "sd"] < 1e-12
    assert report.check.passed, report.check.table()
    tested = report.check.tests
    mean = tested[(tested.n == 2) & (tested.estimator == "plugin_kl") & (tested.column == "mean")]
    # never a z-test with the replicates' own (zero) sd: a bound that holds whatever the law is
    assert set(mean.test) <= {
        "Bernstein bound test",
        "not testable",
        "recomputed from replicates.csv.gz",
        "within the possible values",
    }


def test_identical_replicates_are_tested_against_the_exact_sd_where_it_is_known(tmp_path):
    # The same run with the exact variance: the rare outcome's weight in the
    # mean is within the exact standard error, and the sd's test is conservative.
    report = run_experiment(parse_config(RARE), tmp_path)
    s = report.summary.set_index(["n", "estimator"])
    assert s.loc[(2, "plugin_kl"), "sd"] < 1e-12 < s.loc[(2, "plugin_kl"), "exact_sd"]
    assert report.check.passed, report.check.table()
    t = report.check.tests
    statistical = ("exact test (Binomial)", "z-test (exact sd)", "Bernstein bound test")
    for column in ("mean", "sd"):
        rows = t[(t.n == 2) & (t.estimator == "plugin_kl") & (t.column == column) & t.test.isin(statistical)]
        assert len(rows) == 1 and rows.p.iloc[0] > 0


def test_two_valued_estimators_have_their_sd_checked_through_the_mean(tmp_path):
    """A fair coin at n = 1 and the indicator p_wrong: s is a function of the mean.

    The z-test of s² assumes it is roughly normal, which fails for a two-point
    law near p = 1/2 (s² then sits just below its maximum, its fluctuation
    second-order).  This seed made the old z-test fail (z = −4.4 with
    |z| ≤ 4.2 allowed); the sd is now checked exactly against the mean, and a
    tampered sd is still caught.
    """
    text = (
        "name: fair\nseed: 478865\nreplicates: 500\nunits: bits\n"
        "n: {min: 1, max: 1000000000000, points: 3}\n"
        "estimators: [llr, cross_entropy, entropy, plugin_kl, p_wrong]\n"
        "cases: [{name: c, p: 0.5, q: 7.701987898638942e-09}]\n"
    )
    report = run_experiment(parse_config(text), tmp_path).check
    t = report.tests
    assert report.passed, report.table()
    by_mean = t[(t.column == "sd") & (t.test == "consistency within the row")]
    assert set(by_mean.estimator) == {"llr", "cross_entropy", "plugin_kl", "p_wrong"}  # entropy: constant
    assert set(by_mean.n) == {1}  # later p_wrong is 0 to all precision: sd exactly 0
    summary = tmp_path / "fair" / "summary.csv"
    s = pd.read_csv(summary)
    s.loc[(s.n == 1) & (s.estimator == "llr"), "sd"] *= 1.001
    s.to_csv(summary, index=False)
    bad = check_results(tmp_path / "fair")
    assert set(bad.failures.column) == {"sd", "mcse", "rmse"}  # mcse = sd/√R, rmse² = bias² + … break too


def test_a_two_valued_estimator_that_never_moved_is_consistent(tmp_path):
    """All 500 replicates the same (p = 4.6e-5 at n = 1), streamed: the mean's rounding
    must not be magnified by the square root into a false failure."""
    text = (
        "name: rare\nseed: 441173\nreplicates: 500\nsave_replicates: false\nunits: bits\n"
        "n: {min: 1, max: 100000, points: 8}\ncases: [{name: c, p: 4.596296407832921e-05, q: 0.5}]\n"
    )
    report = run_experiment(parse_config(text), tmp_path).check
    assert report.passed, report.table()
    t = report.tests
    assert ((t.column == "sd") & (t.test == "consistency within the row")).any()


def test_plain_p_wrong_is_tested_against_the_tilted_estimate_as_a_binomial_count(tmp_path):
    """One plain event in 2,000 where the tilted estimate (exact: 0.004278) expects 8.6.

    Unlucky (probability 0.2 %) but no error: with the plain estimate's own
    standard error the old two-sample test gave z = 7.2; the exact Binomial
    test against the tilted estimate gives a p-value of about 1 %.  A tilted
    estimate off by a factor of five would be caught.
    """
    text = (
        "name: b20\nseed: 126149\nreplicates: 2000\nunits: bits\n"
        "n: {min: 1, max: 10000000, points: 9}\n"
        "estimators: [llr, cross_entropy, entropy, plugin_kl, p_wrong, p_wrong_tilted]\n"
        "cases: [{name: c, p: {dirichlet: {k: 3, alpha: 2.595, seed: 44}}, "
        "q: {dirichlet: {k: 3, alpha: 1.143, seed: 6}}}]\n"
    )
    experiment = parse_config(text)
    report = run_experiment(experiment, tmp_path)
    assert report.check.passed, report.check.table()
    t = report.check.tests
    row = t[(t.n == 56) & (t.column == "mean vs p_wrong_tilted")].iloc[0]
    assert row.observed == 0.0005 and abs(row.expected - 0.004278) < 3e-4
    assert 2.0 < abs(row.z) < 3.0
    s = report.summary.copy()
    s.loc[(s.n == 56) & (s.estimator == "p_wrong_tilted"), "mean"] *= 5
    tables = {"analytic.csv": report.analytic, "summary.csv": s}
    experiment = parse_config(
        text + "save_replicates: false\n"
    )  # judged without replicates to recompute from
    s["quantile_error"] = 0.0
    bad = check_tables(experiment, tables)
    f = bad.failures
    assert not bad.passed
    assert ((f.n == 56) & (f.column == "mean vs p_wrong_tilted")).any()


def test_json_report_says_what_the_table_says(folder, copy, cli):
    import json

    r = cli("check", str(folder), "--json")
    assert r.exit_code == 0
    (report,) = json.loads(r.stdout)
    assert report["agrees_with_theory"] is True and report["failures"] == []
    counts = {(c["table"], c["column"], c["test"]): c["values"] for c in report["counts"]}
    assert counts[("summary.csv", "mean", "recomputed from replicates.csv.gz")] == 5 * 5 * 4
    assert report["statistical_tests"] > 0 and report["largest_abs_z"] < report["z_crit"]
    s = pd.read_csv(copy / "summary.csv")
    s.loc[3, "rmse"] *= 3
    s.to_csv(copy / "summary.csv", index=False)
    r = cli("check", str(copy), "--json")
    assert r.exit_code == 1
    (bad,) = json.loads(r.stdout)
    failure = next(f for f in bad["failures"] if f["column"] == "rmse")
    assert {"table", "case", "n", "estimator", "column", "test", "observed", "expected", "tolerance"} <= set(
        failure
    )
    assert failure["case"] == s.case[3] and failure["n"] == s.n[3]


def test_the_replicates_grid_is_decided_by_arrays_in_any_row_order():
    """Every (case, replicate, n) once, whatever the order; a moved, renamed or missing key is not."""
    from types import SimpleNamespace

    from sim.check.tables import _complete_grid

    experiment = SimpleNamespace(
        replicates=3, checkpoints=[1, 10], cases=[SimpleNamespace(name="a"), SimpleNamespace(name="b")]
    )
    counts = {"a": 3, "b": 3}
    rows = [(c, r, n) for c in "ab" for r in range(3) for n in (1, 10)]
    frame = pd.DataFrame(rows, columns=["case", "replicate", "n"])
    assert _complete_grid(frame.sample(frac=1.0, random_state=2), experiment, counts)
    moved = frame.copy()
    moved.loc[0, "n"] = 10  # (a, 0, 10) twice, (a, 0, 1) missing
    renamed = frame.copy()
    renamed.loc[3, "case"] = "c"
    assert not _complete_grid(moved, experiment, counts)
    assert not _complete_grid(renamed, experiment, counts)
    assert not _complete_grid(frame.iloc[1:], experiment, counts)
    # cases of their own counts (replicates chosen by precision)
    uneven = pd.DataFrame(
        [(c, r, n) for c, k in (("a", 2), ("b", 5)) for r in range(k) for n in (1, 10)],
        columns=["case", "replicate", "n"],
    )
    assert _complete_grid(uneven, experiment, {"a": 2, "b": 5})
    assert not _complete_grid(uneven, experiment, {"a": 3, "b": 4})
