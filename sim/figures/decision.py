"""The ``testing`` figure: how fast the likelihood-ratio test stops picking the wrong model."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..decision import coin_p_wrong, coin_stein
from ..distributions import LN2
from .style import COLOURS, THEORY, Config, _ax, _coins, _facets, _suptitle, _title, case_titles

#: Sample sizes of the exact curves (beyond the checkpoints, which may be few).
CURVE_POINTS = 60
#: The Stein exponent's exact curve runs at least this far.
STEIN_MAX_N = 100_000


def _grid(ns: np.ndarray) -> np.ndarray:
    lo, hi = max(1, int(ns.min())), int(ns.max())
    return np.unique(np.geomspace(lo, hi, CURVE_POINTS).round().astype(np.int64))


def plot_p_wrong(
    summary: pd.DataFrame,
    analytic: Mapping,
    *,
    coin: tuple[float, float] | None = None,
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """log₁₀ P_p(llr_n ≤ 0) against n: simulated points with ±2 MCSE bars, the exact
    curve for coins, and the slope −C(p, q) of the Chernoff information.
    """
    ax = _ax(ax)
    scale = LN2 if analytic.get("units", "nats") == "bits" else 1.0  # C is stored in the config's units
    c = float(analytic["chernoff"]) * scale
    styles = {
        "p_wrong": ("plain Monte Carlo", "o", COLOURS["llr"]),
        "p_wrong_tilted": ("tilted (importance sampling)", "D", COLOURS["plugin_kl"]),
    }
    anchor = None
    for est, (label, marker, colour) in styles.items():
        s = summary[(summary.estimator == est) & (summary["mean"] > 0)].sort_values("n")
        if s.empty:
            continue
        lo = np.log10(np.maximum(s["mean"] - 2 * s.mcse, s["mean"] * 1e-3))
        hi = np.log10(s["mean"] + 2 * s.mcse)
        mid = np.log10(s["mean"])
        ax.errorbar(
            s.n,
            mid,
            yerr=[mid - lo, hi - mid],
            fmt=marker,
            color=colour,
            markersize=4,
            capsize=2,
            label=label,
        )
        anchor = (float(s.n.iloc[-1]), float(mid.iloc[-1]))
    ns = np.unique(summary.n.to_numpy())
    if coin is not None:
        grid = _grid(ns)
        exact = np.array([coin_p_wrong(coin[0], coin[1], int(n))[1] for n in grid]) / math.log(10)
        ax.plot(grid, exact, color="black", linewidth=1.2, label="exact (Binomial tail)")
        anchor = (float(grid[-1]), float(exact[-1]))
    if anchor is not None and c > 0:
        n0, y0 = anchor
        span = np.array([ns.min(), n0], dtype=float)
        ax.plot(span, y0 - c * (span - n0) / math.log(10), label="slope −C(p, q)", **THEORY)
    ax.set_xlabel("sample size n")
    ax.set_ylabel("log₁₀ P(sample favours q)")
    _title(ax, title or str(analytic["case"]), f"  [C = {float(analytic['chernoff']):.4g}]")
    return ax


def plot_stein(
    analytic: Mapping,
    ns: np.ndarray,
    *,
    coin: tuple[float, float] | None = None,
    ax: Axes | None = None,
    title: str = "",
    alpha: float = 0.05,
) -> Axes:
    """−(1/n) log β_n of the level-α Neyman–Pearson test approaching KL(p‖q) (Stein's lemma), for coins."""
    ax = _ax(ax)
    scale = LN2 if analytic.get("units", "nats") == "bits" else 1.0
    if coin is None:
        ax.text(
            0.5,
            0.5,
            "Stein exponent: exact for coins only\n(not yet simulated for categorical cases)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=8,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        grid = _grid(np.array([1, max(int(ns.max()), STEIN_MAX_N)]))  # its approach to KL is slow, ~1/√n
        rates = np.array([-coin_stein(coin[0], coin[1], int(n), alpha)[1] / n for n in grid]) / scale
        ax.plot(
            grid,
            rates,
            color=COLOURS["llr"],
            marker="o",
            markersize=3,
            label=f"−(1/n) log β_n, type-I error α = {alpha:g}",
        )
        ax.axhline(float(analytic["kl_pq"]), label="KL(p‖q)", **THEORY)
        ax.set_xscale("log")
        ax.set_xlabel("sample size n")
        ax.set_ylabel(f"error exponent ({analytic.get('units', 'nats')})")
    _title(ax, title or str(analytic["case"]), "  [Stein]")
    return ax


def testing_figure(summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None) -> Figure:
    """Per case: :func:`plot_p_wrong` beside :func:`plot_stein`."""
    titles, coins = case_titles(config), _coins(config)
    panels = [(a, side) for a in analytic.to_dict("records") for side in ("p_wrong", "stein")]

    def draw(ax: Axes, item) -> None:
        a, side = item
        rows = summary[summary.case == a["case"]]
        if side == "p_wrong":
            plot_p_wrong(rows, a, coin=coins.get(a["case"]), ax=ax, title=titles.get(a["case"], ""))
        else:
            plot_stein(
                a,
                np.unique(rows.n.to_numpy()),
                coin=coins.get(a["case"]),
                ax=ax,
                title=titles.get(a["case"], ""),
            )

    return _facets(
        panels,
        draw,
        suptitle=_suptitle(
            "The likelihood-ratio test: the wrong model's chance falls like exp(−n·C)", config
        ),
        columns=2,
    )
