"""`sim check` catches a tampered results folder, whatever column or row was touched.

Seven small folders (coin, categorical, large K, the k estimators, streamed,
likelihood-ratio test, fit) are written once.  Each test copies one, changes one column of
one table (or the row set), and asserts that `sim check` exits 1 naming that
column.  Changes are either the ones an independent audit found passing the
old check, or just beyond the column's stated tolerance:

- values recomputed from the config or from the replicates: a relative change
  of 1e-10 (the tolerance is 1e-12 relative, or a few ulps per replicate);
- values consistent within their row (mcse, bias, z, …): a relative change of
  1e-12 (the tolerance is a few ulps);
- statistically tested values in a streamed folder (no replicates to
  recompute from): the mean moved by twice the Bonferroni critical z in
  standard errors.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from sim.check import check_results
from sim.config import parse_config
from sim.runner import run_experiment

CONFIGS = {
    "coin": """
name: coin
seed: 3
replicates: 400
n: [1, 10, 1000, 1000000]
cases:
  - {name: coin, p: 0.7, q: 0.5}
  - {name: close, p: 0.3, q: 0.300000001}
  - {name: tiny, p: 1.0e-10, q: 2.0e-10}
""",
    "categorical": """
name: categorical
seed: 4
replicates: 400
n: [1, 10, 30, 1000]
cases:
  - {name: die, p: [0.4, 0.3, 0.2, 0.1], q: [0.1, 0.2, 0.3, 0.4]}
  - {name: outside, p: [0.5, 0.5, 0.0], q: [0.3, 0.3, 0.4]}
""",
    "large": """
name: large
seed: 5
replicates: 200
n: [10, 1000, 100000]
cases:
  - {name: zipf, p: {zipf: {k: 3000, s: 1.1}}, q: {uniform: 3000}}
""",
    "k": """
name: k
seed: 9
replicates: 400
n: [1, 10, 1000]
estimators: [llr, k1, k2, k3, plugin_kl_mm, plugin_kl_jackknife, {smoothed_kl: {alpha: jeffreys}}, {bayes_kl: {alpha: perks}}]
cases:
  - {name: coin, p: 0.7, q: 0.5}
  - {name: outside, p: [0.5, 0.5, 0.0], q: [0.3, 0.3, 0.4]}
  - {name: huge_r, p: [0.98, 0.01, 0.01], q: [0.01, 0.01, 0.98]}
""",
    "streamed": """
name: streamed
seed: 6
replicates: 2000
save_replicates: false
n: [3, 30, 1000, 100000]
cases:
  - {name: coin, p: 0.7, q: 0.5}
  - {name: die, p: [0.4, 0.3, 0.2, 0.1], q: [0.1, 0.2, 0.3, 0.4]}
""",
    "testing": """
name: testing
seed: 7
replicates: 4000
n: [1, 10, 30, 100, 1000]
estimators: [llr, p_wrong, p_wrong_tilted]
cases:
  - {name: coins, p: 0.7, q: 0.5}
  - {name: die, p: [0.3, 0.25, 0.2, 0.15, 0.1], q: [0.1, 0.15, 0.2, 0.25, 0.3]}
""",
    "fit": """
name: fit
kind: fit
seed: 8
replicates: 200
n: [20, 200, 2000]
smoothing: 0.5
inputs: {probs: [0.3, 0.4, 0.3], features: [[-1.0], [0.0], [1.0]]}
truth: {weights: [[0.3, 1.6], [1.0, 0.0], [0.0, 0.0]]}
trajectory: {replicate: 0, n: 200}
cases:
  - {name: saturated, model: saturated}
  - {name: constant, model: constant}
""",
}


def _run_and_check(text, out):
    """Run a config (in a worker process); its folder, and `sim check`'s report on that folder."""
    report = run_experiment(parse_config(text), out)
    assert report.check.passed, report.check.table()
    return report.path, check_results(report.path)


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    """Each folder and `sim check`'s report on it, by key: two at a time in forked processes."""
    out = tmp_path_factory.mktemp("tamper")
    with multiprocessing.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
        done = pool.starmap(_run_and_check, [(text, out) for text in CONFIGS.values()], chunksize=1)
    return dict(zip(CONFIGS, done, strict=True))


@pytest.fixture(scope="module")
def folders(untouched):
    return {key: folder for key, (folder, _) in untouched.items()}


