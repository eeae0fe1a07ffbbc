"""Convergence figures: convergence, paths, error, clt and decomposition."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from scipy import stats

from .. import registry
from ..distributions import unit_size
from ..markov import MarkovPair
from ..registry import CROSS_ENTROPY, ENTROPY, LLR, PLUGIN_KL
from .style import (
    COLOURS,
    LABELS,
    MARKERS,
    TARGET_OF,
    THEORY,
    Config,
    _ax,
    _coins,
    _facets,
    _per_case,
    _rows,
    _suptitle,
    _title,
    _units,
    case_titles,
    in_order,
)


def is_rate(analytic: Mapping) -> bool:
    """Whether a case's ``kl_pq`` is a rate per token (a Markov source), read from ``analytic.csv``."""
    return analytic.get("family") == MarkovPair.family


def kl_name(analytic: Mapping) -> str:
    """What the llr converges to, as a legend says it: KL(p‖q), or the KL rate of a Markov source."""
    return "KL rate (per token)" if is_rate(analytic) else "KL(p‖q)"


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
    s = summary[summary.estimator == LLR.name].sort_values("n")
    colour = COLOURS[LLR.name]
    ax.fill_between(s.n, s.q05, s.q95, color=colour, alpha=0.25, linewidth=0, label="5–95% of replicates")
    ax.plot(s.n, s["mean"], color=colour, marker="o", markersize=3, label="mean llr")
    ax.axhline(analytic["kl_pq"], label=kl_name(analytic), **THEORY)
    ax.set_xscale("log")
    ax.set_xlabel("sample size n")
    ax.set_ylabel(f"llr ({_units(s)})")
    short = "KL rate" if is_rate(analytic) else "KL"
    _title(ax, title or str(analytic["case"]), f"  [{short} = {analytic['kl_pq']:.4g}]")
    return ax


def plot_paths(
    replicates: pd.DataFrame, analytic: Mapping, *, ax: Axes | None = None, paths: int = 20, title: str = ""
) -> Axes:
    """Single replicates' llr paths with KL and the exact ±2σ/√n envelope."""
    ax = _ax(ax)
    r = replicates[replicates.replicate < paths].sort_values(["replicate", "n"])
    for _, path in r.groupby("replicate"):
        ax.plot(path.n, path[LLR.name], color=COLOURS[LLR.name], alpha=0.45, linewidth=0.8)
    n = np.unique(replicates.n.to_numpy())
    kl, sigma = analytic["kl_pq"], analytic["llr_sigma"]
    ax.plot(
        [], [], color=COLOURS[LLR.name], alpha=0.6, label=f"{min(paths, r.replicate.nunique())} sample paths"
    )
    ax.fill_between(
        n,
        kl - 2 * sigma / np.sqrt(n),
        kl + 2 * sigma / np.sqrt(n),
        color="0.5",
        alpha=0.2,
        label="KL ± 2σ/√n",
    )
    ax.axhline(kl, label=kl_name(analytic), **THEORY)
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
    present = in_order(summary.estimator)
    for est in present:
        s = summary[summary.estimator == est].sort_values("n")
        if not _rmse_layer(ax, s, est):
            exact.append(LABELS[est].split(" (")[0])
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


def _rmse_layer(ax: Axes, s: pd.DataFrame, est: str) -> bool:
    """One estimator's RMSE against n (and plug-in KL's exact bias); False if every RMSE is 0.

    ``s`` holds the estimator's rows of ``summary.csv``, sorted by n.
    """
    scale = max(1.0, abs(float(s.target.iloc[0])))
    keep = s.rmse > 1e-12 * scale
    if not keep.any():
        return False
    small = est == LLR.name
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
    if est == PLUGIN_KL.name and "exact_mean" in s.columns and s.exact_mean.notna().any():
        _exact_bias_layer(ax, s, est)
    return True


def _exact_bias_layer(ax: Axes, s: pd.DataFrame, est: str) -> None:
    """The exact bias exact_mean − target where it is positive (drawable on a log axis)."""
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
    x = replicates.loc[replicates.n == n, LLR.name].to_numpy()
    if not sigma > 0:
        _no_spread(ax)
    else:
        z = np.sqrt(n) * (x - kl) / sigma
        _histogram_layer(ax, z)
        grid = np.linspace(-4, 4, 401)
        ax.plot(grid, stats.norm.pdf(grid), label="standard normal", **THEORY)
        if coin is not None:
            _lattice(ax, n, coin, kl, sigma, analytic)
        ax.set_xlim(-4.5, 4.5)
        ax.set_xlabel("√n (llr − KL) / σ")
        ax.set_ylabel("density")
    _title(ax, title or str(analytic["case"]), f"  [n = {n:,}]")
    return ax


def _no_spread(ax: Axes) -> None:
    """The panel's text when σ = 0: there is no distribution to draw."""
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


def _histogram_layer(ax: Axes, z: np.ndarray) -> None:
    """The standardised llr of the replicates as a density histogram.

    The bars seaborn's ``histplot(stat="density")`` draws, drawn directly
    as one collection of rectangles: ``histplot`` also builds every tick
    label of the panel to set its axis labels (replaced here anyway), and one
    patch per bar costs a limits update each.
    """
    heights, edges = np.histogram(z, bins=np.histogram_bin_edges(z, _bins(z)), density=True)
    left, right = edges[:-1], edges[1:]
    zero = np.zeros_like(heights)
    corners = np.stack([left, zero, left, heights, right, heights, right, zero], axis=1).reshape(-1, 4, 2)
    bars = PolyCollection(
        corners,
        facecolors=to_rgba(COLOURS[LLR.name], 0.45),
        edgecolors="white",
        linewidths=0.3,
        label=f"{len(z):,} replicates",
    )
    bars.sticky_edges.y[:] = (0, np.inf)  # as histplot: the bars rest on the axis
    ax.add_collection(bars, autolim=True)
    ax.autoscale_view()


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
    scale = 1.0 / unit_size(str(analytic.get("units", "nats")))
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
    for est in registry.names((CROSS_ENTROPY, ENTROPY, LLR)):
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


def convergence_figure(
    summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None
) -> Figure:
    """One panel per case: :func:`plot_convergence`."""
    return _per_case(
        plot_convergence,
        summary,
        analytic,
        config=config,
        suptitle="The normalised log-likelihood ratio converges to KL(p‖q)"
        + (" (its rate, for Markov sources)" if (analytic["family"] == MarkovPair.family).any() else ""),
    )


def paths_figure(
    replicates: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None, paths: int = 20
) -> Figure:
    """One panel per case: :func:`plot_paths`."""
    return _per_case(
        plot_paths,
        replicates,
        analytic,
        config=config,
        suptitle=f"{paths} sample paths: the law of large numbers",
        paths=paths,
    )


def error_figure(summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None) -> Figure:
    """One panel per case: :func:`plot_error`."""
    return _per_case(
        plot_error,
        summary,
        analytic,
        config=config,
        suptitle="Root-mean-square error of each estimator: slope −½ on log–log axes",
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
    return _per_case(
        plot_decomposition,
        summary,
        analytic,
        config=config,
        suptitle="Cross-entropy = entropy + KL: minimising cross-entropy minimises KL",
    )
