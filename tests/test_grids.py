"""Grids of cases (``grid:``): expansion, names, errors, the resolved config, the sweep figure."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from sim import figures
from sim.config import grids, load_config, parse_config
from sim.errors import ConfigError
from sim.runner import Execution, run_experiment

COINS = """
name: coins
seed: 3
replicates: 40
n: [1, 10, 100]
cases:
  - {name: written, p: 0.5, q: 0.9}
grid:
  p: [0.5, 0.7]
  q: [0.55, 0.6, 0.8]
"""


def _case_pq(experiment) -> list[tuple[str, object, object]]:
    return [(c.name, c.p, c.q) for c in experiment.cases]


def test_a_grid_expands_to_exactly_the_product_of_its_lists_after_the_written_cases():
    e = parse_config(COINS)
    got = _case_pq(e)
    assert got[0] == ("written", 0.5, 0.9)
    want = [(f"p{p}_q{q}", p, q) for p, q in itertools.product([0.5, 0.7], [0.55, 0.6, 0.8])]
    assert got[1:] == want
    assert all(c.from_grid for c in e.cases[1:]) and not e.cases[0].from_grid


def test_generators_families_and_same_categories():
    e = parse_config(
        """
        name: g
        n: [10]
        grid:
          - name: zipf
            p: {zipf: {k: [100, 1000], s: [0.8, 1.3]}}
            q: {uniform: same}
          - p: {normal: {mean: [0, 1], sd: 1}}
            q: {normal: {mean: 0.5, sd: [1, 2]}}
          - p: {uniform: [4, 8]}
            q: {zipf: {k: same, s: 1}}
        """.replace("\n        ", "\n")
    )
    names = [c.name for c in e.cases]
    assert names == [
        "zipf_k100_s0.8", "zipf_k100_s1.3", "zipf_k1000_s0.8", "zipf_k1000_s1.3",
        "mean0_sd1", "mean0_sd2", "mean1_sd1", "mean1_sd2",
        "uniform4", "uniform8",
    ]  # fmt: skip
    by_name = {c.name: c for c in e.cases}
    assert by_name["zipf_k1000_s1.3"].p == {"zipf": {"k": 1000, "s": 1.3}}
    assert by_name["zipf_k1000_s1.3"].q == {"uniform": 1000}  # same: p's 1,000 categories
    assert by_name["zipf_k1000_s1.3"].pair.p.k == 1000
    assert by_name["uniform8"].q == {"zipf": {"k": 8, "s": 1.0}}
    assert by_name["mean1_sd2"].pair.kl_pq == pytest.approx(
        np.log(2.0) + (1.0 + 0.25) / 8.0 - 0.5, rel=1e-14, abs=0.0
    )  # KL(N(1, 1)‖N(0.5, 4)) = log(σq/σp) + (σp² + Δ²)/(2σq²) − ½


def test_whole_distributions_and_chains_sweep_at_p_or_q():
    e = parse_config(
        """
name: whole
n: [10]
grid:
  - name: dice
    p: [[0.2, 0.8], [0.5, 0.5]]
    q: [[0.4, 0.6], {uniform: 2}]
  - name: chains
    p:
      - {markov: {transition: [[0.9, 0.1], [0.1, 0.9]]}}
      - {markov: {transition: [[0.5, 0.5], [0.5, 0.5]]}}
    q: [0.3, 0.7]
