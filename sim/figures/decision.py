"""The ``testing`` figure: how fast the likelihood-ratio test stops picking the wrong model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..decision import coin_p_wrong, coin_stein
from ..distributions import TIE, unit_size
from ..registry import LLR, P_WRONG, P_WRONG_TILTED, PLUGIN_KL
from .style import THEORY, Config, _ax, _coins, _facets, _suptitle, _title, case_titles, colour

#: Sample sizes of the exact curves (beyond the checkpoints, which may be few): a
#: log-spaced grid, so drawing them costs the same at n = 10¹² as at n = 10³.
CURVE_POINTS = 60
#: The Stein exponent's exact curve runs at least this far.
STEIN_MAX_N = 100_000
#: Beyond this ratio of largest to smallest n, log₁₀ p_wrong against a linear n
#: would squeeze every point but the last against the axis: the panel shows the
#: exponent −(1/n) log p_wrong against a logarithmic n instead.
EXPONENT_SPAN = 1e4


def _grid(ns: np.ndarray) -> np.ndarray:
    """:data:`CURVE_POINTS` log-spaced sample sizes over the range of ``ns``, and ``ns`` itself.

    The checkpoints are included so that the exact curve, jagged at small n
    (a lattice), passes through the points simulated there.
    """
    ns = np.asarray(ns, dtype=np.int64)
    lo, hi = max(1, int(ns.min())), int(ns.max())
    grid = np.geomspace(lo, hi, CURVE_POINTS).round().astype(np.int64)
    return np.union1d(grid, ns[ns >= 1])


def _log_name(units: str) -> str:
    """The logarithm whose base matches ``units``: log₂ for bits, ln for nats."""
    return "log₂" if units == "bits" else "ln"


def _decay(units: str, rate: str) -> str:
    """exp(−n·C) in nats, 2^(−n·C) in bits: the decay law of a rate given in ``units``."""
    return f"2^(−n·{rate})" if units == "bits" else f"exp(−n·{rate})"


@dataclass
class _Drawn:
    """What a p_wrong panel has drawn so far: the last point of its last layer, and every value.

    The slope −C starts at :attr:`anchor`, (n, y); the exponent's axis turns
    logarithmic when the values in :attr:`shown` span more than a factor 100.
    """

    anchor: tuple[float, float] | None = None
    shown: list[np.ndarray] = field(default_factory=list)

    def add(self, n: float, values: np.ndarray) -> None:
        """Record a layer drawn against sample sizes ending at ``n``."""
        self.anchor = (n, float(values[-1]))
        self.shown.append(values)


def plot_p_wrong(
    summary: pd.DataFrame,
    analytic: Mapping,
    *,
    coin: tuple[float, float] | None = None,
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """P_p(llr_n ≤ 0) against n: simulated points with ±2 MCSE bars, the exact
    curve for coins, and its rate C(p, q), the Chernoff information.

    Over at most :data:`EXPONENT_SPAN` in n the panel shows log₁₀ p_wrong
    against n, with the slope −C; over a wider range (say up to n = 10¹²,
    where log₁₀ p_wrong ≈ −10¹⁰) it shows the exponent −(1/n) log p_wrong,
    in the experiment's units, against log n, approaching C.
    """
    ax = _ax(ax)
    units = str(analytic.get("units", "nats"))
    scale = unit_size(units)  # C is stored in the config's units
    c = float(analytic["chernoff"]) * scale  # nats
    ns = np.unique(summary.n.to_numpy())
    exponent = len(ns) > 0 and ns.max() > EXPONENT_SPAN * max(1, ns.min())
    drawn = _Drawn()
    _estimates_layer(ax, summary, drawn, exponent=exponent, scale=scale)
    if coin is not None:
        _exact_p_wrong_layer(ax, coin, ns, drawn, exponent=exponent, scale=scale)
    if exponent:
        _exponent_rate(ax, c, drawn, scale=scale, units=units)
    else:
        _log10_slope(ax, c, ns, drawn)
    ax.set_xlabel("sample size n")
    _title(ax, title or str(analytic["case"]), f"  [C = {float(analytic['chernoff']):.4g} {units}]")
    return ax


def _estimates_layer(ax: Axes, summary: pd.DataFrame, drawn: _Drawn, *, exponent: bool, scale: float) -> None:
    """The plain and tilted estimates with ±2 MCSE bars, where they are positive."""
    for spec in (P_WRONG, P_WRONG_TILTED):
        s = summary[(summary.estimator == spec.name) & (summary["mean"] > 0)].sort_values("n")
        if s.empty:
            continue
        mean, mcse = s["mean"].to_numpy(), s.mcse.to_numpy()
        low, high = np.log(np.maximum(mean - 2 * mcse, mean * 1e-3)), np.log(mean + 2 * mcse)
        if exponent:  # −(1/n) log p: the upper bar is the lower probability
            n = s.n.to_numpy(dtype=float)
            mid, lo, hi = -np.log(mean) / n / scale, -high / n / scale, -low / n / scale
        else:
            mid, lo, hi = np.log10(mean), low / math.log(10), high / math.log(10)
        ax.errorbar(
            s.n,
            mid,
            yerr=[mid - lo, hi - mid],
            fmt=spec.marker,
            color=colour(spec),
            markersize=4,
            capsize=2,
            label=spec.label,
        )
        drawn.add(float(s.n.iloc[-1]), mid)


def _exact_p_wrong_layer(
    ax: Axes, coin: tuple[float, float], ns: np.ndarray, drawn: _Drawn, *, exponent: bool, scale: float
) -> None:
    """A coin's exact p_wrong (a Binomial tail) on the log-spaced grid of :func:`_grid`."""
    grid = _grid(ns)
    log_p = np.array([coin_p_wrong(coin[0], coin[1], int(n))[1] for n in grid])
    curve = -log_p / grid / scale if exponent else log_p / math.log(10)
    ax.plot(grid, curve, color="black", linewidth=1.2, label="exact (Binomial tail)")
    drawn.add(float(grid[-1]), curve)


