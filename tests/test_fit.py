"""The fit experiment: minimising cross-entropy minimises KL, checked against independent references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from sim import figures, fitting
from sim.check import check_results
from sim.config import parse_config
from sim.errors import ConfigError
from sim.runner import run_experiment
from tests.helpers import z_crit

CONFIG = """
name: fit-test
kind: fit
seed: 3
replicates: 400
n: [10, 100, 1000, 100000]
smoothing: 0.5
inputs:
  probs: [0.3, 0.4, 0.3]
  features: [[-1.0], [0.0], [1.0]]
truth:
  weights: [[0.3, 1.6], [1.0, 0.0], [0.0, 0.0]]
trajectory: {replicate: 2, n: 1000}
cases:
  - {name: saturated, model: saturated}
  - {name: linear, model: linear}
  - {name: constant, model: constant}
  - {name: ordinal, model: ordinal}
"""


@pytest.fixture(scope="module")
def experiment():
    return parse_config(CONFIG)


@pytest.fixture(scope="module")
def report(experiment, tmp_path_factory):
    return run_experiment(experiment, tmp_path_factory.mktemp("fit"))


def _counts(truth, n, rows, seed):
    rng = np.random.default_rng(seed)
    flat = rng.multinomial(n, truth.joint.ravel(), size=rows)
    return flat.reshape(rows, truth.inputs, truth.classes)


def test_newton_reaches_the_closed_form_fits(experiment):
    truth = experiment.truth
    counts = _counts(truth, 200, 50, seed=1)
    a = 0.5
    # Newton stops at a squared decrement of 1e-26: parameters within ~1e-13/√λ,
    # so probabilities agree to ~1e-11 relative, and so does the population KL,
    # which is not stationary at the fit.
    sat = fitting.fit(counts, fitting.design("saturated", truth), smoothing=a)
    freq = (counts + a) / (counts + a).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(np.exp(sat.log_q), freq, rtol=1e-10)
    np.testing.assert_allclose(truth.kl(sat.log_q), truth.kl(np.log(freq)), rtol=1e-10)
    const = fitting.fit(counts, fitting.design("constant", truth), smoothing=a)
    marginal = (counts.sum(axis=1) + truth.inputs * a) / (200 + truth.inputs * truth.classes * a)
    np.testing.assert_allclose(
        np.exp(const.log_q), np.broadcast_to(marginal[:, None, :], counts.shape), rtol=1e-10
    )
    assert sat.converged.all() and const.converged.all()


def test_linear_fit_matches_scipy_minimize(experiment):
    truth = experiment.truth
    counts = _counts(truth, 300, 3, seed=2)
    a = fitting.design("linear", truth)
    ours = fitting.fit(counts, a)
    for r in range(3):

        def loss(theta, r=r):
            log_q = fitting.log_softmax(np.einsum("xkd,d->xk", a, theta))
            return -np.sum(counts[r] * log_q) / counts[r].sum()

        ref = optimize.minimize(loss, np.zeros(a.shape[2]), method="BFGS", options={"gtol": 1e-12})
        assert loss(ours.theta[r]) <= ref.fun + 1e-12
        assert loss(ours.theta[r]) == pytest.approx(ref.fun, rel=1e-10)


def test_floors_against_independent_references(experiment):
    truth = experiment.truth
    # constant family: the floor is the mutual information I(X; Y)
    marginal = truth.joint.sum(axis=0)
    mi = sum(truth.input_probs[x] * stats.entropy(truth.table[x], marginal) for x in range(truth.inputs))
    assert fitting.floor(truth, "constant") == pytest.approx(mi, rel=1e-12)
    # ordinal family: one-dimensional minimisation of KL(p‖q_θ) by scipy

    def kl(theta):
        q = np.exp(fitting.log_softmax(theta * np.arange(truth.classes)))
        return sum(truth.input_probs[x] * stats.entropy(truth.table[x], q) for x in range(truth.inputs))

    ref = optimize.minimize_scalar(kl, bracket=(-5, 5), tol=1e-14)
    assert fitting.floor(truth, "ordinal") == pytest.approx(ref.fun, rel=1e-9)
    assert fitting.floor(truth, "saturated") == 0.0
    assert abs(fitting.floor(truth, "linear")) < 1e-15  # the truth is in the family


def test_exact_means_by_enumeration():
    # Two inputs, two classes: enumerate every outcome of the four cells.
    text = CONFIG.replace(
        "inputs:\n  probs: [0.3, 0.4, 0.3]\n  features: [[-1.0], [0.0], [1.0]]\ntruth:\n  weights: [[0.3, 1.6], [1.0, 0.0], [0.0, 0.0]]",
        "inputs:\n  probs: [0.35, 0.65]\ntruth:\n  table: [[0.8, 0.2], [0.3, 0.7]]",
    ).replace("trajectory: {replicate: 2, n: 1000}", "")
    truth = parse_config(text).truth
    alpha, n = 0.5, 6
    outcomes = np.array([c for c in itertools.product(range(n + 1), repeat=4) if sum(c) == n])
    pmf = stats.multinomial.pmf(outcomes, n, truth.joint.ravel())
    counts = outcomes.reshape(-1, 2, 2).astype(float)
    for family in ("saturated", "constant"):
        fits = fitting.fit(counts, fitting.design(family, truth), smoothing=alpha)
        kl = truth.kl(fits.log_q)
        train = -np.sum(counts * fits.log_q, axis=(1, 2)) / n
        test = truth.cross_entropy(fits.log_q)
        exact = fitting.exact_means(truth, family, alpha, n)
        assert exact.kl_fitted == pytest.approx(np.sum(pmf * kl), rel=1e-10)
        assert exact.train_cross_entropy == pytest.approx(np.sum(pmf * train), rel=1e-10)
        assert exact.test_cross_entropy == pytest.approx(np.sum(pmf * test), rel=1e-10)
    assert math.isnan(fitting.exact_means(truth, "linear", alpha, n).kl_fitted)
    assert math.isnan(fitting.exact_means(truth, "saturated", 0.0, n).kl_fitted)


def test_trajectory_identities(report):
    t = pd.read_csv(report.path / "trajectory.csv")
    assert set(t.case) == {"saturated", "linear", "constant", "ordinal"}
    assert set(t.replicate) == {2} and set(t.n) == {1000}
    # the gap H(p, q_θ) − KL(p‖q_θ) is H(p) at every step
    np.testing.assert_allclose(t.gap, t.entropy, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        t.empirical_cross_entropy, t.empirical_kl + t.empirical_entropy, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        t.grad_norm_empirical_cross_entropy, t.grad_norm_empirical_kl, rtol=1e-10, atol=1e-15
    )
    for _, path in t.groupby("case"):
        assert path.empirical_cross_entropy.is_monotonic_decreasing
        assert path.grad_norm_empirical_cross_entropy.iloc[-1] < 1e-9


def test_well_specified_kl_falls_like_d_over_2n(report, experiment):
    # E[KL] = d/(2N) + O(N^-2) for a well-specified family; at N = 1e5 the
    # remainder is ~1e-5 relative, so the test is the Monte Carlo one:
    # |mean − d/(2N)| ≤ z·mcse, plus 1% for the asymptotic remainder.
    s, a = report.summary, report.analytic.set_index("case")
    for case in ("saturated", "linear"):
        row = s[(s.case == case) & (s.estimator == "kl_fitted") & (s.n == 100000)].iloc[0]
        d = a.loc[case, "parameters"]
        expected = d / (2 * 100000)
        assert abs(row["mean"] - expected) <= z_crit(2) * row.mcse + 0.01 * expected


def test_misspecified_kl_never_below_the_floor_and_reaches_it(report):
    reps = pd.read_csv(report.path / "replicates.csv.gz")
    a = report.analytic.set_index("case")
    for case in ("constant", "ordinal"):
        floor = a.loc[case, "kl_floor"]
        sub = reps[reps.case == case]
        assert (sub.kl_fitted >= floor - 1e-12).all()  # the floor is the family's minimum
        big = sub[sub.n == 100000].kl_fitted
        assert big.mean() - floor < 5e-5  # ~ d'/(2N) with d' ≤ 2 here
    s = report.summary
    gap = (
        s[(s.estimator == "test_cross_entropy")].set_index(["case", "n"])["mean"]
        - s[(s.estimator == "train_cross_entropy")].set_index(["case", "n"])["mean"]
    )
    assert (gap.xs(100000, level="n").abs() < 1e-3).all()  # the train–test gap closes


def test_run_agrees_with_theory_and_check_catches_an_edit(report, tmp_path):
    assert report.check.passed, report.check.table()
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(report.path, copy)
    s = pd.read_csv(copy / "summary.csv")
    i = s.index[(s.case == "saturated") & (s.estimator == "kl_fitted") & (s.n == 100)][0]
    s.loc[i, "mean"] += 8 * s.loc[i, "mcse"]
    s.to_csv(copy / "summary.csv", index=False)
    failures = check_results(copy).failures
    assert (
        (failures[["case", "n", "estimator", "column"]] == ["saturated", 100, "kl_fitted", "mean"])
        .all(axis=1)
        .any()
    )
    t = pd.read_csv(copy / "trajectory.csv")
    t.loc[0, "gap"] += 1e-6
    t.to_csv(copy / "trajectory.csv", index=False)
    assert "gap = H(p)" in set(check_results(copy).failures.column)


@pytest.mark.slow
def test_unseen_classes_without_smoothing_give_infinite_kl_at_the_exact_rate(tmp_path):
    # One input: a categorical p = (0.6, 0.3, 0.1) and N = 5.  Without
    # smoothing the fit is at infinity exactly when a class is unseen.
    text = """