@pytest.fixture(scope="module")
def reports(untouched):
    """`sim check`'s report on each untouched folder, by key."""
    return lambda key: untouched[key][1]


@pytest.fixture
def copy_of(folders, tmp_path):
    made = []

    def copy(key):
        made.append(key)
        target = tmp_path / f"{key}-{len(made)}"
        shutil.copytree(folders[key], target)
        return target

    return copy


def _edit(folder, table, fn):
    path = folder / table
    frame = pd.read_csv(path)
    frame = fn(frame)
    frame.to_csv(path, index=False)


def _rows(s, case=None, n=None, estimator=None):
    mask = pd.Series(True, index=s.index)
    if case is not None:
        mask &= s.case == case
    if n is not None:
        mask &= s.n == n
    if estimator is not None:
        mask &= s.estimator == estimator
    return mask


def _caught(folder, cli, column, *, table="summary.csv", via_cli=False):
    report = check_results(folder)
    failures = report.failures
    assert not report.passed, f"{column} tampering not caught"
    assert ((failures.column == column) & (failures.table == table)).any(), failures[
        ["table", "column", "test"]
    ]
    if via_cli:
        r = cli("check", str(folder))
        assert r.exit_code == 1 and f"column {column}" in r.stdout
    return failures


def test_every_untouched_folder_passes(folders, reports):
    for key in folders:
        assert reports(key).passed, reports(key).table()


# --- the audit's tamperings ------------------------------------------------


def test_tilted_coin_mean_times_five_with_its_exact_mean_doubled(copy_of, cli):
    folder = copy_of("testing")

    def tamper(s):
        m = _rows(s, "coins", 1000, "p_wrong_tilted")
        s.loc[m, "mean"] *= 5
        s.loc[m, "exact_mean"] *= 2
        return s

    _edit(folder, "summary.csv", tamper)
    failures = _caught(folder, cli, "mean", via_cli=True)
    assert "exact_mean" in set(failures.column)


def test_near_equal_coin_llr_mean_set_to_3e_10(copy_of, cli):
    folder = copy_of("coin")

    def tamper(s):
        s.loc[_rows(s, "close", estimator="llr"), "mean"] = 3e-10
        return s

    _edit(folder, "summary.csv", tamper)
    failures = _caught(folder, cli, "mean")
    assert set(failures[failures.column == "mean"].n) == {1, 10, 1000, 1000000}


@pytest.mark.parametrize("value", [1.0, 7.2e9])
def test_categorical_tilted_mean_against_no_plain_hits(copy_of, cli, value):
    folder = copy_of("testing")

    def tamper(s):
        s.loc[_rows(s, "die", 1000, "p_wrong_tilted"), "mean"] = value
        return s

    _edit(folder, "summary.csv", tamper)
    _caught(folder, cli, "mean")


def test_categorical_tilted_mean_moved_by_ten_mcse_at_30(copy_of, cli):
    folder = copy_of("testing")

    def tamper(s):
        m = _rows(s, "die", 30, "p_wrong_tilted")
        s.loc[m, "mean"] += 10 * s.loc[m, "mcse"]
        return s

    _edit(folder, "summary.csv", tamper)
    _caught(folder, cli, "mean")


def test_categorical_tilted_mean_times_100_at_1000(copy_of, cli):
    folder = copy_of("testing")

    def tamper(s):
        s.loc[_rows(s, "die", 1000, "p_wrong_tilted"), "mean"] *= 100
        return s

    _edit(folder, "summary.csv", tamper)
    _caught(folder, cli, "mean")


def test_categorical_plugin_mean_times_three_with_sd_zero(copy_of, cli):
    folder = copy_of("categorical")

    def tamper(s):
        m = _rows(s, "die", 30, "plugin_kl")
        s.loc[m, "mean"] *= 3
        s.loc[m, "sd"] = 0.0
        return s

    _edit(folder, "summary.csv", tamper)
    _caught(folder, cli, "mean")


