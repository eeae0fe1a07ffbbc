"""Figures drawn from a results folder's tables alone.

Every figure is built from DataFrames (``summary.csv``, ``analytic.csv``,
``replicates.csv.gz``) and the resolved config, never from a simulation, so
``sim plot`` can redraw them in a fresh process.

Each kind has an axes-level function that draws one case, takes the tables
and keyword-only options, accepts ``ax=None`` and returns the Axes, and a
figure-level function that facets the cases and returns the Figure:

==================  ================================  =======================
kind                axes level                        figure level
==================  ================================  =======================
``convergence``     :func:`plot_convergence`          :func:`convergence_figure`
``paths``           :func:`plot_paths`                :func:`paths_figure`
``error``           :func:`plot_error`                :func:`error_figure`
``clt``             :func:`plot_clt`                  :func:`clt_figure`
``decomposition``   :func:`plot_decomposition`        :func:`decomposition_figure`
==================  ================================  =======================

Every estimator keeps one colour in every figure (seaborn's colourblind
palette); exact theory is drawn in black, dashed.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from . import results as res
from .errors import ResultsError

KINDS = ("convergence", "paths", "error", "clt", "decomposition")
FIT_KINDS = ("fit_trajectory", "fit_convergence")
FORMATS = ("png", "svg", "pdf")
DPI = 200

_PALETTE = sns.color_palette("colorblind")
#: One colour per estimator, the same in every figure.
COLOURS = {
    "llr": _PALETTE[0],  # blue
    "cross_entropy": _PALETTE[1],  # orange
    "entropy": _PALETTE[2],  # green
    "plugin_kl": _PALETTE[4],  # purple
}
#: Markers tell apart estimators whose curves coincide (llr and cross-entropy when H(p) is constant).
MARKERS = {"llr": "o", "cross_entropy": "s", "entropy": "^", "plugin_kl": "D"}
#: Drawing order: llr last, on top.
ORDER = ("plugin_kl", "entropy", "cross_entropy", "llr")
THEORY = {"color": "black", "linestyle": "--", "linewidth": 1.1}
LABELS = {
    "llr": "llr (normalised log-likelihood ratio)",
    "cross_entropy": "cross-entropy",
    "entropy": "entropy",
    "plugin_kl": "plug-in KL(p̂‖q)",
}
SYMBOLS = {"kl_pq": "KL(p‖q)", "cross_entropy_pq": "H(p, q)", "entropy_p": "H(p)"}
TARGET_OF = {
    "llr": "kl_pq",
    "plugin_kl": "kl_pq",
    "cross_entropy": "cross_entropy_pq",
    "entropy": "entropy_p",
}

Config = Mapping[str, Any]


# --------------------------------------------------------------------------
# Titles


def describe_distribution(spec: Any, *, max_values: int = 6) -> str:
    """A short text for a distribution as written in a config.

    >>> describe_distribution(0.5)
    '0.5'
    >>> describe_distribution({"zipf": {"k": 50000, "s": 1.07}})
    'Zipf(K=50,000, s=1.07)'
    """
    if isinstance(spec, int | float):
        return f"{spec:g}"
    if isinstance(spec, list):
        if len(spec) <= max_values:
            return "(" + ", ".join(f"{v:g}" for v in spec) + ")"
        return f"[{len(spec):,} probabilities]"
    if isinstance(spec, dict) and len(spec) == 1:
        kind, args = next(iter(spec.items()))
        if kind == "uniform":
            k = args["k"] if isinstance(args, dict) else args
            return f"uniform(K={k:,})"
        if kind == "zipf":
            return f"Zipf(K={args['k']:,}, s={args['s']:g})"
        if kind == "dirichlet":
            return f"Dirichlet(K={args['k']:,}, α={args['alpha']:g}, seed {args['seed']})"
    return str(spec)


def case_titles(config: Config | None) -> dict[str, str]:
    """Case name → ``"name: p = …, q = …"`` from a resolved config."""
    titles: dict[str, str] = {}
    for case in (config or {}).get("cases", []):
        p, q = describe_distribution(case["p"]), describe_distribution(case["q"])
        titles[case["name"]] = f"{case['name']}: p = {p}, q = {q}"
    return titles


def _coins(config: Config | None) -> dict[str, tuple[float, float]]:
    """Cases whose p and q are both coins: name → (P_p(heads), P_q(heads))."""
    out = {}
    for case in (config or {}).get("cases", []):
        p, q = case["p"], case["q"]
        if isinstance(p, int | float) and isinstance(q, int | float):
            out[case["name"]] = (float(p), float(q))
    return out


def _title(ax: Axes, text: str, extra: str = "") -> None:
    ax.set_title(textwrap.fill(text + extra, 46), fontsize=9)


def _units(frame: pd.DataFrame) -> str:
    units = frame["units"].iloc[0] if "units" in frame.columns and len(frame) else "nats"
    return str(units)


def _ax(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


# --------------------------------------------------------------------------
# Axes level: one case each


def plot_convergence(
    summary: pd.DataFrame, analytic: Mapping, *, ax: Axes | None = None, title: str = ""
) -> Axes:
    """Mean llr with its 5–95% band against n, and KL(p‖q).

    Parameters
    ----------
    summary : pandas.DataFrame
        Rows of ``summary.csv`` for one case (other estimators are ignored).
    analytic : mapping
        The case's row of ``analytic.csv``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; the current Axes by default.
    title : str
        Panel title.
    """
    ax = _ax(ax)
    s = summary[summary.estimator == "llr"].sort_values("n")
    colour = COLOURS["llr"]
    ax.fill_between(s.n, s.q05, s.q95, color=colour, alpha=0.25, linewidth=0, label="5–95% of replicates")
    ax.plot(s.n, s["mean"], color=colour, marker="o", markersize=3, label="mean llr")
    ax.axhline(analytic["kl_pq"], label="KL(p‖q)", **THEORY)
    ax.set_xscale("log")
    ax.set_xlabel("sample size n")
    ax.set_ylabel(f"llr ({_units(s)})")
    _title(ax, title or str(analytic["case"]), f"  [KL = {analytic['kl_pq']:.4g}]")
    return ax


def plot_paths(
    replicates: pd.DataFrame, analytic: Mapping, *, ax: Axes | None = None, paths: int = 20, title: str = ""
) -> Axes:
    """Single replicates' llr paths with KL and the exact ±2σ/√n envelope."""
    ax = _ax(ax)
    r = replicates[replicates.replicate < paths].sort_values(["replicate", "n"])
    for _, path in r.groupby("replicate"):
        ax.plot(path.n, path.llr, color=COLOURS["llr"], alpha=0.45, linewidth=0.8)
    n = np.unique(replicates.n.to_numpy())
    kl, sigma = analytic["kl_pq"], analytic["llr_sigma"]
    ax.plot(
        [], [], color=COLOURS["llr"], alpha=0.6, label=f"{min(paths, r.replicate.nunique())} sample paths"
    )
    ax.fill_between(
        n,
        kl - 2 * sigma / np.sqrt(n),
        kl + 2 * sigma / np.sqrt(n),
        color="0.5",
        alpha=0.2,
        label="KL ± 2σ/√n",
    )
    ax.axhline(kl, label="KL(p‖q)", **THEORY)
    ax.set_xscale("log")
    ax.set_xlabel("sample size n")
    ax.set_ylabel(f"llr ({analytic.get('units', 'nats')})")
    _title(ax, title or str(analytic["case"]))
    return ax


