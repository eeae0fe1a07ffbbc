"""The estimators figure: which estimator of KL(p‖q) to trust at which n."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import registry
from .style import COLOURS, LABELS, MARKERS, TARGET_OF, Config, _ax, _per_case, _title, _units, in_order

#: The analytic column the estimators compared here estimate.
KL = registry.LLR.target


def kl_estimators(summary: pd.DataFrame) -> list[str]:
    """The estimators of KL(p‖q) in ``summary``, in drawing order."""
    return [e for e in in_order(summary.estimator) if TARGET_OF[e] == KL]


def compares_estimators(summary: pd.DataFrame) -> bool:
    """Whether an experiment asked for an estimator of KL beyond the default ones (the figure is drawn)."""
    return bool(set(kl_estimators(summary)) - set(registry.names(registry.CONVERGENCE)))


def plot_estimators(
    summary: pd.DataFrame, analytic: Mapping, *, ax: Axes | None = None, title: str = ""
) -> Axes:
    """|bias| and RMSE of every estimator of KL(p‖q) against n, log–log.

    Per estimator, in its colour: its RMSE over the replicates (solid, with
    markers) and its exact |bias| = |exact_mean − KL| (dashed), so that where
    a corrected estimator overtakes the plug-in shows as crossing lines.
    Zeros cannot be drawn on a log axis: unbiased estimators (exact bias 0)
    and exact ones (RMSE 0) are named in a note instead.

    Parameters
    ----------
    summary : pandas.DataFrame
        Rows of ``summary.csv`` for one case.
    analytic : mapping
        The case's row of ``analytic.csv`` (unused but for its name).
    ax : matplotlib.axes.Axes, optional
        Where to draw; the current Axes by default.
    title : str
        Panel title.
    """
    ax = _ax(ax)
    unbiased, exact = [], []
    for est in kl_estimators(summary):
        s = summary[summary.estimator == est].sort_values("n")
        short = est
        if not _positive_line(ax, s.n, s.rmse, est, s.target, marker=MARKERS[est], label=LABELS[est]):
            exact.append(short)
        bias = (s.exact_mean - s.target).abs()
        if s.exact_mean.notna().any() and not _positive_line(ax, s.n, bias, est, s.target, linestyle="--"):
            unbiased.append(short)
    for style, label in (("-", "RMSE over the replicates"), ("--", "exact |bias|")):
        ax.plot([], [], color="0.3", linestyle=style, label=label)  # the legend's key to line styles
    notes = [
        f"{what}: {', '.join(names)}" for what, names in (("unbiased", unbiased), ("RMSE 0", exact)) if names
    ]
    if notes:
        ax.text(0.02, 0.03, "; ".join(notes), transform=ax.transAxes, fontsize=7, color="0.3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sample size n")
    ax.set_ylabel(f"|bias| (dashed), RMSE (solid) ({_units(summary)})")
    _title(ax, title or str(analytic["case"]))
    return ax


def _positive_line(ax: Axes, n, values, est: str, target, **style) -> bool:
    """Draw ``values`` against n where they are above rounding of the target; False if none is.

    The floor is relative to the target (KL), so a bias of 1e-27 against a KL of 2e-18 is drawn.
    """
    keep = (values > 1e-12 * np.abs(target)).to_numpy()
    if not keep.any():
        return False
    ax.plot(
        n[keep],
        values[keep],
        color=COLOURS[est],
        markersize=4,
        markerfacecolor="none",
        linewidth=1.2,
        **style,
    )
    return True


def estimators_figure(
    summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None
) -> Figure:
    """One panel per case: :func:`plot_estimators`."""
    return _per_case(
        plot_estimators,
        summary,
        analytic,
        config=config,
        suptitle="Which estimator of KL? Exact |bias| (dashed) and RMSE (solid) against n",
    )