#: The fast tier (-m "not slow") tampers with the first of each list below; the full suite with all.
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("column", "change"),
    [
        ("exact_sd", lambda v: v * 2),
        pytest.param("coverage95_exact", lambda v: v - 0.1, marks=SLOW),
        pytest.param("z", lambda v: v * 10, marks=SLOW),
        pytest.param("mcse", lambda v: v * 2, marks=SLOW),
        pytest.param("bias", lambda v: v + 0.01, marks=SLOW),
        pytest.param("rmse", lambda v: v * 3, marks=SLOW),
        pytest.param("target", lambda v: v + 0.1, marks=SLOW),
        pytest.param("sd", lambda v: v * 2, marks=SLOW),
        pytest.param("coverage95", lambda v: v - 0.05, marks=SLOW),
        pytest.param("coverage95_mcse", lambda v: v * 2, marks=SLOW),
    ],
)
def test_the_audits_column_changes(copy_of, cli, column, change):
    folder = copy_of("coin")

    def tamper(s):
        m = _rows(s, "coin", 1000, "llr")
        s.loc[m, column] = change(s.loc[m, column])
        return s

    _edit(folder, "summary.csv", tamper)
    _caught(folder, cli, column)


def test_quantiles_swapped(copy_of, cli):
    folder = copy_of("coin")

    def tamper(s):
        m = _rows(s, "coin", 1000, "plugin_kl")
        s.loc[m, ["q05", "q95"]] = s.loc[m, ["q95", "q05"]].to_numpy()
        return s

    _edit(folder, "summary.csv", tamper)
    failures = _caught(folder, cli, "q05")
    assert {"q95", "q05 ≤ q50 ≤ q95"} <= set(failures.column)


def test_analytic_kl_doubled(copy_of, cli):
    folder = copy_of("categorical")

    def tamper(a):
        a.loc[a.case == "die", "kl_pq"] *= 2
        return a

    _edit(folder, "analytic.csv", tamper)
    _caught(folder, cli, "kl_pq", table="analytic.csv")


@pytest.mark.parametrize("key", ["coin", "fit"])
def test_a_deleted_row_is_missed(copy_of, cli, key):
    folder = copy_of(key)
    _edit(folder, "summary.csv", lambda s: s.drop(index=s.index[3]))
    failures = _caught(folder, cli, "rows")
    assert "missing row" in set(failures.reason)


def test_all_rows_but_one_deleted(copy_of, cli):
    folder = copy_of("categorical")
    _edit(folder, "summary.csv", lambda s: s.iloc[:1])
    failures = _caught(folder, cli, "rows")
    assert (failures.reason == "missing row").sum() == 2 * 4 * 4 - 1


def test_a_duplicated_and_an_unasked_row(copy_of, cli):
    folder = copy_of("large")

    def tamper(s):
        extra = s.iloc[[0, 1]].copy()
        extra.loc[extra.index[1], "n"] = 12345
        return pd.concat([s, extra], ignore_index=True)

    _edit(folder, "summary.csv", tamper)
    failures = _caught(folder, cli, "rows")
    assert {"row appears 2 times", "a row the config does not ask for"} <= set(failures.reason)


# --- every column just beyond its tolerance -------------------------------------

RECOMPUTED_COLUMNS = ["target", "exact_mean", "exact_sd", "mean", "sd", "rmse", "q05", "q50", "q95"]
CONSISTENT_COLUMNS = ["mcse", "bias", "z"]
EXACT_KINDS = (
    "recomputed from the config",
    "recomputed from replicates.csv.gz",
    "consistency within the row",
)


def _just_beyond(report, case, n, estimator, column, value):
    """value moved by three times the tightest tolerance any exact test of that cell allows."""
    t = report.tests
    m = (t.case == case) & (t.n == n) & (t.estimator == estimator) & (t.column == column)
    tolerances = t[m & t.test.isin(EXACT_KINDS)].tolerance.dropna()
    tol = float(tolerances.min()) if not tolerances.empty else 0.0
    return value + max(3 * tol, 8 * float(np.spacing(abs(value))))


