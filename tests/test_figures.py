"""Figures: drawn from DataFrames alone, every kind, and `sim plot` from saved results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest
import seaborn
from click.testing import CliRunner
from matplotlib.colors import to_hex

from sim import figures
from sim.cli import main
from sim.config import parse_config
from sim.runner import run_experiment
from tests.helpers import TINY, skip_rendering

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    return run_experiment(parse_config(TINY), out).path


@pytest.fixture(scope="module")
def tables(tiny_results):
    return figures.load_tables(tiny_results)


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_every_figure_kind_from_dataframes(tables):
    figs = figures.build_figures(tables)
    assert list(figs) == list(figures.KINDS)
    for kind, fig in figs.items():
        axes = _visible(fig)
        expected = 3 if kind == "clt" else 2  # clt adds a small-n panel for the coin
        assert len(axes) == expected, kind
        titles = " ".join(ax.get_title() for ax in axes)
        assert "coin: p = 0.7, q = 0.5" in titles, kind
        assert "die: p = (0.5, 0.25, 0.25, 0), q = uniform(K=4)" in titles.replace("\n", " "), kind
        if kind != "clt":
            assert all(ax.get_xscale() == "log" for ax in axes), kind
            assert all("nats" in ax.get_ylabel() for ax in axes), kind
        assert fig.legends, kind  # one shared legend


def test_axes_level_functions_take_dataframes_and_return_axes(tables):
    summary, analytic, replicates = tables["summary"], tables["analytic"], tables["replicates"]
    row = analytic.iloc[0].to_dict()
    case = summary[summary.case == row["case"]]
    reps = replicates[replicates.case == row["case"]]
    for draw, data in [
        (figures.plot_convergence, case),
        (figures.plot_error, case),
        (figures.plot_decomposition, case),
        (figures.plot_paths, reps),
        (figures.plot_clt, reps),
    ]:
        _, ax = plt.subplots()
        assert draw(data, row, ax=ax) is ax
        assert draw(data, row) is plt.gca()  # ax=None draws on the current Axes


def test_error_figure_reports_exact_estimators_instead_of_log_zero(tables):
    fig = figures.error_figure(tables["summary"], tables["analytic"], config=tables["config"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    # q is uniform in both TINY cases, so −log q(X) is constant: cross-entropy is exact.
    assert texts == ["exact, RMSE 0: cross-entropy"] * 2
    s = tables["summary"].copy()
    s.loc[s.estimator == "entropy", "rmse"] = 0.0
    fig = figures.error_figure(s, tables["analytic"], config=tables["config"])
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == [
        "exact, RMSE 0: entropy, cross-entropy"
    ] * 2


def test_clt_draws_the_exact_lattice_for_coins(tables):
    coin = tables["replicates"][tables["replicates"].case == "coin"]
    row = tables["analytic"].set_index("case").loc["coin"].to_dict() | {"case": "coin"}
    ax = figures.plot_clt(coin, row, n=10, coin=(0.7, 0.5))
    labels = ax.get_legend_handles_labels()[1]
    assert "exact (Binomial lattice)" in labels and "standard normal" in labels


def test_estimator_colours_are_fixed_distinct_and_colourblind_safe():
    """Ten colourblind-safe colours for more estimators: a colour is shared only by estimators of one
    family (the plug-in and its jackknife), told apart by their markers."""
    palette = {to_hex(c) for c in seaborn.color_palette("colorblind")}
    styles = [(to_hex(figures.COLOURS[e]), figures.MARKERS[e]) for e in figures.COLOURS]
    assert len(set(styles)) == len(styles)
    assert {colour for colour, _ in styles} <= palette
    shared = {
        e for e in figures.COLOURS if sum(c == figures.COLOURS[e] for c in figures.COLOURS.values()) > 1
    }
    assert shared == {"plugin_kl", "plugin_kl_jackknife"}


@pytest.mark.slow
def test_twelve_cases_fit_in_a_grid(tmp_path):
    cases = "\n".join(f"  - {{name: c{i}, p: 0.5, q: {0.05 + 0.075 * i:.3f}}}" for i in range(12))
    e = parse_config(f"name: many\nreplicates: 20\nn: [1, 10, 100]\ncases:\n{cases}\n")
    folder = run_experiment(e, tmp_path).path
    fig = figures.convergence_figure(*(figures.load_tables(folder)[k] for k in ("summary", "analytic")))
    assert len(_visible(fig)) == 12
    assert fig.get_size_inches()[0] <= 18  # four columns


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (0.5, "0.5"),
        ([0.1, 0.9], "(0.1, 0.9)"),
        ([0.1] * 10, "[10 probabilities]"),
        ({"uniform": 4}, "uniform(K=4)"),
        ({"zipf": {"k": 50000, "s": 1.07}}, "Zipf(K=50,000, s=1.07)"),
        ({"dirichlet": {"k": 20, "alpha": 0.5, "seed": 1}}, "Dirichlet(K=20, α=0.5, seed 1)"),
    ],
)
def test_describe_distribution(spec, text):
    assert figures.describe_distribution(spec) == text


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Path:
    """TINY (10 replicates) run by `sim run`, which builds and writes its figures.

    Not rendered: `sim plot` renders every kind in the tests below (SVG, and
    PNG in a fresh process), through the same function `sim run` calls.
    """
    out = tmp_path_factory.mktemp("drawn")
    cfg = out / "tiny.yaml"
    cfg.write_text(TINY.replace("replicates: 50", "replicates: 10"), encoding="utf-8")
    with pytest.MonkeyPatch.context() as monkeypatch:
        skip_rendering(monkeypatch)
        r = CliRunner().invoke(main, ["run", str(cfg), "--out", str(out / "a")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out / "a" / "tiny"


@pytest.mark.slow
def test_sim_plot_writes_every_figure_in_another_format_and_keeps_the_others(cli, drawn, tmp_path):
    """`sim plot --format svg` beside the PNGs `sim run` drew.  (`sim plot` in the default
    format on a folder without figures: test_sim_plot_in_a_fresh_process_needs_only_the_csvs.)"""
    folder = tmp_path / "tiny"
    shutil.copytree(drawn, folder)
    pngs = {p.name: p.read_bytes() for p in (folder / "figures").iterdir()}
    assert sorted(pngs) == sorted(f"{k}.png" for k in figures.KINDS)
    r = cli("plot", str(folder), "--format", "svg")
    assert r.exit_code == 0
    names = sorted(p.name for p in (folder / "figures").iterdir())
    assert names == sorted([*pngs, *(f"{k}.svg" for k in figures.KINDS)])  # the PNGs are kept
    assert all((folder / "figures" / name).read_bytes() == data for name, data in pngs.items())
    assert not [p for p in (folder / "figures").iterdir() if p.name.startswith(".")]  # no temporary files


@pytest.mark.slow
def test_sim_plot_in_a_fresh_process_needs_only_the_csvs(tiny_results, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("summary.csv", "analytic.csv", "replicates.csv.gz", "config.yaml"):
        shutil.copy(tiny_results / name, folder / name)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run(
        [sys.executable, "-m", "sim", "plot", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert {p.name for p in (folder / "figures").iterdir()} == {f"{k}.png" for k in figures.KINDS}


def test_sim_plot_refuses_a_folder_that_is_not_results(cli, tiny_results, tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copy(tiny_results / "summary.csv", folder)
    r = cli("plot", str(folder))
    assert r.exit_code == 2 and "missing analytic.csv" in r.stderr
    assert not (folder / "figures").exists()


@pytest.mark.slow
def test_run_draws_figures_unless_told_not_to(cli, drawn, write_config, tmp_path):
    assert {p.name for p in (drawn / "figures").iterdir()} == {f"{k}.png" for k in figures.KINDS}
    cfg = write_config(TINY.replace("replicates: 50", "replicates: 10"))
    assert cli("run", str(cfg), "--out", str(tmp_path / "b"), "--no-figures").exit_code == 0
    assert not (tmp_path / "b" / "tiny" / "figures").exists()


@pytest.mark.slow
def test_sim_plot_refuses_a_folder_a_run_is_writing(cli, tiny_results, tmp_path, monkeypatch):
    """While a run holds a results folder's lock, sim plot refuses it (exit 1) and writes nothing."""
    from sim import results as res

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_results, folder)
    shutil.rmtree(folder / "figures", ignore_errors=True)
    with res.exclusive(tmp_path, "tiny"):
        r = subprocess.run(
            [sys.executable, "-m", "sim", "plot", str(folder)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            check=False,
        )
    assert r.returncode == 1 and "another sim run is writing" in r.stderr, r.stderr
    assert not (folder / "figures").exists()
    skip_rendering(monkeypatch)  # the figures themselves: the tests above
    assert cli("plot", str(folder)).exit_code == 0  # and once it is released
    assert {p.name for p in (folder / "figures").iterdir()} == {f"{k}.png" for k in figures.KINDS}


# --------------------------------------------------------------------------
# Streamed results (save_replicates: false) and figures that fail

STREAMED = TINY.replace("replicates: 50", "replicates: 20") + (
    "save_replicates: false\nestimators: [llr, cross_entropy, entropy, plugin_kl, p_wrong]\n"
)


def _figure_names(folder: Path) -> set[str]:
    return {p.name for p in (folder / "figures").iterdir()}


@pytest.mark.slow
def test_a_streamed_run_draws_every_figure_its_tables_support(cli, write_config, tmp_path, monkeypatch):
    out = tmp_path / "out"
    r = cli("run", str(write_config(STREAMED)), "--out", str(out))
    assert r.exit_code == 0, r.output
    folder = out / "tiny"
    assert not (folder / "replicates.csv.gz").exists()
    drawn = {"convergence.png", "error.png", "decomposition.png", "testing.png"}
    assert _figure_names(folder) == drawn
    notes = [line for line in r.stdout.splitlines() if "figure" in line]
    assert notes == [
        f"{folder}: paths figure skipped: it needs per-replicate paths (save_replicates: false)",
        f"{folder}: clt figure skipped: it needs per-replicate llr values; "
        "a streamed summary keeps only quantiles (save_replicates: false)",
        f"{folder}: testing figure drawn without the simulated Stein curve: "
        "it reweights per-replicate llr values (save_replicates: false)",
    ]
    info = json.loads((folder / "run.json").read_text())
    assert info["figures"]["failed"] == {} and set(info["figures"]["skipped"]) == {"paths", "clt"}
    assert sorted(p.name for p in out.iterdir()) == [".tiny.lock", "tiny"]  # no .tiny.resume left

    tables = figures.load_tables(folder)
    assert tables["replicates"] is None
    assert figures.figure_kinds(tables) == ["convergence", "error", "decomposition", "testing"]
    fig = figures.testing_figure(tables["summary"], tables["analytic"], config=tables["config"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]  # the die's Stein panel says why it is empty
    assert texts == ["no simulated curve: it needs per-replicate\nllr values (save_replicates: false)"]
    shutil.rmtree(folder / "figures")
    skip_rendering(monkeypatch)  # rendered for real by the run above
    r = cli("plot", str(folder))
    assert r.exit_code == 0, r.output
    assert _figure_names(folder) == drawn
    assert (
        f"{folder}: paths figure skipped: it needs per-replicate paths (save_replicates: false)" in r.stdout
    )


def _broken(*args, **kwargs):
    raise MemoryError


@pytest.mark.slow
def test_a_failing_figure_never_costs_the_tables(cli, write_config, tmp_path, monkeypatch):
    skip_rendering(monkeypatch)  # the other figures are built, not rendered: what is written is the point
    monkeypatch.setattr(figures.folders, "error_figure", _broken)
    out = tmp_path / "out"
    r = cli("run", str(write_config(TINY.replace("replicates: 50", "replicates: 10"))), "--out", str(out))
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"Error: {out / 'tiny'}: figure 'error' failed: MemoryError"]
    assert "Traceback" not in r.output
    folder = out / "tiny"
    for name in ("config.yaml", "analytic.csv", "summary.csv", "replicates.csv.gz", "run.json"):
        assert (folder / name).is_file(), name
    assert _figure_names(folder) == {f"{k}.png" for k in figures.KINDS if k != "error"}
    info = json.loads((folder / "run.json").read_text())
    assert info["figures"]["failed"] == {"error": "MemoryError"}
    assert {"seed", "versions", "wall_seconds", "check"} <= set(info)  # the existing keys stay
    assert sorted(p.name for p in out.iterdir()) == [".tiny.lock", "tiny"]  # resume folder removed

    shutil.rmtree(folder / "figures")
    r = cli("plot", str(folder))
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.splitlines() == [f"Error: {folder}: figure 'error' failed: MemoryError"]
    assert _figure_names(folder) == {f"{k}.png" for k in figures.KINDS if k != "error"}


def test_a_failing_figure_stage_still_publishes_the_tables(cli, write_config, tmp_path, monkeypatch):
    import sim.cli

    def broken(report, folder, **_options):
        raise RuntimeError("no display\nand a second line")

    monkeypatch.setattr(sim.cli, "_draw_figures", broken)
    out = tmp_path / "out"
    r = cli("run", str(write_config(TINY.replace("replicates: 50", "replicates: 10"))), "--out", str(out))
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"Error: {out / 'tiny'}: figures failed: RuntimeError: no display"]
    assert (out / "tiny" / "summary.csv").is_file() and (out / "tiny" / "run.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == [".tiny.lock", "tiny"]


@pytest.mark.slow
def test_figures_drawn_side_by_side_are_the_files_drawn_in_turn(tmp_path, monkeypatch):
    """Figures are drawn on one forked process per core; the files are those of one process."""
    folder = run_experiment(parse_config(TINY), tmp_path / "run").path
    side_by_side = figures.draw_figures(folder, into=tmp_path / "two")
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    in_turn = figures.draw_figures(folder, into=tmp_path / "one")
    assert (
        [p.name for p in side_by_side.written]
        == [p.name for p in in_turn.written]
        == [f"{k}.png" for k in figures.KINDS]
    )
    for path in side_by_side.written:
        assert path.read_bytes() == (tmp_path / "one" / path.name).read_bytes(), path.name


# --------------------------------------------------------------------------
# Layout: margins measured once (sim.figures.layout), nothing clipped or overlapping

ROOT = Path(__file__).resolve().parents[1]


def _superscript_value(label: str) -> float:
    """The number a plain-text log label shows: ``10⁻⁶``, ``2 × 10⁻¹`` (read independently of the formatter)."""
    digits = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
    coefficient, _, power = label.replace("\u2009", "").replace("−", "-").rpartition("×")
    base, exponent = power[:2], power[2:].translate(digits)
    assert base == "10", label
    return float(coefficient or 1) * 10.0 ** int(exponent)


@pytest.mark.parametrize("limits", [(1e-6, 1.0), (0.13, 0.22), (0.3, 3.0), (2e3, 5e5)])
def test_log_labels_are_matplotlibs_as_plain_text(limits):
    """The same ticks labelled as by matplotlib's default log formatter, each showing its own value."""
    from matplotlib.figure import Figure

    from sim.figures.layout import UnicodeLogFormatter

    ax = Figure().subplots()
    ax.set_yscale("log")
    ax.set_ylim(*limits)
    for locs, default in [
        (ax.yaxis.get_majorticklocs(), ax.yaxis.get_major_formatter()),
        (ax.yaxis.get_minorticklocs(), ax.yaxis.get_minor_formatter()),
    ]:
        reference = default.format_ticks(locs)
        plain = UnicodeLogFormatter(
            labelOnlyBase=default.labelOnlyBase, minor_thresholds=default.minor_thresholds
        )
        plain.set_axis(ax.yaxis)
        labels = plain.format_ticks(locs)
        assert [bool(s) for s in labels] == [bool(s) for s in reference]
        for loc, label in zip(locs, labels, strict=True):
            if label:
                assert "$" not in label
                assert _superscript_value(label) == pytest.approx(loc, rel=1e-9), label


def _boxes(fig):
    """Each visible panel's, the legend's and the suptitle's extent as drawn at the figures' dpi.

    Laid out by Agg's renderer without rasterising (the same extents as a full draw, for less).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(figures.DPI)
    canvas = FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = canvas.get_renderer()
    boxes = {f"panel {i}": ax.get_tightbbox(renderer) for i, ax in enumerate(_visible(fig))}
    boxes |= {f"legend {i}": legend.get_window_extent(renderer) for i, legend in enumerate(fig.legends)}
    if fig._suptitle is not None:
        boxes["suptitle"] = fig._suptitle.get_window_extent(renderer)
    return fig.bbox, boxes


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "results").iterdir() if p.is_dir()))
def test_every_shipped_figure_has_nothing_clipped_or_overlapping(name):
    """Every panel's tick labels, axis labels and title, the legend and the suptitle lie inside
    the figure, and none of them overlaps another (one pixel of tolerance)."""
    for kind, fig in figures.build_figures(figures.load_tables(ROOT / "results" / name)).items():
        frame, boxes = _boxes(fig)
        for what, box in boxes.items():
            assert box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1, (kind, what, box, frame)
            assert box.y0 >= frame.y0 - 1 and box.y1 <= frame.y1 + 1, (kind, what, box, frame)
        names = sorted(boxes)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                overlap = boxes[a].intersection(boxes[a], boxes[b])
                assert overlap is None or min(overlap.width, overlap.height) <= 1, (kind, a, b)


@pytest.mark.slow
def test_warm_up_changes_no_figure_byte(tmp_path):
    """Figures drawn after :func:`sim.figures.warm_up` (as ``sim run`` does before forking) are the same files."""
    script = (
        "import sys; from pathlib import Path; import sim.figures as F\n"
        "if sys.argv[2] == 'warm': F.warm_up()\n"
        "F.draw_figures(Path(sys.argv[1]), into=Path(sys.argv[3]), processes=1)\n"
    )
    folder = Path(__file__).resolve().parents[1] / "results" / "categorical"
    for mode in ("cold", "warm"):
        subprocess.run([sys.executable, "-c", script, str(folder), mode, str(tmp_path / mode)], check=True)
    cold = sorted(p.name for p in (tmp_path / "cold").iterdir())
    assert cold and cold == sorted(p.name for p in (tmp_path / "warm").iterdir())
    for name in cold:
        assert (tmp_path / "cold" / name).read_bytes() == (tmp_path / "warm" / name).read_bytes(), name


ESTIMATORS = """
name: which
seed: 5
replicates: 300
n: [1, 10, 100, 1000]
estimators: [llr, plugin_kl, k2, k3, plugin_kl_mm]
cases:
  - {name: coin, p: 0.6, q: 0.5}
  - {name: die, p: [0.1, 0.2, 0.3, 0.4], q: {uniform: 4}}
"""


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("which")
    return figures.load_tables(run_experiment(parse_config(ESTIMATORS), out).path)


def test_the_estimators_figure_is_drawn_when_more_estimators_of_kl_are_asked(tables, compared):
    assert "estimators" in figures.figure_kinds(compared)
    assert "estimators" not in figures.figure_kinds(tables)  # llr and plugin_kl only: the error figure


def test_plot_estimators_draws_each_rmse_and_exact_bias_from_the_summary(compared):
    s = compared["summary"]
    case = s[s.case == "die"]
    row = compared["analytic"].set_index("case").loc["die"].to_dict() | {"case": "die"}
    ax = figures.plot_estimators(case, row)
    lines = [line for line in ax.get_lines() if len(line.get_xdata())]
    solid = {line.get_label(): line for line in lines if line.get_linestyle() == "-"}
    dashed = [line for line in lines if line.get_linestyle() == "--"]
    expected = ["plugin_kl", "plugin_kl_mm", "k2", "k3", "llr"]
    assert sorted(solid) == sorted(figures.LABELS[e] for e in expected)
    for est in expected:
        rows = case[case.estimator == est].sort_values("n")
        assert list(solid[figures.LABELS[est]].get_ydata()) == list(rows.rmse)
    # exact |bias| of the biased ones (plug-in, Miller–Madow, k2); llr and k3 are unbiased, named instead
    biases = sorted(tuple(line.get_ydata()) for line in dashed)
    want = sorted(
        tuple((r.exact_mean - r.target).abs())
        for e in ("plugin_kl", "plugin_kl_mm", "k2")
        for r in [case[case.estimator == e].sort_values("n")]
    )
    assert biases == want
    assert [t.get_text() for t in ax.texts] == ["unbiased: k3, llr"]
    assert {"RMSE over the replicates", "exact |bias|"} <= set(ax.get_legend_handles_labels()[1])


def test_estimators_figure_has_a_panel_per_case(compared):
    fig = figures.estimators_figure(compared["summary"], compared["analytic"], config=compared["config"])
    assert len(_visible(fig)) == 2 and len(fig.legends) == 1
