"""Tidy tables: analytic quantities per case, summaries per case × n × estimator.

Every value is converted to the experiment's units here, at the boundary
between the simulation (nats) and the tables users read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import exact, fitting, registry
from .config import Case, Experiment
from .decision import chernoff, sees_every_event
from .distributions import to_units
from .streaming import TINY

ANALYTIC_COLUMNS = [
    "case",
    "family",
    "k",
    "k_support",
    "units",
    "kl_pq",
    "kl_qp",
    "entropy_p",
    "cross_entropy_pq",
    "llr_sigma",
    "cross_entropy_sigma",
    "entropy_sigma",
    "chernoff",
]

SUMMARY_COLUMNS = [
    "case",
    "n",
    "estimator",
    "units",
    "target",
    "mean",
    "sd",
    "mcse",
    "bias",
    "rmse",
    "q05",
    "q50",
    "q95",
    "replicates",
    "exact_mean",
    "exact_sd",
    "z",
    "coverage95",
    "coverage95_mcse",
    "coverage95_exact",
]

#: The columns of a tilted (``p_wrong_tilted``) row left empty when no replicate saw the event.
UNSEEN_EMPTY = ("mean", "sd", "mcse", "bias", "rmse", "z")


def _blank_unseen(stats: dict, unseen: np.ndarray) -> None:
    """Empty the mean, sd and RMSE (and so mcse, bias and z) where ``unseen``.

    A ``p_wrong_tilted`` replicate is w·1{llr_n ≤ 0} ≥ 0; when every one is
    0, no replicate saw the event, and 0 ± 0 would claim a probability known
    to be 0 exactly, while it is only below what R replicates can see (the
    chance one tilted replicate sees it may be 1e-5, as for coins 1e-10 and
    2e-10 at n = 10⁵).  The quantiles stay: 0 is a true quantile of the sample.
    """
    for key in ("mean", "sd", "rmse"):
        stats[key] = np.where(unseen, np.nan, stats[key])


def _unseen(maximum: np.ndarray, estimators, pair, checkpoints) -> np.ndarray:
    """(n, estimators): tilted columns whose largest replicate is 0 though it need not be.

    Only where a replicate that saw the event always has a positive weight
    (:func:`sim.decision.sees_every_event`).  Where weights can underflow
    (e^(−nC) near or below the smallest double), zeros may be seen events
    whose weights rounded to 0, and are then the correctly rounded values:
    they stay, as do the exact mean and sd's zeros.
    """
    out = np.zeros(maximum.shape, dtype=bool)
    for e in _tilted(estimators):
        for j, n in enumerate(checkpoints):
            out[j, e] = maximum[j, e] == 0.0 and sees_every_event(pair, int(n))
    return out


def _tilted(estimators) -> list[int]:
    """Positions of the tilted estimators among ``estimators``."""
    return [e for e, spec in enumerate(registry.specs(estimators)) if spec.tilted]


def _tiny_spread(values: np.ndarray, targets: np.ndarray, stats: dict, estimators) -> None:
    """sd and RMSE of tilted columns of tiny values, computed on values scaled by 2^k.

    Values below ~1e-154 have squares that underflow: an sd of 0 for tilted
    replicates of 1e-200.  Scaling by a power of two is exact, so a column
    whose largest value is below :data:`sim.streaming.TINY` is summarised as
    v·2⁻ᵏ (largest in [½, 1)) and scaled back; no other column changes.
    """
    for e in _tilted(estimators):
        for j in range(values.shape[1]):
            top = float(np.max(np.abs(values[:, j, e]), initial=0.0))
            if 0.0 < top < TINY:
                _scaled_spread(values[:, j, e], float(targets[e]), stats, j, e)


def _scaled_spread(column: np.ndarray, target: float, stats: dict, j: int, e: int) -> None:
    """The sd and RMSE of one column of tiny values, through v·2⁻ᵏ."""
    k = math.frexp(float(np.max(np.abs(column))))[1]
    x = np.ldexp(column, -k)
    target = math.ldexp(target, -k)
    if x.size > 1:
        stats["sd"][j, e] = math.ldexp(float(x.std(ddof=1)), k)
    stats["rmse"][j, e] = math.ldexp(math.sqrt(float(np.mean((x - target) ** 2))), k)


def unseen_notes(summary: pd.DataFrame) -> list[str]:
    """One line per case whose tilted rows were left empty (never saw the event).

    Read from the table itself (empty means), so that what ``sim run``
    prints and ``run.json`` records is what ``summary.csv`` holds.
    """
    tilted = [spec.name for spec in registry.ALL if spec.tilted]
    notes = []
    for name in tilted:
        rows = summary[(summary.estimator == name) & summary["mean"].isna()]
        for case, group in rows.groupby("case", sort=False):
            ns = ", ".join(str(int(n)) for n in group.n)
            r = int(group.replicates.iloc[0])
            notes.append(
                f"case {case}: {name} saw the event in none of {r:,} replicates at n = {ns}; left empty"
            )
    return notes


def _targets(analytic: dict, estimators) -> np.ndarray:
    """Each estimator's limit: an analytic column, or 0 for the probabilities."""
    return np.array(
        [0.0 if spec.probability else analytic[spec.target] for spec in registry.specs(estimators)]
    )


