"""Honest rare-event estimates: the tilted replicate's bound, its hit probability, empty rows.

References are independent of the code under test: the Chernoff tilt and
information in 60-digit decimals (:mod:`tests.oracles`), the llr's sign per
head count in decimals, Binomial probabilities by exact enumeration or
scipy.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim import distributions as d
from sim.config import parse_config
from sim.decision import (
    chernoff,
    coin_tilted_hit_probability,
    coin_wrong_bound,
    log_tilted_bound,
    tilted,
    tilted_bound,
)
from sim.runner import run_experiment
from sim.summary import UNSEEN_EMPTY
from tests.helpers import z_crit
from tests.oracles import chernoff_decimal


def _tilted_heads_decimal(pair: d.Pair) -> Decimal:
    """The tilted coin's heads probability P^(1−s) Q^s / Σ, at the decimal s*."""
    _, s = chernoff_decimal(pair)
    with localcontext() as ctx:
        ctx.prec = 60
        hp, hq = Decimal(pair.p.heads), Decimal(pair.q.heads)
        heads = (hp.ln() * (1 - s) + hq.ln() * s).exp()
        tails = ((1 - hp).ln() * (1 - s) + (1 - hq).ln() * s).exp()
        return heads / (heads + tails)


def _weight_decimal(pair: d.Pair, n: int, h: int) -> Decimal:
    """A tilted coin replicate's weight (p/r)^h ((1 − p)/(1 − r))^(n − h), in decimals."""
    r = _tilted_heads_decimal(pair)
    with localcontext() as ctx:
        ctx.prec = 60
        hp = Decimal(pair.p.heads)
        return (h * (hp / r).ln() + (n - h) * ((1 - hp) / (1 - r)).ln()).exp()


def _wrong_decimal(p: float, q: float, n: int, h: int) -> bool:
    """llr_n ≤ 0 at h heads, the sign decided in 60-digit decimals."""
    with localcontext() as ctx:
        ctx.prec = 60
        dp, dq = Decimal(p), Decimal(q)
        return h * (dp / dq).ln() + (n - h) * ((1 - dp) / (1 - dq)).ln() <= 0


# --------------------------------------------------------------------------
# The largest value of one tilted replicate


BOUND_CASES = {
    "tie": ("0.6666666666666666", "0.3333333333333333"),  # boundary count n/2 at even n: llr = 0 there
    "coins": ("0.7", "0.5"),
    "near": ("0.3", "0.300000001"),
    "rare": ("1.0e-10", "2.0e-10"),
}
BOUND_NS = [2, 10, 100, 1000, 10**9]
BOUND_CONFIG = f"""
name: bound
seed: 11
replicates: 2000
n: {BOUND_NS}
estimators: [llr, p_wrong_tilted]
cases:
{"".join(f"  - {{name: {k}, p: {p}, q: {q}}}{chr(10)}" for k, (p, q) in BOUND_CASES.items())}\
  - {{name: die, p: [0.3, 0.25, 0.2, 0.15, 0.1], q: [0.1, 0.15, 0.2, 0.25, 0.3]}}
"""


@pytest.fixture(scope="module")
def bound_run(tmp_path_factory):
    e = parse_config(BOUND_CONFIG)
    report = run_experiment(e, tmp_path_factory.mktemp("bound"))
    reps = pd.read_csv(report.path / "replicates.csv.gz")
    return e, reps


def test_no_tilted_replicate_exceeds_the_bound(bound_run):
    e, reps = bound_run
    for case in e.cases:
        for n in BOUND_NS:
            values = reps[(reps.case == case.name) & (reps.n == n)].p_wrong_tilted
            assert values.max() <= tilted_bound(case.pair, n), (case.name, n)


def test_coin_replicates_at_the_boundary_count_reach_the_bound(bound_run):
    # The largest value is the weight at the boundary count h (w grows towards
    # it), which some of 2000 replicates hit whenever P_r(H = h) ≥ 0.01 (missed
    # with probability 0.99²⁰⁰⁰ = 2e-9).  It is exp(−nC + s·a·(h − t)), and
    # e^(−nC) itself for the tie, whose h = t = n/2 (to ~1e-16·n counts).
    e, reps = bound_run
    reached = 0
    for case in e.cases:
        if case.pair.family != "coin":
            continue
        c_ref = chernoff_decimal(case.pair)[0]
        r = float(_tilted_heads_decimal(case.pair))
        for n in BOUND_NS:
            _, h = coin_wrong_bound(case.pair.p.heads, case.pair.q.heads, n)
            if stats.binom.pmf(h, n, r) < 0.01:
                continue
            values = reps[(reps.case == case.name) & (reps.n == n)].p_wrong_tilted
            bound = tilted_bound(case.pair, n)
            exact = float(_weight_decimal(case.pair, n, h))
            assert values.max() == pytest.approx(exact, rel=1e-12 + 1e-15 * n), (case.name, n)
            assert values.max() <= bound and exact <= bound
            if case.name == "tie":
                allowance = math.log(bound) + n * chernoff(case.pair).information
                assert abs(math.log(values.max()) + n * float(c_ref)) <= allowance, n
            reached += 1
    assert reached >= 12  # every coin at n ≤ 1000, and the rare coin at 10⁹ (H = 1)


