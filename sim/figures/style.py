"""Shared style: colours, labels, titles and the faceted layout of every figure."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import registry
from ..config.grids import written_cases
from .layout import finish

KINDS = ("convergence", "paths", "error", "clt", "decomposition")
FIT_KINDS = ("fit_trajectory", "fit_convergence")
FORMATS = ("png", "svg", "pdf")
DPI = 200

_PALETTE = sns.color_palette("colorblind")


def colour(spec: registry.Estimator) -> tuple[float, float, float]:
    """An estimator's colour (its registry entry's index into the colourblind palette)."""
    return _PALETTE[spec.colour]


class _ByEstimator(dict):
    """One attribute of each information estimator, by name; parameterised ones
    (``smoothed_kl[alpha=0.5]``) are looked up in the registry when first asked for."""

    def __init__(self, attribute: Callable[[registry.Estimator], Any]):
        super().__init__({e.name: attribute(e) for e in registry.DRAWN})
        self._attribute = attribute

    def __missing__(self, name: str) -> Any:
        return self._attribute(registry.get(name))  # not stored: the mapping lists the fixed ones

    def get(self, name: str, default: Any = None) -> Any:
        """The attribute of ``name``, or ``default`` if no estimator has that name."""
        try:
            return self[name]
        except ValueError:
            return default


#: One colour per information estimator of a convergence experiment, the same in every figure.
COLOURS = _ByEstimator(colour)
#: Markers tell apart estimators whose curves coincide (llr and cross-entropy when H(p) is constant).
MARKERS = _ByEstimator(lambda e: e.marker)
#: Drawing order: llr last, on top.
ORDER = registry.names(registry.DRAWN)
THEORY = {"color": "black", "linestyle": "--", "linewidth": 1.1}
LABELS = _ByEstimator(lambda e: e.label)
TARGET_OF = _ByEstimator(lambda e: e.target)


def in_order(names) -> list[str]:
    """The information estimators among ``names``, in drawing order (llr last, on top)."""
    drawn = []
    for name in dict.fromkeys(names):
        spec = registry.get(name)
        if not spec.probability and spec.form is not registry.Form.FITTED:
            rank = ORDER.index(name) if name in ORDER else len(ORDER)
            drawn.append((spec.order, rank, name))
    return [name for *_, name in sorted(drawn)]


Config = Mapping[str, Any]


# --------------------------------------------------------------------------
# Titles


def describe_distribution(spec: Any, *, max_values: int = 6) -> str:
    """A short text for a distribution as written in a config.

    >>> describe_distribution(0.5)
    '0.5'
    >>> describe_distribution({"zipf": {"k": 50000, "s": 1.07}})
    'Zipf(K=50,000, s=1.07)'
    >>> describe_distribution({"normal": {"mean": 0.0, "sd": 2.0}})
    'Normal(mean=0, sd=2)'
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
        if kind == "markov":
            start = "" if args.get("initial", "stationary") == "stationary" else ", given start"
            return f"Markov chain (K={len(args['transition'])}{start})"
        if isinstance(args, dict):  # a parametric family: Normal(mean=0, sd=1), Poisson(rate=3), …
            return f"{str(kind).capitalize()}(" + ", ".join(f"{k}={v:g}" for k, v in args.items()) + ")"
    return str(spec)


def case_titles(config: Config | None) -> dict[str, str]:
    """Case name → ``"name: p = …, q = …"`` from a resolved config."""
    titles: dict[str, str] = {}
    for case in written_cases(config or {}):
        p, q = describe_distribution(case["p"]), describe_distribution(case["q"])
        titles[case["name"]] = f"{case['name']}: p = {p}, q = {q}"
    return titles


def _coins(config: Config | None) -> dict[str, tuple[float, float]]:
    """Cases whose p and q are both coins: name → (P_p(heads), P_q(heads))."""
    out = {}
    for case in written_cases(config or {}):
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


def _facets(
    panels: Sequence[Any],
    draw: Callable[[Axes, Any], None],
    *,
    suptitle: str,
    columns: int = 4,
) -> Figure:
    """Lay out one panel per item, up to ``columns`` per row, with one shared legend."""
    count = max(1, len(panels))
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    width = max(6.5, 4.4 * cols)
    # titles at the top of their panel, where matplotlib puts them when nothing else is there,
    # without asking every tick label where it is at every draw (layout.lay_out)
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"), mpl.rc_context({"axes.titley": 1.0}):
        fig = Figure(figsize=(width, 3.4 * rows + 1.2))
        grid = fig.subplots(rows, cols, squeeze=False)
        axes = grid.ravel()
        for ax, item in zip(axes, panels, strict=False):
            draw(ax, item)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
    handles: dict[str, Any] = {}
    for ax in axes[: len(panels)]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    legend = None
    if handles:
        legend = fig.legend(
            list(handles.values()),
            list(handles.keys()),
            loc="lower center",
            ncols=min(4, len(handles), max(2, cols)),
            frameon=False,
            fontsize=8,
        )
    chars = int(width * 10)
    title = fig.suptitle("\n".join(textwrap.fill(line, chars) for line in suptitle.splitlines()), fontsize=11)
    finish(fig, grid, legend=legend, suptitle=title, dpi=DPI)
    return fig


def _per_case(
    plot, frame: pd.DataFrame, analytic: pd.DataFrame, *, config, suptitle: str, titles=None, **options
) -> Figure:
    """One panel per case: ``plot(frame's rows of the case, analytic row, ax=…, title=…, **options)``."""
    titles = case_titles(config) if titles is None else titles
    return _facets(
        _rows(analytic),
        lambda ax, a: plot(
            frame[frame.case == a["case"]], a, ax=ax, title=titles.get(a["case"], ""), **options
        ),
        suptitle=_suptitle(suptitle, config),
    )


def _rows(analytic: pd.DataFrame) -> list[dict]:
    return analytic.to_dict("records")


def _suptitle(text: str, config: Config | None) -> str:
    if not config:
        return text
    desc = config.get("description") or ""
    return f"{config.get('name', '')}: {text}" + (f"\n{desc}" if desc else "")