def _exponent_rate(ax: Axes, c: float, drawn: _Drawn, *, scale: float, units: str) -> None:
    """The exponent's axes: C(p, q) as a line, log n, and a log scale for values spanning > 100×."""
    if c > 0:
        ax.axhline(c / scale, label="C(p, q)", **THEORY)
        drawn.shown.append(np.array([c / scale]))
    ax.set_xscale("log")
    values = np.concatenate(drawn.shown) if drawn.shown else np.array([])
    if values.size and values.min() > 0 and values.max() > 100 * values.min():
        ax.set_yscale("log")  # a C of 1e-14 next to exponents near 1 at small n
    ax.set_ylabel(f"−(1/n) {_log_name(units)} P(sample favours q) ({units})")


def _log10_slope(ax: Axes, c: float, ns: np.ndarray, drawn: _Drawn) -> None:
    """log₁₀ p_wrong's axes: the slope −C through the last point drawn."""
    if drawn.anchor is not None and c > 0:
        n0, y0 = drawn.anchor
        span = np.array([ns.min(), n0], dtype=float)
        ax.plot(span, y0 - c * (span - n0) / math.log(10), label="slope −C(p, q)", **THEORY)
    ax.set_ylabel("log₁₀ P(sample favours q)")


def simulated_stein(replicates: pd.DataFrame, units: str, alpha: float = 0.05) -> pd.DataFrame:
    """Stein's type-II error from the saved llr replicates, by importance sampling.

    At each n the test decides q when llr_n < τ̂, the replicates' α-quantile,
    and at llr_n = τ̂ (an atom, for a lattice llr) with the probability that
    makes the type-I error under p exactly α, as the exact test does; then
    β_n = P_q(decide p) = E_p[exp(−n·llr_n)·1{decide p}]: the samples from p
    reweighted by the likelihood ratio q/p.  Returns n, the exponent −(1/n) log β̂_n (in
    ``units``) and its standard error (delta method), in log space throughout.
    """
    scale = unit_size(units)
    rows = []
    for n, group in replicates.groupby("n"):
        llr = group[LLR.name].to_numpy() * scale
        tau = np.quantile(llr, alpha)
        tie = np.abs(llr - tau) <= TIE * max(1.0, abs(tau))
        above = (llr > tau) & ~tie
        # randomise at the atom llr = τ, as the exact test does, so the type-I error is α
        below, at = float(np.mean((llr < tau) & ~tie)), float(np.mean(tie))
        keep_atom = 1.0 - (min(max((alpha - below) / at, 0.0), 1.0) if at > 0 else 0.0)
        decide_p = above | tie
        if not decide_p.any():
            continue
        # exp only where the test decides p: elsewhere −n·llr can be ~10¹⁰ and overflow
        log_w = -n * llr[decide_p]
        top = float(log_w.max())
        weights = np.zeros(llr.size)
        weights[decide_p] = np.exp(log_w - top) * np.where(tie[decide_p], keep_atom, 1.0)
        mean, sd = float(weights.mean()), float(weights.std(ddof=1))
        if not mean > 0:
            continue
        rate = -(top + math.log(mean)) / n
        rows.append({"n": n, "rate": rate / scale, "se": sd / math.sqrt(llr.size) / mean / n / scale})
    return pd.DataFrame(rows, columns=["n", "rate", "se"])


