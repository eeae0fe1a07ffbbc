"""The sweep figure: an estimator at a few sample sizes against a grid's swept parameter.

The nested-loop view of a grid of cases (``grid:`` in a config; :mod:`sim.config.grids`): a swept
parameter on the x axis, one line per combination of the other swept parameters, one panel per
sample size.  Simulated values are markers (±2 MCSE), the exact value at that n a solid line, and
the n → ∞ value a dashed one.  What is drawn is the resolved config's ``sweep`` (x, n, estimator
and the mean, bias or RMSE), whose defaults :func:`sim.config.grids.read_sweep` fills in: this
module chooses nothing itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..config import grids
from .style import LABELS, Config, _ax, _facets, _suptitle, _title, _units

#: A prefix no summary.csv column has, for the swept values' columns while they are merged with it.
_SWEPT = "swept:"
#: How each quantity's axis and title name the estimator.
_WHAT = {"mean": "", "bias": "bias of ", "rmse": "RMSE of "}
#: Line colours of the sweep's groups (seaborn's colour-blind palette, as the other figures').
_PALETTE = [tuple(c) for c in sns.color_palette("colorblind")]


class Sweep(NamedTuple):
    """What a sweep panel shows: cases' swept values, the x parameter, and the lines' parameters.

    Attributes
    ----------
    values : pandas.DataFrame
        One row per grid case: ``case`` and one column per swept label.
    x : str
        The swept label on the x axis.
    hue : list of str
        The other swept labels: one line per combination of their values.
    """

    values: pd.DataFrame
    x: str
    hue: list[str]


def sweep_of(config: Config | None) -> Sweep | None:
    """The sweep of a resolved config: the first grid entry that sweeps its ``sweep.x`` (None
    without a grid whose swept parameters include numbers to draw against)."""
    x = ((config or {}).get("sweep") or {}).get("x")
    for entry in grids.entries((config or {}).get("grid") or []):
        if isinstance(entry, dict) and x in [s.label for s in grids.numeric_sweeps(entry)]:
            rows = [{"case": made.name} | made.values for made in grids.expand(entry)]
            hue = [s.label for s in grids.sweeps(entry) if s.label != x]
            return Sweep(pd.DataFrame(rows), x, hue)
    return None


def plot_sweep(
    summary: pd.DataFrame,
    sweep: Sweep,
    *,
    n: int,
    estimator: str,
    y: str = "mean",
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """``estimator``'s mean (or bias, or RMSE) at ``n`` against the swept parameter, one line per
    other parameter: simulated values as markers (±2 MCSE for the mean and the bias), the exact
    value at n as a line where it is known, and the n → ∞ value dashed (the target; 0 for the bias).

    Parameters
    ----------
    summary : pandas.DataFrame
        ``summary.csv`` (any cases; those of the sweep are drawn).
    sweep : Sweep
        The grid's cases and parameters (:func:`sweep_of`).
    n : int
        The sample size.
    estimator : str
        The estimator's name.
    y : {"mean", "bias", "rmse"}
        What is drawn.
    ax : matplotlib.axes.Axes, optional
        Where to draw; the current Axes by default.
    title : str
        Panel title (default ``n = …``).
    """
    ax = _ax(ax)
    rows = summary[(summary.n == n) & (summary.estimator == estimator)]
    # the swept values' columns renamed apart from summary.csv's (a grid may sweep a "mean" or an "sd")
    swept = {label: f"{_SWEPT}{label}" for label in sweep.values.columns if label != "case"}
    x, hue = swept[sweep.x], [swept[h] for h in sweep.hue]
    table = sweep.values.rename(columns=swept).merge(rows, on="case").sort_values(x)
    groups = table.groupby(hue, sort=True) if hue else [((), table)]
    for (key, part), colour in zip(groups, itertools.cycle(_PALETTE), strict=False):
        label = ", ".join(f"{h} = {_short(v)}" for h, v in zip(sweep.hue, np.atleast_1d(key), strict=True))
        _draw_line(ax, _quantity(part, y), x, colour, label)
    _legend_keys(ax, y)
    values = sweep.values[sweep.x].to_numpy(dtype=float)
    if values.min() > 0 and values.max() / values.min() >= 30:
        ax.set_xscale("log")
    ax.set_xlabel(sweep.x)
    what = _WHAT[y]
    ax.set_ylabel(f"{what}{LABELS[estimator]} ({_units(summary)})")
    _title(ax, title or f"n = {n:,}")
    return ax


def _legend_keys(ax: Axes, y: str) -> None:
    """The legend's key to the line styles (drawn in grey, with no data)."""
    ax.plot([], [], color="0.3", linewidth=1.1, label=f"exact {y} at n")
    if y != "rmse":
        ax.plot([], [], color="0.3", linewidth=0.9, linestyle="--", label="n → ∞")
    ax.errorbar([], [], yerr=[], fmt="o", color="0.3", markersize=3.5, label="simulated ± 2 MCSE")


def _quantity(part: pd.DataFrame, y: str) -> pd.DataFrame:
    """The rows as (x columns …, ``value``, ``error``, ``exact``, ``limit``) for quantity ``y``."""
    out = part.copy()
    bias_exact = part["exact_mean"] - part["target"]
    if y == "mean":
        out["value"], out["error"], out["exact"], out["limit"] = (
            part["mean"],
            part["mcse"],
            part["exact_mean"],
            part["target"],
        )
    elif y == "bias":
        out["value"], out["error"], out["exact"], out["limit"] = part["bias"], part["mcse"], bias_exact, 0.0
    else:  # the RMSE: its exact value where the exact mean and sd are both known
        out["value"], out["error"], out["limit"] = part["rmse"], np.nan, np.nan
        out["exact"] = np.sqrt(bias_exact**2 + part["exact_sd"] ** 2)
    return out


def _draw_line(ax: Axes, part: pd.DataFrame, x: str, colour, label: str) -> None:
    """One line of the sweep: simulated values (± 2 MCSE), the exact value at n, the limit."""
    xs = part[x].to_numpy(dtype=float)
    ax.errorbar(
        xs, part["value"], yerr=2.0 * part["error"].fillna(0.0), fmt="o", color=colour,
        markersize=3.5, capsize=2, linewidth=0.9, label=label or None,
    )  # fmt: skip
    if part["exact"].notna().any():
        ax.plot(xs, part["exact"], color=colour, linewidth=1.1)
    if part["limit"].notna().any():
        ax.plot(xs, part["limit"], color=colour, linewidth=0.9, linestyle="--", alpha=0.7)


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_figure(summary: pd.DataFrame, analytic: pd.DataFrame, *, config: Config | None = None) -> Figure:
    """One panel per sample size of the config's ``sweep``: :func:`plot_sweep` of its grid."""
    sweep = sweep_of(config)
    if sweep is None:
        raise ValueError("the config has no grid with a numeric swept parameter to draw")
    options = config["sweep"]
    estimator, y, sizes = options["estimator"], options["y"], list(options["n"])
    what = _WHAT[y] + f"{LABELS[estimator]} against {sweep.x}"
    what += f", one line per {', '.join(sweep.hue)}" if sweep.hue else ""
    return _facets(
        sizes,
        lambda ax, n: plot_sweep(summary, sweep, n=n, estimator=estimator, y=y, ax=ax),
        suptitle=_suptitle(f"Sweep: {what}", config),
        columns=min(4, len(sizes)),
    )


def has_sweep(config: Mapping | None) -> bool:
    """Whether a resolved config's grid supports the sweep figure."""
    return sweep_of(config) is not None