#: ``analytic.csv`` columns that are a mean estimator's limit, computed as its registry entry says;
#: the others are :class:`sim.distributions.Pair` attributes of the same name.
_LIMITS = {spec.target: spec.limit for spec in registry.DEFINING}


def analytic_row(case: Case, units: str) -> dict:
    """The exact quantities of one case, in ``units`` (and any of its pair's :attr:`extra_analytic`)."""
    pair = case.pair
    k, k_support = (pd.NA if v is None else v for v in pair.sizes)
    row = {"case": case.name, "family": pair.family, "k": k, "k_support": k_support, "units": units}
    for col in ANALYTIC_COLUMNS[5:-1]:
        value = getattr(pair, col) if pair.parametric or col not in _LIMITS else _LIMITS[col](pair)
        row[col] = float(to_units(value, units))
    # the Chernoff information of parametric families and Markov cases is not computed (empty)
    row["chernoff"] = math.nan if pair.parametric else float(to_units(chernoff(pair).information, units))
    for col in pair.extra_analytic:
        row[col] = float(to_units(getattr(pair, col), units))
    return row


def analytic_table(experiment: Experiment) -> pd.DataFrame:
    """``analytic.csv``: one row per case; columns only some kinds of case fill come last, if any case has them."""
    rows = [analytic_row(c, experiment.units) for c in experiment.cases]
    extra = list(dict.fromkeys(col for c in experiment.cases for col in c.pair.extra_analytic))
    frame = pd.DataFrame(rows, columns=ANALYTIC_COLUMNS + extra)
    return frame.astype({"k": "Int64", "k_support": "Int64"})  # whole numbers, empty for parametric cases


def summarize_case(
    values: np.ndarray,
    covered: np.ndarray | None = None,
    *,
    case: Case,
    checkpoints: Sequence[int],
    estimators: Sequence[str],
    analytic: dict,
) -> pd.DataFrame:
    """Summaries of one case's replicates, with their exact references.

    Parameters
    ----------
    values : numpy.ndarray
        ``(replicates, len(checkpoints), len(estimators))``, in the units of
        ``analytic``.
    covered : numpy.ndarray, optional
        ``(replicates, len(checkpoints))``: whether |llr − KL| ≤ 1.96σ/√n;
        gives the ``coverage95`` columns of the llr rows.
    case : Case
        The case (its exact quantities come from ``case.pair``).
    checkpoints, estimators : sequence
        Labels of the second and third axes.
    analytic : dict
        The case's row of :func:`analytic_table`.

    Returns
    -------
    pandas.DataFrame
        One row per n × estimator with :data:`SUMMARY_COLUMNS`.  ``exact_mean``
        and ``exact_sd`` are empty where not known exactly, ``z`` where
        ``exact_sd`` is empty or 0.  A ``p_wrong_tilted`` row whose replicates
        are all 0 (none saw the event) has :data:`UNSEEN_EMPTY` empty.
    """
    targets = _targets(analytic, estimators)
    mean, sd, q05, q50, q95, rmse = describe(values, targets)
    rate = covered.mean(axis=0) if covered is not None else None
    stats = {"mean": mean, "sd": sd, "q05": q05, "q50": q50, "q95": q95, "rmse": rmse}
    if values.shape[0]:
        _tiny_spread(values, targets, stats, estimators)
        _blank_unseen(stats, _unseen(values.max(axis=0), estimators, case.pair, checkpoints))
    return _summary_frame(
        case, analytic["units"], checkpoints, estimators, values.shape[0], targets, stats, rate
    )