def test_the_bound_is_e_to_the_minus_nc_up_to_rounding():
    for p, q in BOUND_CASES.values():
        pair = d.Pair(d.coin(float(p)), d.coin(float(q)))
        c_ref = float(chernoff_decimal(pair)[0])
        for n in BOUND_NS:
            excess = log_tilted_bound(pair, n) + n * c_ref
            assert 0 < excess <= 1e-13 * n + 1e-12, (p, q, n)  # above e^(−nC), by rounding only


# --------------------------------------------------------------------------
# The chance one tilted replicate sees the event


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (0.5, 0.8), (0.31, 0.29), (1e-10, 2e-10)])
@pytest.mark.parametrize("n", [1, 7, 60, 250])
def test_coin_tilted_hit_probability_against_enumeration(p, q, n):
    pair = d.Pair(d.coin(p), d.coin(q))
    r = _tilted_heads_decimal(pair)
    with localcontext() as ctx:
        ctx.prec = 60
        exact = sum(
            (math.comb(n, h) * r**h * (1 - r) ** (n - h) for h in range(n + 1) if _wrong_decimal(p, q, n, h)),
            Decimal(0),
        )
    assert coin_tilted_hit_probability(p, q, n) == pytest.approx(float(exact), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("p", "q"), [(0.7, 0.5), (2 / 3, 1 / 3), (0.5, 0.5000126), (1e-10, 2e-10)])
@pytest.mark.parametrize("n", [10**4, 10**6, 10**9])
def test_coin_tilted_hit_probability_against_scipy(p, q, n):
    pair = d.Pair(d.coin(p), d.coin(q))
    r = float(tilted(pair, chernoff(pair).s)[0])
    side, h = coin_wrong_bound(p, q, n)
    ref = stats.binom.cdf(h, n, r) if side == "le" else stats.binom.sf(h - 1, n, r)
    assert coin_tilted_hit_probability(p, q, n) == pytest.approx(float(ref), rel=1e-9)


def test_hit_probability_of_the_rare_coin_is_what_empties_its_rows():
    # H ≥ 1 under r ≈ 1.4427e-10: one tilted replicate in 70,000 sees the event at n = 10⁵
    assert coin_tilted_hit_probability(1e-10, 2e-10, 10**5) == pytest.approx(1.4427e-5, rel=1e-4)
    assert coin_tilted_hit_probability(0.3, 0.3, 10) == 1.0  # p = q: every sample ties
    assert coin_tilted_hit_probability(0.0, 0.5, 10) == 0.0  # all tails: llr = log 2 > 0


# --------------------------------------------------------------------------
# Rows of replicates that never saw the event are left empty


# The rare coin's event has P_r ≈ 1.4e-10·n: some replicate of 2000 sees it by
# n = 1000 with probability 3e-4 (below the suite's α = 1e-3).
RARE_CONFIG = """
name: rare
seed: 5
replicates: 2000
n: [10, 100, 1000]
estimators: [llr, p_wrong, p_wrong_tilted]
cases:
  - {name: rare, p: 1.0e-10, q: 2.0e-10}
  - {name: coins, p: 0.7, q: 0.5}
"""
RARE_NOTE = (
    "case rare: p_wrong_tilted saw the event in none of 2,000 replicates at n = 10, 100, 1000; left empty"
)


@pytest.fixture(scope="module")
def rare_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("rare")
    kept = run_experiment(parse_config(RARE_CONFIG), out / "kept")
    streamed = run_experiment(parse_config(RARE_CONFIG + "save_replicates: false\n"), out / "streamed")
    return kept, streamed


@pytest.mark.parametrize("kind", ["kept", "streamed"])
def test_unseen_tilted_rows_are_empty_not_zero(rare_runs, kind):
    report = rare_runs[0] if kind == "kept" else rare_runs[1]
    s = report.summary[report.summary.estimator == "p_wrong_tilted"].set_index(["case", "n"])
    rare = s.loc["rare"]
    assert rare[list(UNSEEN_EMPTY)].isna().all().all()
    assert (rare[["q05", "q50", "q95"]] == 0.0).all().all()  # 0 is a true quantile of the sample
    assert (rare.exact_mean > 0).all() and (rare.exact_sd > 0).all()  # the truth, 1e-9 to 1e-7, stays
    coins = s.loc["coins"]
    assert coins[list(UNSEEN_EMPTY)].notna().all().all()
    assert (coins["mean"] > 0).all()
    # the file holds what the frame holds: empty cells, not zeros
    table = pd.read_csv(report.path / "summary.csv")
    rows = table[(table.case == "rare") & (table.estimator == "p_wrong_tilted")]
    assert rows[list(UNSEEN_EMPTY)].isna().all().all()
    assert report.notes == [RARE_NOTE]
    assert json.loads((report.path / "run.json").read_text())["notes"] == [RARE_NOTE]
    assert report.check.passed, report.check.table()


