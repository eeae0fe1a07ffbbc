"""Fit figures: fit_trajectory and fit_convergence."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..distributions import unit_size
from ..registry import CROSS_ENTROPY, ENTROPY, KL_FITTED
from .style import THEORY, Config, _ax, _facets, _per_case, _suptitle, _title, _units, colour


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
        color=colour(CROSS_ENTROPY),
        marker="s",
        markersize=4,
        label="H(p, q_θ): population cross-entropy",
    )
    ax.plot(
        t.step,
        t.empirical_cross_entropy,
        color=colour(CROSS_ENTROPY),
        linestyle=":",
        marker="s",
        markerfacecolor="none",
        markersize=4,
        label="empirical cross-entropy (the loss minimised)",
    )
    ax.plot(t.step, t.kl, color=colour(KL_FITTED), marker="o", markersize=4, label="KL(p‖q_θ)")
    ax.axhline(float(t.entropy.iloc[0]), color=colour(ENTROPY), linestyle="--", linewidth=1.2, label="H(p)")
    ax.plot(
        t.step,
        t.gap,
        linestyle="none",
        color=colour(ENTROPY),
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
    s = summary[summary.estimator == KL_FITTED.name].sort_values("n")
    _fitted_kl_layer(ax, s)
    n = s.n.to_numpy(dtype=float)
    floor, d = float(analytic["kl_floor"]), int(analytic["parameters"])
    scale = 1.0 / unit_size(str(analytic.get("units", "nats")))
    ax.plot(n, floor + scale * d / (2 * n), label="floor + d/(2N)", **THEORY)
    if floor > 1e-12:
        ax.axhline(floor, color="0.35", linestyle=":", linewidth=1.4, label="misspecification floor (exact)")
    if "infinite_fraction" in s.columns and (s.infinite_fraction > 0).any():
        _infinite_note(ax, s)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sample size N")
    ax.set_ylabel(f"KL(p‖q_θ̂) ({_units(s)})")
    _title(ax, title or str(analytic["case"]), f"  [{analytic['model']}, d = {d}]")
    return ax


def _fitted_kl_layer(ax: Axes, s: pd.DataFrame) -> None:
    """The fitted KL's 5–95% band and mean where finite, and its exact expectation where known."""
    finite = np.isfinite(s["mean"])
    ax.fill_between(
        s.n[finite],
        s.q05[finite],
        s.q95[finite],
        color=colour(KL_FITTED),
        alpha=0.2,
        linewidth=0,
        label="5–95% of replicates",
    )
    ax.plot(
        s.n[finite],
        s["mean"][finite],
        color=colour(KL_FITTED),
        marker="o",
        markersize=3,
        label="mean KL(p‖q_θ̂)",
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


def _infinite_note(ax: Axes, s: pd.DataFrame) -> None:
    """Name the largest fraction of fits at infinity (KL = ∞), which the log axis cannot show."""
    worst = s.loc[s.infinite_fraction.idxmax()]
    ax.text(
        0.02,
        0.03,
        f"fit at infinity (KL = ∞) in {worst.infinite_fraction:.0%} of replicates at n = {int(worst.n):,}",
        transform=ax.transAxes,
        fontsize=7,
        color="0.3",
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
    return _per_case(
        plot_fit_convergence,
        summary,
        analytic,
        config=config,
        titles={},  # models have no p and q: each panel is titled by its name and family
        suptitle="KL of the fitted model: to 0 when the family contains p, to its floor when not",
    )