name: unseen
kind: fit
seed: 5
replicates: 2000
n: [5, 200]
truth: {table: [[0.6, 0.3, 0.1]]}
cases: [{name: saturated, model: saturated}]
"""
    rep = run_experiment(parse_config(text), tmp_path)
    s = rep.summary[rep.summary.estimator == "kl_fitted"].set_index("n")
    outcomes = np.array([c for c in itertools.product(range(6), repeat=3) if sum(c) == 5])
    pmf = stats.multinomial.pmf(outcomes, 5, [0.6, 0.3, 0.1])
    p_unseen = float(np.sum(pmf[(outcomes == 0).any(axis=1)]))
    se = math.sqrt(p_unseen * (1 - p_unseen) / 2000)
    assert abs(s.loc[5, "infinite_fraction"] - p_unseen) <= z_crit() * se
    assert s.loc[5, "mean"] == math.inf
    # at N = 200 a class is unseen with probability < 1e-9
    assert s.loc[200, "infinite_fraction"] == 0.0 and math.isfinite(s.loc[200, "mean"])


@pytest.mark.slow
def test_fit_figures_and_plot(report, cli):
    tables = figures.load_tables(report.path)
    figs = figures.build_figures(tables)
    assert list(figs) == list(figures.FIT_KINDS)
    for fig in figs.values():
        assert sum(ax.get_visible() for ax in fig.axes) == 4
    r = cli("plot", str(report.path), "--format", "svg")
    assert r.exit_code == 0
    assert {p.name for p in (report.path / "figures").iterdir()} == {f"{k}.svg" for k in figures.FIT_KINDS}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("model: ordinal", "model: quadratic"), "cases[3].model: must be one of"),
        (
            ("trajectory: {replicate: 2, n: 1000}", "trajectory: {replicate: 2, n: 999}"),
            "trajectory.n: 999 is not one",
        ),
        (
            ("trajectory: {replicate: 2, n: 1000}", "trajectory: {replicate: 400}"),
            "trajectory.replicate: must be between",
        ),
        (("probs: [0.3, 0.4, 0.3]", "probs: [0.3, 0.4]"), "inputs.probs: must have 3 entries"),
        (
            ("probs: [0.3, 0.4, 0.3]", "probs: [0.3, 0.7, 0.0]"),
            "inputs.probs: input probabilities must be positive",
        ),
        (("[[-1.0], [0.0], [1.0]]", "[[-1.0], [0.0]]"), "inputs.probs: must have 2 entries"),
        (("[0.3, 1.6], [1.0, 0.0]", "[0.3], [1.0, 0.0]"), "truth.weights[0]: must have 2 entries"),
        (("smoothing: 0.5", "smoothing: -1"), "smoothing: must be in [0"),
        (("smoothing: 0.5", "smoothing: 0.5\np: 0.5"), "p: unknown key"),
        (
            ("kind: fit", "kind: fitt"),
            "kind: must be one of convergence, fit, got 'fitt'; did you mean 'fit'?",
        ),
    ],
)
def test_bad_fit_configs(change, message):
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.replace(*change), "fit.yaml")
    assert any(message in str(i) for i in info.value.issues), info.value.issues


def test_save_replicates_false_does_not_apply_to_a_fit_experiment_and_says_so():
    """``--set save_replicates=false`` given to every config of a run must not reject a fit config."""
    e = parse_config(CONFIG, "fit.yaml", ["save_replicates=false"])
    assert e.notes == (
        "save_replicates: false does not apply to a fit experiment: its replicates "
        "(one value per model and fit) are always kept",
    )
    assert parse_config(CONFIG, "fit.yaml", ["save_replicates=true"]).notes == ()
    with pytest.raises(ConfigError, match="save_replicates: must be true or false"):
        parse_config(CONFIG, "fit.yaml", ["save_replicates=3"])


def test_fit_config_requires_truth_and_table_rows_that_sum_to_one():
    with pytest.raises(ConfigError, match="missing key 'truth'"):
        parse_config("name: x\nkind: fit\nn: [10]\ncases: [{name: s, model: saturated}]\n")
    with pytest.raises(ConfigError, match=r"truth.table\[1\]: probabilities sum to 0.9"):
        parse_config(
            "name: x\nkind: fit\nn: [10]\ntruth: {table: [[0.5, 0.5], [0.5, 0.4]]}\ncases: [{name: s, model: saturated}]\n"
        )


def test_fits_that_reach_the_rounding_floor_converge():
    # A near-deterministic truth: the optimum sits where the objective's rounding
    # hides any further decrease; Newton must stop there, not run out of steps.
    text = (
        "name: floor\nkind: fit\nn: [2000]\nsmoothing: 0.5\ninputs: {features: [[-0.021], [-2.2], [-0.692]]}\n"
        "truth: {table: [[1.0, 0.0], [1.0, 0.0], [0.9999983902049346, 1.609795065415659e-06]]}\n"
        "cases: [{name: c, model: constant}]\n"
    )
    truth = parse_config(text).truth
    counts = np.array([[[667, 0], [668, 0], [665, 0]]])
    for family in fitting.FAMILIES:
        result = fitting.fit(counts, fitting.design(family, truth), smoothing=0.5)
        assert result.converged.all(), family
    marginal = (counts.sum(axis=1) + 3 * 0.5) / (2000 + 3 * 2 * 0.5)
    const = fitting.fit(counts, fitting.design("constant", truth), smoothing=0.5)
    np.testing.assert_allclose(np.exp(const.log_q[0, 0]), marginal[0], rtol=1e-10)


def _tasks_of_64(monkeypatch):
    import sim.tasks

    monkeypatch.setattr(sim.tasks, "MAX_BLOCK", 64)  # 400 replicates → 7 blocks → 2 tasks


@pytest.fixture(scope="module")
def serial_of_64(tmp_path_factory):
    """CONFIG in blocks of 64, run serially: the bytes two workers and a resumed run must give."""
    from sim.runner import Execution

    with pytest.MonkeyPatch.context() as m:
        _tasks_of_64(m)
        out = tmp_path_factory.mktemp("serial64")
        return run_experiment(parse_config(CONFIG), out, execution=Execution(workers=1)).path


@pytest.mark.slow
def test_fits_on_two_workers_write_identical_bytes(tmp_path, monkeypatch, serial_of_64):
    from sim.pipelines.fit import plan
    from sim.runner import Execution

    _tasks_of_64(monkeypatch)
    assert len(plan(parse_config(CONFIG))) == 2
    one = serial_of_64
    two = run_experiment(parse_config(CONFIG), tmp_path / "2", execution=Execution(workers=2)).path
    for name in ("summary.csv", "replicates.csv.gz", "trajectory.csv", "analytic.csv"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


@pytest.mark.slow
def test_an_interrupted_fit_resumes_to_identical_bytes(tmp_path, monkeypatch, serial_of_64):
    import sim.pipelines.fit as fx
    from sim.pipelines import FitPipeline
    from sim.runner import Execution

    _tasks_of_64(monkeypatch)
    reference = serial_of_64
    real, calls = fx.fit_task, []

    def interrupted(experiment, task):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(experiment, task)

    monkeypatch.setattr(FitPipeline, "run_task", staticmethod(interrupted))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(parse_config(CONFIG), tmp_path / "out")
    assert len(list((tmp_path / "out" / ".fit-test.resume").glob("task-*.npz"))) == 1
    calls.clear()
    monkeypatch.setattr(FitPipeline, "run_task", staticmethod(lambda e, t: (calls.append(t), real(e, t))[1]))
    resumed = run_experiment(parse_config(CONFIG), tmp_path / "out", execution=Execution(resume=True)).path
    assert len(calls) == 1  # only the unfinished task ran
    for name in ("summary.csv", "replicates.csv.gz", "trajectory.csv"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