def test_replicates_keep_their_true_zeros(rare_runs):
    kept, _ = rare_runs
    reps = pd.read_csv(kept.path / "replicates.csv.gz")
    assert (reps[reps.case == "rare"].p_wrong_tilted == 0.0).all()


def test_kept_and_streamed_summaries_agree_on_empty_rows(rare_runs):
    kept, streamed = rare_runs
    cols = ["case", "n", "estimator", *UNSEEN_EMPTY]
    a, b = kept.summary[cols].reset_index(drop=True), streamed.summary[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a.isna(), b.isna())


def test_run_json_notes_are_an_empty_list_when_every_row_saw_the_event(tmp_path):
    report = run_experiment(
        parse_config(RARE_CONFIG.replace("  - {name: rare, p: 1.0e-10, q: 2.0e-10}\n", "")), tmp_path
    )
    assert report.notes == []
    assert json.loads((report.path / "run.json").read_text())["notes"] == []


def test_testing_figure_draws_with_empty_rows(rare_runs):
    from sim import figures

    for report in rare_runs:
        tables = figures.load_tables(report.path)
        fig = figures.testing_figure(
            tables["summary"], tables["analytic"], replicates=tables["replicates"], config=tables["config"]
        )
        axes = [ax for ax in fig.axes if ax.get_visible()]
        labels = axes[0].get_legend_handles_labels()[1]  # the rare case: no tilted points, the exact curve
        assert "tilted (importance sampling)" not in labels and "exact (Binomial tail)" in labels
        assert "tilted (importance sampling)" in axes[2].get_legend_handles_labels()[1]


def test_sim_run_prints_the_note(cli, write_config, tmp_path):
    path = write_config(RARE_CONFIG)
    result = cli("run", str(path), "--out", str(tmp_path / "out"), "--no-figures", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"  note: {RARE_NOTE}\n" in result.output


def test_a_row_that_saw_the_event_once_is_not_emptied():
    from sim.config import parse_config as parse
    from sim.summary import analytic_row, summarize_case

    e = parse(RARE_CONFIG)
    case = e.cases[0]
    values = np.zeros((50, 3, 3))
    values[7, 2, 2] = 1e-250  # one replicate at n = 1000 saw the event
    frame = summarize_case(
        values,
        case=case,
        checkpoints=e.checkpoints,
        estimators=e.estimators,
        analytic=analytic_row(case, "nats"),
    )
    tilted_rows = frame[frame.estimator == "p_wrong_tilted"].set_index("n")
    assert tilted_rows.loc[1000, "mean"] > 0 and tilted_rows.loc[1000, "sd"] > 0
    assert tilted_rows.loc[[10, 100], "mean"].isna().all()
    plain = frame[frame.estimator == "p_wrong"]
    assert (plain["mean"] == 0).all()  # the plain indicator's zeros are estimates, with their sd


TINY_CONFIG = """
name: tiny
seed: 3
replicates: 400
n: [1000, 20000, 40000]
estimators: [llr, p_wrong_tilted]
cases:
  - {name: coins, p: 0.7, q: 0.5}
"""


def test_tiny_tilted_values_keep_their_spread_and_underflow_is_not_unseen(tmp_path):
    # At n = 20,000 the replicates are ~1e-187: their squares underflow, which
    # made sd and mcse 0.  At n = 40,000 even e^(−nC) = 1e-371 underflows:
    # every replicate, the exact mean and sd are 0, correctly rounded, and
    # the row is not "unseen" (about half the replicates saw the event).
    report = run_experiment(parse_config(TINY_CONFIG), tmp_path)
    s = report.summary[report.summary.estimator == "p_wrong_tilted"].set_index("n")
    reps = pd.read_csv(report.path / "replicates.csv.gz")
    for n, scale in ((1000, 1.0), (20000, 2.0**600)):
        v = reps[reps.n == n].p_wrong_tilted.to_numpy()
        sd = float(np.std(v * scale, ddof=1)) / scale  # by hand, out of underflow's way
        row = s.loc[n]
        assert sd > 0 and row.sd == pytest.approx(sd, rel=1e-12)
        assert row.mcse == pytest.approx(sd / math.sqrt(400), rel=1e-12)
        assert abs(row.z) <= z_crit(2)
    row = s.loc[40000]
    assert row["mean"] == 0.0 and row.sd == 0.0 and row.exact_mean == 0.0 and row.exact_sd == 0.0
    assert report.notes == []
    assert report.check.passed, report.check.table()


def test_kept_and_streamed_spreads_of_tiny_values_agree(tmp_path):
    a = run_experiment(parse_config(TINY_CONFIG), tmp_path / "a").summary
    b = run_experiment(parse_config(TINY_CONFIG + "save_replicates: false\n"), tmp_path / "b").summary
    for col in ("mean", "sd", "mcse", "rmse"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-12, atol=0.0)


def test_the_readme_shows_the_note_as_printed():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"  note: {RARE_NOTE}\n" in readme