def _base_frame(
    name, units, checkpoints, estimators, r, targets, stats
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The columns every summary shares, one row per (n, estimator), and the row indices."""
    j, e = np.meshgrid(np.arange(len(checkpoints)), np.arange(len(estimators)), indexing="ij")
    j, e = j.ravel(), e.ravel()
    mean, sd = stats["mean"], stats["sd"]
    frame = pd.DataFrame(
        {
            "case": name,
            "n": np.asarray(checkpoints, dtype=np.int64)[j],
            "estimator": np.asarray(estimators, dtype=object)[e],
            "units": units,
            "target": targets[e],
            "mean": mean[j, e],
            "sd": sd[j, e],
            "mcse": sd[j, e] / np.sqrt(r),
            "bias": mean[j, e] - targets[e],
            "rmse": stats["rmse"][j, e],
            "q05": stats["q05"][j, e],
            "q50": stats["q50"][j, e],
            "q95": stats["q95"][j, e],
            "replicates": r,
        }
    )
    return frame, j, e


def _summary_frame(case, units, checkpoints, estimators, r, targets, stats, coverage_rate) -> pd.DataFrame:
    """Assemble summary rows from (n, estimator)-shaped statistics, with exact references."""
    frame, j, _ = _base_frame(case.name, units, checkpoints, estimators, r, targets, stats)
    ns, names = frame.n.to_numpy(), frame.estimator.to_numpy()
    refs = [registry.get(est).moments(case.pair, int(n)) for n, est in zip(ns, names, strict=True)]
    divisor = registry.divisors(names, units)
    frame["exact_mean"] = exact_mean = np.array([m.mean for m in refs]) / divisor
    frame["exact_sd"] = exact_sd = np.array([m.sd for m in refs]) / divisor
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["z"] = np.where(exact_sd > 0, (frame["mean"] - exact_mean) / (exact_sd / np.sqrt(r)), np.nan)
    cover = np.full(len(frame), np.nan)
    cover_mcse = np.full(len(frame), np.nan)
    cover_exact = np.full(len(frame), np.nan)
    reported = [spec.name for spec in registry.specs(estimators) if spec.coverage]
    if coverage_rate is not None and reported:
        rows = np.flatnonzero(np.isin(names, reported))
        c = coverage_rate[j[rows]]
        cover[rows] = c
        cover_mcse[rows] = np.sqrt(c * (1 - c) / r)
        cover_exact[rows] = [exact.coverage95(case.pair, int(n)) for n in ns[rows]]
    frame["coverage95"] = cover
    frame["coverage95_mcse"] = cover_mcse
    frame["coverage95_exact"] = cover_exact
    return frame[SUMMARY_COLUMNS]


def summarize_stream(
    acc,
    ranges,
    *,
    case: Case,
    checkpoints: Sequence[int],
    estimators: Sequence[str],
    analytic: dict,
) -> pd.DataFrame:
    """Summaries from a :class:`sim.streaming.Accumulator` (``save_replicates: false``).

    Means, sds, MCSEs, biases, RMSEs and coverage are exact up to rounding;
    quantiles are within ``quantile_error`` (an extra column) of the exact
    ones (see :mod:`sim.streaming`).  ``p_wrong_tilted`` rows that never saw
    the event (largest replicate 0) are left empty as in :func:`summarize_case`.
    """
    r = acc.count
    targets = _targets(analytic, estimators)
    (q05, q50, q95), errors = ranges.quantiles(acc, [0.05, 0.5, 0.95])
    k = np.zeros(acc.mean.shape, dtype=np.int64) if ranges.exponent is None else ranges.exponent
    stats = {  # accumulated as v·2⁻ᵏ where tiny (see sim.streaming.Ranges): scaled back
        "mean": np.ldexp(acc.mean, k),
        "sd": stream_sd(acc, ranges),
        "rmse": np.ldexp(np.sqrt(acc.m2 / r + (acc.mean - np.ldexp(targets, -k)) ** 2), k),
        "q05": np.ldexp(q05, k),
        "q50": np.ldexp(q50, k),
        "q95": np.ldexp(q95, k),
    }
    errors = np.ldexp(errors, k)
    _blank_unseen(stats, _unseen(acc.maximum, estimators, case.pair, checkpoints))
    frame = _summary_frame(
        case, analytic["units"], checkpoints, estimators, r, targets, stats, acc.covered / r
    )
    frame["quantile_error"] = errors.max(axis=0).ravel()
    return frame


def stream_sd(acc, ranges) -> np.ndarray:
    """The sd (ddof 1) per (n, estimator) of a :class:`sim.streaming.Accumulator`'s values."""
    k = np.zeros(acc.mean.shape, dtype=np.int64) if ranges.exponent is None else ranges.exponent
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.ldexp(np.sqrt(acc.m2 / (acc.count - 1)), k)


def describe(values: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean, sd (ddof 1), 5/50/95% quantiles and RMSE over the first axis.

    Quantiles interpolate linearly, except in columns holding infinite
    values (fits at infinity), where the nearest order statistic is used so
    that no inf − inf arises.
    """
    with np.errstate(invalid="ignore"):
        mean = values.mean(axis=0)
        sd = values.std(axis=0, ddof=1)
        rmse = np.sqrt(np.mean((values - targets) ** 2, axis=0))
    finite = np.isfinite(values).all(axis=0)
    quantiles = np.where(
        finite,
        np.quantile(np.where(np.isfinite(values), values, 0.0), [0.05, 0.5, 0.95], axis=0),
        np.quantile(values, [0.05, 0.5, 0.95], axis=0, method="nearest"),
    )
    return mean, sd, quantiles[0], quantiles[1], quantiles[2], rmse


FIT_SUMMARY_COLUMNS = [*SUMMARY_COLUMNS[: SUMMARY_COLUMNS.index("coverage95")], "infinite_fraction"]


def summarize_fit_case(
    values: np.ndarray,
    *,
    case,
    experiment,
    analytic: dict,
) -> pd.DataFrame:
    """Summaries of one model of a fit experiment (values in ``analytic``'s units).

    ``exact_mean`` and ``exact_sd`` are filled where
    :func:`sim.fitting.exact_means` and :func:`sim.fitting.exact_sds` know
    them (saturated and constant models with smoothing > 0; the sds within
    their cost budget), ``z`` = (mean − exact_mean)/(exact_sd/√R) where both
    are and exact_sd > 0; all three are empty elsewhere.
    ``infinite_fraction`` is the share of replicates whose fit is at
    infinity (KL infinite: a class never seen and no smoothing).
    """
    r = values.shape[0]
    units = analytic["units"]
    estimators, ckpts = experiment.estimators, experiment.checkpoints
    order = registry.names(registry.FIT)
    values = values[:, :, [order.index(e) for e in estimators]]
    targets = _targets(analytic, estimators)
    mean, sd, q05, q50, q95, rmse = describe(values, targets)
    stats = {"mean": mean, "sd": sd, "q05": q05, "q50": q50, "q95": q95, "rmse": rmse}
    frame, j, e = _base_frame(case.name, units, ckpts, estimators, r, targets, stats)
    truth, smoothing = experiment.truth, experiment.smoothing
    exact_means = {int(n): fitting.exact_means(truth, case.model, smoothing, int(n)) for n in ckpts}
    exact_sds = {int(n): fitting.exact_sds(truth, case.model, smoothing, int(n)) for n in ckpts}
    keys = list(zip(frame.n.astype(int), frame.estimator, strict=True))
    frame["exact_mean"] = exact_mean = to_units(
        np.array([getattr(exact_means[n], e) for n, e in keys]), units
    )
    frame["exact_sd"] = exact_sd = to_units(np.array([getattr(exact_sds[n], e) for n, e in keys]), units)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["z"] = np.where(exact_sd > 0, (frame["mean"] - exact_mean) / (exact_sd / np.sqrt(r)), np.nan)
    frame["infinite_fraction"] = (~np.isfinite(values)).mean(axis=0)[j, e]
    return frame[FIT_SUMMARY_COLUMNS]


def replicates_frame(
    values: np.ndarray, *, case: str, checkpoints: Sequence[int], estimators: Sequence[str]
) -> pd.DataFrame:
    """``replicates.csv.gz`` rows of one case: case, replicate, n, one column per estimator."""
    r, j, _ = values.shape
    data = {
        "case": case,
        "replicate": np.repeat(np.arange(r, dtype=np.int64), j),
        "n": np.tile(np.asarray(checkpoints, dtype=np.int64), r),
    }
    flat = values.reshape(r * j, -1)
    for i, name in enumerate(estimators):
        data[name] = flat[:, i]
    return pd.DataFrame(data)