@pytest.mark.slow
@pytest.mark.parametrize("key", ["coin", "categorical", "large", "k", "testing", "streamed", "fit"])
def test_each_column_just_beyond_its_tolerance(reports, copy_of, key):
    """Every column, each in a row of its own, moved by 3× the tolerance its check
    states: each change is caught and named, so the stated tolerance is the one
    applied (none is an absolute floor).  A streamed folder's mean, sd, rmse and
    quantiles have no replicates to be recomputed from and are tested statistically
    instead (see test_streamed_means_moved_by_twice_the_critical_z)."""
    report = reports(key)
    t = report.tests
    pending = list(RECOMPUTED_COLUMNS + CONSISTENT_COLUMNS)
    tampered, missed = [], []
    while pending:  # rounds: each column in a row of its own, as many per copy as rows allow
        folder = copy_of(key)
        s = pd.read_csv(folder / "summary.csv")
        rows = list(s.index[s.sd.gt(0)])
        this_round = []
        for column in list(pending):
            cells = t[(t.column == column) & t.test.isin(EXACT_KINDS)][["case", "n", "estimator"]]
            cells = set(cells.drop_duplicates().itertuples(index=False, name=None))
            every = [
                i
                for i in s.index[s.sd.gt(0) & s[column].notna()]
                if (s.case[i], s.n[i], s.estimator[i]) in cells
            ]
            if not every:
                assert (
                    key == "streamed" and column in {"mean", "sd", "rmse", "q05", "q50", "q95"}
                ) or key == "fit"
                pending.remove(column)
                continue
            usable = [i for i in every if i in rows]
            if not usable:
                continue  # next round
            i = usable[len(usable) // 2]
            rows.remove(i)
            pending.remove(column)
            row = s.loc[i]
            s.loc[i, column] = _just_beyond(report, row.case, row.n, row.estimator, column, row[column])
            this_round.append((row.case, int(row.n), row.estimator, column))
        s.to_csv(folder / "summary.csv", index=False)
        failures = check_results(folder).failures
        caught = set(failures[["case", "n", "estimator", "column"]].itertuples(index=False, name=None))
        missed += [cell for cell in this_round if cell not in caught]
        tampered += this_round
    assert tampered and not missed, missed
    assert len(tampered) >= 6


@pytest.mark.parametrize(
    "column",
    [
        "mean",
        *(pytest.param(c, marks=SLOW) for c in ("target", "exact_mean", "sd", "rmse", "q50", "mcse", "bias")),
    ],
)
def test_fit_columns_just_beyond_their_tolerance(reports, copy_of, column):
    report = reports("fit")
    folder = copy_of("fit")
    s = pd.read_csv(folder / "summary.csv")
    i = s.index[(s.case == "saturated") & (s.n == 200) & (s.estimator == "kl_fitted")][0]
    s.loc[i, column] = _just_beyond(report, "saturated", 200, "kl_fitted", column, s.loc[i, column])
    s.to_csv(folder / "summary.csv", index=False)
    _caught(folder, None, column)


def test_fit_infinite_fraction_and_trajectory(copy_of, cli):
    folder = copy_of("fit")
    _edit(
        folder,
        "summary.csv",
        lambda s: s.assign(infinite_fraction=s.infinite_fraction.where(s.index != 2, 0.005)),
    )
    _caught(folder, cli, "infinite_fraction")
    _edit(folder, "trajectory.csv", lambda t: t.assign(gap=t.gap * (1 + 1e-10)))
    _caught(folder, cli, "gap = H(p)", table="trajectory.csv")


@pytest.mark.parametrize(
    "column",
    [
        "kl_pq",
        *(
            pytest.param(c, marks=SLOW)
            for c in ("kl_qp", "entropy_p", "cross_entropy_pq", "llr_sigma", "chernoff")
        ),
    ],
)
def test_analytic_columns_just_beyond_their_tolerance(copy_of, cli, column):
    folder = copy_of("coin")
    _edit(folder, "analytic.csv", lambda a: a.assign(**{column: a[column] * (1 + 1e-10)}))
    _caught(folder, cli, column, table="analytic.csv")


def test_streamed_means_moved_by_twice_the_critical_z(copy_of, cli):
    folder = copy_of("streamed")
    report = check_results(folder)
    z = report.z_crit
    for case, est in [("coin", "llr"), ("coin", "plugin_kl"), ("die", "llr"), ("die", "entropy")]:
        target = folder
        s = pd.read_csv(target / "summary.csv")
        m = _rows(s, case, 1000, est)
        original = s.loc[m, "mean"].copy()
        s.loc[m, "mean"] += 2 * z * s.loc[m, "exact_sd"] / math.sqrt(2000)
        s.loc[m, "bias"] = s.loc[m, "mean"] - s.loc[m, "target"]
        s.to_csv(target / "summary.csv", index=False)
        bad = check_results(target)
        assert not bad.passed, (case, est)
        f = bad.failures
        assert ((f.column == "mean") & (f.case == case) & (f.estimator == est)).any(), f
        s.loc[m, "mean"] = original
        s.loc[m, "bias"] = s.loc[m, "mean"] - s.loc[m, "target"]
        s.to_csv(target / "summary.csv", index=False)


def test_replicates_tampered(copy_of, cli):
    folder = copy_of("coin")
    path = folder / "replicates.csv.gz"
    r = pd.read_csv(path)
    r.loc[5, "llr"] *= 1 + 1e-6
    r.to_csv(path, index=False)
    report = check_results(folder)
    assert not report.passed
    assert (report.failures.table == "replicates.csv.gz").any() or (report.failures.column == "mean").any()


# --- the regimes the README cites: checked to a few MCSE, or to rounding ---------

EDGES = """
name: edges
seed: 9
replicates: 4000
save_replicates: false
n: [1000, 100000, 100000000]
estimators: [llr, cross_entropy, entropy, plugin_kl, p_wrong_tilted]
cases:
  - {name: close, p: 0.3, q: 0.300000001}
  - {name: tiny, p: 1.0e-10, q: 2.0e-10}
  - {name: testing, p: 0.7, q: 0.5}
"""


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    report = run_experiment(parse_config(EDGES), tmp_path_factory.mktemp("edges"))
    assert report.check.passed, report.check.table()
    return report.path


@pytest.fixture(scope="module")
def edges_report(edges):
    return check_results(edges)


@pytest.mark.parametrize(
    ("case", "n", "estimator"),
    [
        ("close", 100000000, "llr"),  # KL = 2.4e-18, mcse ≈ 1e-16: exact Binomial test
        pytest.param("tiny", 100000000, "llr", marks=SLOW),  # KL = 3.1e-11, 20 heads expected in R·n draws
        pytest.param("testing", 1000, "p_wrong_tilted", marks=SLOW),  # 2.69e-11 ± 1.2e-12
    ],
)
def test_edge_means_are_resolved_to_a_few_mcse(edges, edges_report, tmp_path, case, n, estimator):
    """A mean six standard errors from the truth (the Bonferroni limit here is about
    4.5) is caught, with no replicates to recompute from: the statistical test itself
    resolves it, at the MCSE's scale whatever the size of the numbers."""
    report = edges_report
    row = report.tests[
        (report.tests.case == case)
        & (report.tests.n == n)
        & (report.tests.estimator == estimator)
        & (report.tests.column == "mean")
        & report.tests.test.isin(["exact test (Binomial)", "z-test (exact sd)"])
    ]
    assert len(row) == 1 and abs(row.z.iloc[0]) < report.z_crit
    folder = tmp_path / "edges"
    shutil.copytree(edges, folder)
    s = pd.read_csv(folder / "summary.csv")
    m = _rows(s, case, n, estimator)
    s.loc[m, "mean"] = s.loc[m, "exact_mean"] + 6 * s.loc[m, "exact_sd"] / math.sqrt(4000)
    s.loc[m, "bias"] = s.loc[m, "mean"] - s.loc[m, "target"]
    s.to_csv(folder / "summary.csv", index=False)
    f = check_results(folder).failures
    assert ((f.case == case) & (f.n == n) & (f.column == "mean")).any(), f


@pytest.mark.parametrize(
    "case", ["close", pytest.param("tiny", marks=SLOW), pytest.param("testing", marks=SLOW)]
)
def test_edge_exact_values_are_checked_to_rounding(edges, tmp_path, case):
    folder = tmp_path / "edges"
    shutil.copytree(edges, folder)
    s = pd.read_csv(folder / "summary.csv")
    estimator = "p_wrong_tilted" if case == "testing" else "llr"
    m = _rows(s, case, 1000, estimator)
    assert 0 < s.loc[m, "exact_mean"].iloc[0] < 1e-10
    s.loc[m, "exact_mean"] *= 1 + 1e-10
    s.to_csv(folder / "summary.csv", index=False)
    f = check_results(folder).failures
    assert "exact_mean" in set(f.column) and set(f.column) <= {"exact_mean", "z"}, f


def test_streamed_quantile_error_and_rows(copy_of, cli):
    folder = copy_of("streamed")
    _edit(
        folder, "summary.csv", lambda s: s.assign(quantile_error=s.quantile_error.where(s.index != 4, -1.0))
    )
    _caught(folder, cli, "quantile_error")
    folder = copy_of("streamed")
    _edit(folder, "summary.csv", lambda s: s.drop(columns=["quantile_error"]))
    _caught(folder, cli, "columns")
    folder = copy_of("streamed")
    _edit(folder, "summary.csv", lambda s: s.iloc[::2])
    _caught(folder, cli, "rows")