def plot_stein(
    analytic: Mapping,
    ns: np.ndarray,
    *,
    replicates: pd.DataFrame | None = None,
    coin: tuple[float, float] | None = None,
    ax: Axes | None = None,
    title: str = "",
    alpha: float = 0.05,
) -> Axes:
    """−(1/n) log β_n of the level-α Neyman–Pearson test approaching KL(p‖q) (Stein's lemma).

    Exact for coins (:func:`sim.decision.coin_stein`); simulated from the
    replicates' llr by reweighting with q/p (:func:`simulated_stein`) for any case.
    """
    ax = _ax(ax)
    units = str(analytic.get("units", "nats"))
    if replicates is not None and LLR.name in replicates.columns:
        _simulated_stein_layer(ax, replicates, units, alpha)
    if coin is not None:
        _exact_stein_layer(ax, coin, ns, units, alpha)
    if coin is None and (replicates is None or LLR.name not in replicates.columns):
        _no_stein_curve(ax, ns)
    ax.axhline(float(analytic["kl_pq"]), label="KL(p‖q)", **THEORY)
    ax.set_xscale("log")
    ax.set_xlabel("sample size n")
    ax.set_ylabel(f"error exponent ({units})")
    _title(ax, title or str(analytic["case"]), f"  [Stein, α = {alpha:g}]")
    return ax


def _simulated_stein_layer(ax: Axes, replicates: pd.DataFrame, units: str, alpha: float) -> None:
    """:func:`simulated_stein` with ±2 standard-error bars."""
    sim = simulated_stein(replicates, units, alpha)
    ax.errorbar(
        sim.n,
        sim.rate,
        yerr=2 * sim.se,
        fmt="D",
        color=colour(PLUGIN_KL),
        markersize=4,
        capsize=2,
        label="simulated (samples from p reweighted by q/p)",
    )


def _exact_stein_layer(ax: Axes, coin: tuple[float, float], ns: np.ndarray, units: str, alpha: float) -> None:
    """A coin's exact exponent (:func:`sim.decision.coin_stein`), on a grid to at least :data:`STEIN_MAX_N`."""
    scale = unit_size(units)
    grid = _grid(np.append(ns, [1, max(int(ns.max()), STEIN_MAX_N)]))  # its approach to KL is slow, ~1/√n
    rates = np.array([-coin_stein(coin[0], coin[1], int(n), alpha)[1] / n for n in grid]) / scale
    ax.plot(
        grid,
        rates,
        color=colour(LLR),
        linewidth=1.2,
        label=f"exact −(1/n) {_log_name(units)} β_n, type-I error α = {alpha:g}",
    )


def _no_stein_curve(ax: Axes, ns: np.ndarray) -> None:
    """Neither curve can be drawn: say why, over the checkpoints' range of n."""
    ax.text(
        0.5,
        0.5,
        "no simulated curve: it needs per-replicate\nllr values (save_replicates: false)",
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=8,
        color="0.3",
    )
    ax.set_xlim(max(1.0, float(ns.min())), max(10.0 * float(ns.min()), float(ns.max())))


def testing_figure(
    summary: pd.DataFrame,
    analytic: pd.DataFrame,
    *,
    replicates: pd.DataFrame | None = None,
    config: Config | None = None,
) -> Figure:
    """Per case: :func:`plot_p_wrong` beside :func:`plot_stein`."""
    titles, coins = case_titles(config), _coins(config)
    panels = [(a, side) for a in analytic.to_dict("records") for side in (P_WRONG.name, "stein")]

    def draw(ax: Axes, item) -> None:
        a, side = item
        rows = summary[summary.case == a["case"]]
        if side == P_WRONG.name:
            plot_p_wrong(rows, a, coin=coins.get(a["case"]), ax=ax, title=titles.get(a["case"], ""))
        else:
            reps = None if replicates is None else replicates[replicates.case == a["case"]]
            ns = np.unique(rows.n.to_numpy())
            plot_stein(
                a, ns, replicates=reps, coin=coins.get(a["case"]), ax=ax, title=titles.get(a["case"], "")
            )

    return _facets(
        panels,
        draw,
        suptitle=_suptitle(
            "The likelihood-ratio test: the wrong model's chance falls like "
            + _decay(str(analytic.units.iloc[0]) if "units" in analytic and len(analytic) else "nats", "C"),
            config,
        ),
        columns=2,
    )