"""
    )
    names = [c.name for c in e.cases]
    assert names[:4] == ["dice_p1_q1", "dice_p1_q2", "dice_p2_q1", "dice_p2_q2"]
    assert names[4:] == ["chains_p1_q0.3", "chains_p1_q0.7", "chains_p2_q0.3", "chains_p2_q0.7"]
    assert e.cases[1].q == {"uniform": 2}
    assert e.cases[6].p["markov"]["transition"] == [[0.5, 0.5], [0.5, 0.5]]  # a matrix is no sweep
    assert e.cases[6].pair.kl_pq == pytest.approx(
        0.5 * np.log(0.5 / 0.3) + 0.5 * np.log(0.5 / 0.7), rel=1e-14, abs=0.0
    )


@pytest.mark.parametrize(
    ("grid", "where", "message"),
    [
        ("{p: [0.5, 0.5], q: 0.6}", "grid.p[1]:", "repeats 0.5"),
        ("{p: 0.5, q: []}", "grid.q:", "lists no values"),
        ("{p: 0.5, q: 0.6}", "grid:", "sweeps nothing"),
        ("{p: 0.5, q: [0.6], colour: red}", "grid.colour:", "unknown key"),
        ("{q: [0.6]}", "grid:", "missing key 'p'"),
        ("[]", "grid:", "must be a grid"),
        ("{name: 'no way', p: 0.5, q: [0.6]}", "grid.name:", "not a usable name"),
        ("{p: 0.5, q: [0.6, 1.5, 0.7]}", "grid.q[1]:", "in grid case 'q1.5': must be in [0, 1]"),
        (
            "{p: {zipf: {k: [10, 20], s: 1}}, q: {uniform: 10}}",
            "grid.q:",
            "'k20': q has 10 categories but p has 20",
        ),
        ("{p: {uniform: [0.5]}, q: 0.6}", "grid.p.uniform[0]:", "whole number"),
        ("{p: [0.5, 0.9], q: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}", "grid:", "'p0.9_q0.9'"),
    ],
)
def test_grid_errors_name_the_line_and_the_value(write_config, grid, where, message):
    body = f"name: bad\nn: [10]\ncases:\n  - {{name: p0.9_q0.9, p: 0.9, q: 0.8}}\ngrid: {grid}\n"
    path = write_config(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}:5: {where}" in text, text
    assert message in text


def test_an_error_in_a_swept_value_is_reported_once_not_per_case(write_config):
    path = write_config("name: bad\nn: [10]\ngrid:\n  p: [0.3, 0.5, 0.7]\n  q:\n    - 0.6\n    - -2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.issues) == 1
    assert str(info.value.issues[0]).startswith(f"{path}:7: grid.q[1]: in grid case 'p0.3_q-2'")


def test_too_large_a_grid_is_refused_before_it_is_built(write_config):
    values = ", ".join(str(round(0.01 + 0.0001 * i, 4)) for i in range(101))
    path = write_config(f"name: big\nn: [10]\ngrid:\n  p: [{values}]\n  q: [{values}]\n")
    with pytest.raises(ConfigError, match="expands to 10,201 cases, more than 10,000"):
        load_config(path)


def test_the_cli_refuses_a_bad_grid_with_exit_2_and_writes_nothing(cli, write_config, tmp_path):
    path = write_config("name: bad\nn: [10]\ngrid: {p: 0.5, q: [0.6, 0.6]}\n")
    r = cli("run", str(path), "--out", str(tmp_path / "out"))
    assert r.exit_code == 2
    assert "grid.q[1]: repeats 0.6" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grid")
    return run_experiment(parse_config(COINS), out, execution=Execution(workers=1)).path


@pytest.mark.slow
def test_the_resolved_config_keeps_the_grid_and_reruns_to_the_same_bytes(grid_run, tmp_path):
    resolved = yaml.safe_load((grid_run / "config.yaml").read_text(encoding="utf-8"))
    assert resolved["grid"] == {"p": [0.5, 0.7], "q": [0.55, 0.6, 0.8]}
    assert [c["name"] for c in resolved["cases"]] == ["written"]
    again = run_experiment(
        load_config(grid_run / "config.yaml"), tmp_path, execution=Execution(workers=1)
    ).path
    for name in ("config.yaml", "analytic.csv", "summary.csv"):
        assert (again / name).read_bytes() == (grid_run / name).read_bytes(), name
    analytic = pd.read_csv(grid_run / "analytic.csv")
    assert list(analytic.case) == [c.name for c in parse_config(COINS).cases]


@pytest.mark.slow
def test_the_sweep_figure_draws_each_grid_case_mean_at_its_value(grid_run):
    tables = figures.load_tables(grid_run)
    assert "sweep" in figures.figure_kinds(tables)
    summary = tables["summary"]
    fig, ax = plt.subplots()
    try:
        sweep = figures.sweep.sweep_of(tables["config"])
        assert (sweep.x, sweep.hue) == ("q", ["p"])  # q has the most values
        assert figures.plot_sweep(summary, sweep, n=100, estimator="llr", ax=ax) is ax
        drawn = {}
        for container in ax.containers:  # one errorbar per line: its markers' x and y
            label = container.get_label()
            if label.startswith("p = "):
                xs, ys = container.lines[0].get_data()
                drawn[float(label[4:])] = dict(zip(np.asarray(xs), np.asarray(ys), strict=True))
        rows = summary[(summary.n == 100) & (summary.estimator == "llr")].set_index("case")["mean"]
        want = {
            p: {q: rows[f"p{p}_q{q}"] for q in (0.55, 0.6, 0.8)} for p in (0.5, 0.7)
        }  # the written case is no part of the sweep
        assert drawn == want
    finally:
        plt.close(fig)
    fig = figures.sweep_figure(summary, tables["analytic"], config=tables["config"])
    assert [a.get_title() for a in fig.axes if a.get_visible()] == ["n = 1", "n = 10", "n = 100"]


@pytest.mark.slow
def test_no_sweep_figure_without_a_numeric_swept_parameter(tmp_path):
    e = parse_config(
        "name: v\nreplicates: 20\nn: [10]\ngrid:\n  p: [[0.2, 0.8], [0.5, 0.5]]\n  q: [[0.4, 0.6], [0.3, 0.7]]\n"
    )
    tables = figures.load_tables(run_experiment(e, tmp_path, execution=Execution(workers=1)).path)
    assert "sweep" not in figures.figure_kinds(tables)  # whole distributions are no axis
    assert [s.label for s in grids.sweeps(tables["config"]["grid"])] == ["p", "q"]


@pytest.mark.parametrize(
    ("sweep", "where", "message"),
    [
        ("{x: k}", "sweep.x", "must be a numeric swept parameter of the grid (p, q)"),
        ("{n: [10, 20]}", "sweep.n[1]", "20 is not one of the experiment's sample sizes"),
        ("{n: []}", "sweep.n", "must list 1 to 4"),
        ("{y: median}", "sweep.y", "must be one of mean, bias, rmse"),
        ("{estimator: k3}", "sweep.estimator", "must be one of the experiment's estimators"),
        ("{colour: red}", "sweep.colour", "unknown key"),
    ],
)
def test_sweep_options_are_validated(write_config, sweep, where, message):
    path = write_config(COINS.lstrip("\n") + f"sweep: {sweep}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{where}: {message}" in str(info.value)


def test_a_sweep_without_a_grid_is_an_error():
    with pytest.raises(ConfigError, match="sweep applies to a grid of cases"):
        parse_config("name: s\nn: [10]\ncases:\n  - {name: c, p: 0.5, q: 0.6}\nsweep: {y: bias}\n")


@pytest.mark.slow
def test_the_sweep_figure_draws_what_the_config_asks(grid_run, tmp_path):
    config = dict(figures.load_tables(grid_run)["config"])
    summary = pd.read_csv(grid_run / "summary.csv")
    config["sweep"] = {"x": "p", "n": [10], "estimator": "llr", "y": "rmse"}
    fig = figures.sweep_figure(summary, pd.read_csv(grid_run / "analytic.csv"), config=config)
    try:
        (ax,) = [a for a in fig.axes if a.get_visible()]
        assert (
            ax.get_title() == "n = 10"
            and ax.get_xlabel() == "p"
            and ax.get_ylabel().startswith("RMSE of llr")
        )
        rows = summary[(summary.n == 10) & (summary.estimator == "llr")].set_index("case")
        exact = np.sqrt((rows.exact_mean - rows.target) ** 2 + rows.exact_sd**2)
        lines = [line.get_ydata() for line in ax.get_lines() if len(line.get_xdata()) == 2]
        for q in (0.55, 0.6, 0.8):  # one line per q, through p = 0.5 and 0.7: the exact RMSE at n = 10
            want = [exact[f"p{p}_q{q}"] for p in (0.5, 0.7)]
            assert any(np.allclose(y, want, rtol=1e-12, atol=0.0) for y in lines), q
    finally:
        plt.close(fig)


def test_numbers_written_as_text_are_numbers_in_a_grid():
    """YAML 1.1 reads 1e2 as text: in a grid it is the number, in names, `same` and repeats."""
    e = parse_config("name: t\nn: [10]\ngrid:\n  p: {zipf: {k: [1e2, 1e3], s: 1}}\n  q: {uniform: same}\n")
    assert [c.name for c in e.cases] == ["k100", "k1000"] and e.cases[1].q == {"uniform": 1000}
    with pytest.raises(ConfigError, match=r"grid.p\[1\]: repeats 0.5"):
        parse_config("name: t\nn: [10]\ngrid: {p: [0.5, 5e-1], q: 0.6}\n")


def test_a_list_of_mixed_values_is_named_by_position():
    e = parse_config("name: t\nn: [10]\ngrid:\n  p: [[0.5, 0.5], 1]\n  q: [[0.4, 0.6], 0.9]\n")
    assert [c.name for c in e.cases] == ["p1_q1", "p1_q2", "p2_q1", "p2_q2"]


def test_same_needs_a_p_with_categories(write_config):
    path = write_config("name: t\nn: [10]\ngrid:\n  p: [0.3, 0.6]\n  q: {uniform: same}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:5: grid.q.uniform: `same` is p's number of categories, but p here has none" in str(
        info.value
    )
    assert len(info.value.issues) == 1


@pytest.mark.slow
def test_a_grid_may_sweep_parameters_named_like_summary_columns(tmp_path):
    """A normal grid sweeps `mean` and `sd`, which are also summary.csv's columns."""
    text = "name: fam\nreplicates: 20\nn: [10]\ngrid:\n  p: {normal: {mean: [0, 0.5, 1], sd: 1}}\n"
    text += "  q: {normal: {mean: 0, sd: [1, 2]}}\n"
    folder = run_experiment(parse_config(text), tmp_path, execution=Execution(workers=1)).path
    tables = figures.load_tables(folder)
    assert tables["config"]["sweep"]["x"] == "mean"
    fig = figures.sweep_figure(tables["summary"], tables["analytic"], config=tables["config"])
    try:
        (ax,) = [a for a in fig.axes if a.get_visible()]
        labels = [c.get_label() for c in ax.containers]
        assert ax.get_xlabel() == "mean" and labels[:2] == ["sd = 1", "sd = 2"]  # one line per q's sd
    finally:
        plt.close(fig)


def test_sweep_sizes_are_not_repeated(write_config):
    path = write_config(COINS.lstrip("\n") + "sweep: {n: [10, 10]}\n")
    with pytest.raises(ConfigError, match=r"sweep.n\[1\]: repeats 10"):
        load_config(path)