def plot_error(summary: pd.DataFrame, analytic: Mapping, *, ax: Axes | None = None, title: str = "") -> Axes:
    """RMSE of every estimator against n, log–log, with σ/√n and plug-in KL's exact bias.

    Zero errors (an estimator that is exact, as when σ = 0) cannot be drawn
    on a log axis; they are named in the legend instead.
    """
    ax = _ax(ax)
    exact = []
    present = [e for e in ORDER if e in set(summary.estimator)]
    for est in present:
        s = summary[summary.estimator == est].sort_values("n")
        scale = max(1.0, abs(float(s.target.iloc[0])))
        keep = s.rmse > 1e-12 * scale
        if not keep.any():
            exact.append(LABELS[est].split(" (")[0])
            continue
        small = est == "llr"
        ax.plot(
            s.n[keep],
            s.rmse[keep],
            color=COLOURS[est],
            marker=MARKERS[est],
            markersize=3 if small else 5,
            markerfacecolor=COLOURS[est] if small else "none",
            linewidth=1.6 if small else 1.1,
            label=LABELS[est],
        )
        if est == "plugin_kl" and "exact_mean" in s.columns and s.exact_mean.notna().any():
            bias = (s.exact_mean - s.target).to_numpy()
            ok = bias > 0
            ax.plot(
                s.n[ok],
                bias[ok],
                color=COLOURS[est],
                linestyle=":",
                linewidth=1.5,
                label="plug-in KL: exact bias",
            )
    n = np.unique(summary.n.to_numpy()).astype(float)
    sigma = analytic["llr_sigma"]
    if sigma > 0:
        ax.plot(n, sigma / np.sqrt(n), label="σ/√n (slope −½)", **THEORY)
    if exact:
        ax.text(
            0.02, 0.03, "exact, RMSE 0: " + ", ".join(exact), transform=ax.transAxes, fontsize=7, color="0.3"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sample size n")
    ax.set_ylabel(f"RMSE ({_units(summary)})")
    _title(ax, title or str(analytic["case"]))
    return ax


def plot_clt(
    replicates: pd.DataFrame,
    analytic: Mapping,
    *,
    n: int | None = None,
    coin: tuple[float, float] | None = None,
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """Histogram of √n(llr − KL)/σ at one n against the standard normal density.

    Parameters
    ----------
    n : int, optional
        The sample size; the largest in ``replicates`` by default.
    coin : (float, float), optional
        P(heads) under p and q for a coin case: the exact lattice
        distribution of the standardised llr (Binomial in the number of
        heads) is drawn too, as density stems.
    """
    ax = _ax(ax)
    n = int(replicates.n.max()) if n is None else int(n)
    kl, sigma = analytic["kl_pq"], analytic["llr_sigma"]
    x = replicates.loc[replicates.n == n, "llr"].to_numpy()
    if not sigma > 0:
        ax.text(
            0.5,
            0.5,
            "σ = 0: llr equals KL exactly\nfor every sample",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        _title(ax, title or str(analytic["case"]), f"  [n = {n:,}]")
        return ax
    z = np.sqrt(n) * (x - kl) / sigma
    sns.histplot(
        z,
        stat="density",
        bins=_bins(z),
        ax=ax,
        color=COLOURS["llr"],
        alpha=0.45,
        label=f"{len(z):,} replicates",
        edgecolor="white",
        linewidth=0.3,
    )
    grid = np.linspace(-4, 4, 401)
    ax.plot(grid, stats.norm.pdf(grid), label="standard normal", **THEORY)
    if coin is not None:
        _lattice(ax, n, coin, kl, sigma, analytic)
    ax.set_xlim(-4.5, 4.5)
    ax.set_xlabel("√n (llr − KL) / σ")
    ax.set_ylabel("density")
    _title(ax, title or str(analytic["case"]), f"  [n = {n:,}]")
    return ax


def _bins(z: np.ndarray) -> np.ndarray | int:
    """Histogram bins: one per lattice point when the values sit on a coarse lattice.

    At small n a coin's llr takes n + 1 evenly spaced values; bins centred on
    them make the histogram's density comparable with the exact lattice law.
    """
    u = np.unique(np.round(z, 9))
    if 2 <= u.size <= 80:
        step = np.diff(u).min()
        ratios = np.diff(u) / step
        if step > 0 and np.allclose(ratios, np.round(ratios), atol=1e-6):
            return np.arange(u[0] - step / 2, u[-1] + step, step)
    return 40


def _lattice(ax: Axes, n: int, coin: tuple[float, float], kl: float, sigma: float, analytic: Mapping) -> None:
    """Exact law of the standardised llr of a coin: stems of height pmf/spacing."""
    p, q = coin
    if n > 2000 or p in (0.0, 1.0):
        return
    scale = 1.0 if analytic.get("units", "nats") == "nats" else 1.0 / math.log(2)
    lh = (math.log(p) - math.log(q)) * scale
    lt = (math.log1p(-p) - math.log1p(-q)) * scale
    heads = np.arange(n + 1)
    llr = (heads * lh + (n - heads) * lt) / n
    z = np.sqrt(n) * (llr - kl) / sigma
    spacing = abs(z[1] - z[0]) if n > 0 else 1.0
    pmf = stats.binom.pmf(heads, n, p)
    keep = (np.abs(z) <= 4.5) & (pmf > 1e-6)
    ax.vlines(
        z[keep],
        0,
        pmf[keep] / spacing,
        color="black",
        linewidth=1.4,
        alpha=0.8,
        label="exact (Binomial lattice)",
    )


def plot_decomposition(
    summary: pd.DataFrame, analytic: Mapping, *, ax: Axes | None = None, title: str = ""
) -> Axes:
    """Cross-entropy, entropy and llr converging to H(p,q), H(p) and KL.

    The identity cross-entropy = entropy + KL is stated in the panel with
    the case's exact values.
    """
    ax = _ax(ax)
    for est in ("cross_entropy", "entropy", "llr"):
        s = summary[summary.estimator == est].sort_values("n")
        if s.empty:
            continue
        colour = COLOURS[est]
        ax.fill_between(s.n, s.q05, s.q95, color=colour, alpha=0.15, linewidth=0)
        ax.plot(
            s.n, s["mean"], color=colour, marker=MARKERS[est], markersize=3, label=LABELS[est].split(" (")[0]
        )
        ax.axhline(analytic[TARGET_OF[est]], color=colour, linestyle="--", linewidth=1.1)
    ax.plot([], [], label="exact limits", **THEORY)
    h_pq, h_p, kl = analytic["cross_entropy_pq"], analytic["entropy_p"], analytic["kl_pq"]
    ax.set_xscale("log")
    ax.set_xlabel("sample size n")
    ax.set_ylabel(_units(summary))
    _title(ax, title or str(analytic["case"]))
    ax.set_title(ax.get_title() + f"\nH(p,q) = H(p) + KL:  {h_pq:.4g} = {h_p:.4g} + {kl:.4g}", fontsize=9)
    return ax


def plot_fit_trajectory(trajectory: pd.DataFrame, *, ax: Axes | None = None, title: str = "") -> Axes:
    """Along the optimiser's steps: H(p, q_θ), KL(p‖q_θ), the empirical loss, and H(p).

    The gap H(p, q_θ) − KL(p‖q_θ) is drawn as points on the H(p) line: it
    does not move, because H(p) does not depend on θ.
    """
    ax = _ax(ax)
    t = trajectory.sort_values("step")
    units = str(t.attrs.get("units", "nats"))
    ax.plot(
        t.step,
        t.cross_entropy,
        color=COLOURS["cross_entropy"],
        marker="s",
        markersize=4,
        label="H(p, q_θ): population cross-entropy",
    )
    ax.plot(
        t.step,
        t.empirical_cross_entropy,
        color=COLOURS["cross_entropy"],
        linestyle=":",
        marker="s",
        markerfacecolor="none",
        markersize=4,
        label="empirical cross-entropy (the loss minimised)",
    )
    ax.plot(t.step, t.kl, color=COLOURS["llr"], marker="o", markersize=4, label="KL(p‖q_θ)")
    ax.axhline(
        float(t.entropy.iloc[0]), color=COLOURS["entropy"], linestyle="--", linewidth=1.2, label="H(p)"
    )
    ax.plot(
        t.step,
        t.gap,
        linestyle="none",
        color=COLOURS["entropy"],
        marker="D",
        markersize=5,
        markerfacecolor="white",
        label="gap H(p, q_θ) − KL(p‖q_θ)",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimiser step (Newton)")
    ax.set_ylabel(units)
    worst = float(np.max(np.abs(t.gap - t.entropy)))
    _title(ax, title or str(t.case.iloc[0]), f"  [n = {int(t.n.iloc[0]):,}; max |gap − H(p)| = {worst:.1e}]")
    return ax


def plot_fit_convergence(
    summary: pd.DataFrame, analytic: Mapping, *, ax: Axes | None = None, title: str = ""
) -> Axes:
    """KL of the fitted model against N, log–log, with floor + d/(2N) and the floor."""
    ax = _ax(ax)
    s = summary[summary.estimator == "kl_fitted"].sort_values("n")
    finite = np.isfinite(s["mean"])
    ax.fill_between(
        s.n[finite],
        s.q05[finite],
        s.q95[finite],
        color=COLOURS["llr"],
        alpha=0.2,
        linewidth=0,
        label="5–95% of replicates",
    )
    ax.plot(
        s.n[finite], s["mean"][finite], color=COLOURS["llr"], marker="o", markersize=3, label="mean KL(p‖q_θ̂)"
    )
    if "exact_mean" in s.columns and s.exact_mean.notna().any():
        ax.plot(
            s.n,
            s.exact_mean,
            linestyle="none",
            marker="+",
            color="black",
            markersize=7,
            label="exact expectation",
        )
    n = s.n.to_numpy(dtype=float)
    floor, d = float(analytic["kl_floor"]), int(analytic["parameters"])
    scale = 1.0 if analytic.get("units", "nats") == "nats" else 1.0 / math.log(2)
    ax.plot(n, floor + scale * d / (2 * n), label="floor + d/(2N)", **THEORY)
    if floor > 1e-12:
        ax.axhline(floor, color="0.35", linestyle=":", linewidth=1.4, label="misspecification floor (exact)")
    if "infinite_fraction" in s.columns and (s.infinite_fraction > 0).any():
        worst = s.loc[s.infinite_fraction.idxmax()]
        ax.text(
            0.02,
            0.03,
            f"fit at infinity (KL = ∞) in {worst.infinite_fraction:.0%} of replicates at n = {int(worst.n):,}",
            transform=ax.transAxes,
            fontsize=7,
            color="0.3",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sample size N")
    ax.set_ylabel(f"KL(p‖q_θ̂) ({_units(s)})")
    _title(ax, title or str(analytic["case"]), f"  [{analytic['model']}, d = {d}]")
    return ax


# --------------------------------------------------------------------------
# Figure level: cases as facets


def _facets(
    panels: Sequence[Any],
    draw: Callable[[Axes, Any], None],
    *,
    suptitle: str,
    log_y: bool = False,
) -> Figure:
    """Lay out one panel per item, up to four per row, with one shared legend."""
    count = max(1, len(panels))
    cols = min(4, count)
    rows = math.ceil(count / cols)
    width = max(6.5, 4.4 * cols)
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        fig = Figure(figsize=(width, 3.4 * rows + 1.2), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, item in zip(axes, panels, strict=False):
            draw(ax, item)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
    handles: dict[str, Any] = {}
    for ax in axes[: len(panels)]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles.keys()),
            loc="outside lower center",
            ncols=min(4, len(handles)),
            frameon=False,
            fontsize=8,
        )
    chars = int(width * 10)
    fig.suptitle("\n".join(textwrap.fill(line, chars) for line in suptitle.splitlines()), fontsize=11)
    return fig


def _rows(analytic: pd.DataFrame) -> list[dict]:
    return analytic.to_dict("records")


def convergence_figure(
    summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None
) -> Figure:
    """One panel per case: :func:`plot_convergence`."""
    titles = case_titles(config)
    return _facets(
        _rows(analytic),
        lambda ax, a: plot_convergence(
            summary[summary.case == a["case"]], a, ax=ax, title=titles.get(a["case"], "")
        ),
        suptitle=_suptitle("The normalised log-likelihood ratio converges to KL(p‖q)", config),
    )


def paths_figure(
    replicates: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None, paths: int = 20
) -> Figure:
    """One panel per case: :func:`plot_paths`."""
    titles = case_titles(config)
    return _facets(
        _rows(analytic),
        lambda ax, a: plot_paths(
            replicates[replicates.case == a["case"]], a, ax=ax, paths=paths, title=titles.get(a["case"], "")
        ),
        suptitle=_suptitle(f"{paths} sample paths: the law of large numbers", config),
    )


def error_figure(summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None) -> Figure:
    """One panel per case: :func:`plot_error`."""
    titles = case_titles(config)
    return _facets(
        _rows(analytic),
        lambda ax, a: plot_error(
            summary[summary.case == a["case"]], a, ax=ax, title=titles.get(a["case"], "")
        ),
        suptitle=_suptitle("Root-mean-square error of each estimator: slope −½ on log–log axes", config),
    )


def clt_figure(replicates: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None) -> Figure:
    """:func:`plot_clt` at the largest n for every case, and at a small n for coins."""
    titles = case_titles(config)
    coins = _coins(config)
    sizes = np.unique(replicates.n.to_numpy())
    small = sizes[(sizes <= 30) & (sizes >= 5)]
    panels: list[tuple[dict, int, tuple | None]] = []
    for a in _rows(analytic):
        coin = coins.get(a["case"])
        if coin is not None and small.size and small[-1] != sizes[-1]:
            panels.append((a, int(small[-1]), coin))
        panels.append((a, int(sizes[-1]), coin))

    def draw(ax: Axes, item) -> None:
        a, n, coin = item
        plot_clt(
            replicates[replicates.case == a["case"]],
            a,
            n=n,
            coin=coin,
            ax=ax,
            title=titles.get(a["case"], ""),
        )

    return _facets(
        panels,
        draw,
        suptitle=_suptitle("Central limit theorem: the standardised llr is nearly N(0, 1)", config),
    )


def decomposition_figure(
    summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None
) -> Figure:
    """One panel per case: :func:`plot_decomposition`."""
    titles = case_titles(config)
    return _facets(
        _rows(analytic),
        lambda ax, a: plot_decomposition(
            summary[summary.case == a["case"]], a, ax=ax, title=titles.get(a["case"], "")
        ),
        suptitle=_suptitle("Cross-entropy = entropy + KL: minimising cross-entropy minimises KL", config),
    )


def fit_trajectory_figure(
    trajectory: pd.DataFrame, *, config: Config | None = None, units: str = "nats"
) -> Figure:
    """One panel per model: :func:`plot_fit_trajectory`."""
    cases = list(dict.fromkeys(trajectory.case))

    def draw(ax: Axes, case: str) -> None:
        t = trajectory[trajectory.case == case].copy()
        t.attrs["units"] = units
        plot_fit_trajectory(t, ax=ax, title=case)

    return _facets(
        cases,
        draw,
        suptitle=_suptitle("Minimising cross-entropy minimises KL: the gap is H(p), whatever θ", config),
    )


def fit_convergence_figure(
    summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None
) -> Figure:
    """One panel per model: :func:`plot_fit_convergence`."""
    return _facets(
        _rows(analytic),
        lambda ax, a: plot_fit_convergence(summary[summary.case == a["case"]], a, ax=ax, title=a["case"]),
        suptitle=_suptitle(
            "KL of the fitted model: to 0 when the family contains p, to its floor when not", config
        ),
    )


def _suptitle(text: str, config: Config | None) -> str:
    if not config:
        return text
    desc = config.get("description") or ""
    return f"{config.get('name', '')}: {text}" + (f"\n{desc}" if desc else "")


# --------------------------------------------------------------------------
# Results folders


def load_tables(folder: str | Path) -> dict[str, Any]:
    """Read what the figures need from a results folder.

    Returns a dict with ``summary``, ``analytic``, ``replicates`` (DataFrames),
    ``trajectory`` for a fit experiment, and ``config`` (the resolved config as
    a mapping).

    Raises
    ------
    sim.errors.ResultsError
        If a file is missing or unreadable.
    """
    import yaml

    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"{folder}: not a results folder")
    names = {
        "summary": res.SUMMARY,
        "analytic": res.ANALYTIC,
        "replicates": res.REPLICATES,
        "config": res.CONFIG,
    }
    if (folder / res.TRAJECTORY).is_file():
        names["trajectory"] = res.TRAJECTORY
    missing = [f for f in names.values() if not (folder / f).is_file()]
    if missing:
        raise ResultsError(
            f"{folder}: missing {', '.join(missing)} (is it a results folder written by sim run?)"
        )
    tables: dict[str, Any] = {}
    try:
        for key in names:
            if key != "config":
                tables[key] = res.read_csv(folder / names[key])
        tables["config"] = yaml.safe_load((folder / res.CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ResultsError(f"{folder}: cannot read its tables: {exc}") from None
    fit = isinstance(tables["config"], dict) and tables["config"].get("kind") == "fit"
    if fit and "trajectory" not in tables:
        raise ResultsError(f"{folder}: missing {res.TRAJECTORY} (a fit experiment's results)")
    needed = {
        "summary": {"case", "n", "estimator", "mean", "q05", "q95", "rmse", "target"},
        "analytic": {"case", "kl_floor", "parameters"} if fit else {"case", "kl_pq", "llr_sigma"},
        "replicates": {"case", "replicate", "n"},
    }
    for key, cols in needed.items():
        lacking = cols - set(tables[key].columns)
        if lacking:
            raise ResultsError(f"{folder}: {names[key]} lacks columns {', '.join(sorted(lacking))}")
    return tables


def build_figures(tables: Mapping[str, Any]) -> dict[str, Figure]:
    """Every figure kind that the tables support, by kind name."""
    summary, analytic, replicates, config = (
        tables[k] for k in ("summary", "analytic", "replicates", "config")
    )
    if config.get("kind") == "fit":
        units = str(config.get("units", "nats"))
        return {
            "fit_trajectory": fit_trajectory_figure(tables["trajectory"], config=config, units=units),
            "fit_convergence": fit_convergence_figure(summary, analytic, config=config),
        }
    estimators = set(summary.estimator)
    figures: dict[str, Figure] = {}
    if "llr" in estimators:
        figures["convergence"] = convergence_figure(summary, analytic, config=config)
    if "llr" in replicates.columns:
        figures["paths"] = paths_figure(replicates, analytic, config=config)
        figures["clt"] = clt_figure(replicates, analytic, config=config)
    figures["error"] = error_figure(summary, analytic, config=config)
    if {"llr", "cross_entropy", "entropy"} <= estimators:
        figures["decomposition"] = decomposition_figure(summary, analytic, config=config)
    return {k: figures[k] for k in KINDS if k in figures}


def save_figure(fig: Figure, path: Path) -> None:
    """Save with fixed metadata, so equal figures give equal files where the format allows."""
    fmt = path.suffix.lstrip(".")
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    fig.savefig(path, dpi=DPI, metadata=metadata)


def draw_figures(folder: str | Path, *, fmt: str = "png", into: str | Path | None = None) -> list[Path]:
    """Draw every figure of a results folder into ``into`` (default ``folder/figures``).

    Reads only the folder's CSVs and ``config.yaml``.  The figures folder is
    replaced as a whole once every figure is drawn.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; use one of {', '.join(FORMATS)}")
    folder = Path(folder)
    tables = load_tables(folder)
    target = Path(into) if into is not None else folder / res.FIGURES
    written = []
    with res.staged_folder(target.parent, target.name) as tmp:
        for kind, fig in build_figures(tables).items():
            save_figure(fig, tmp / f"{kind}.{fmt}")
            written.append(target / f"{kind}.{fmt}")
    return written
