"""Checking a results folder against exact theory: every column of every table.

:func:`check_results` reads a results folder (``config.yaml``,
``analytic.csv``, ``summary.csv`` and, where written, ``replicates.csv.gz``
and ``trajectory.csv``) and :func:`check_tables` checks the same tables in
memory (``sim run`` does so before publishing them).  What is checked, and
how, is described in :mod:`sim.check.columns` (each summary column),
:mod:`sim.check.tables` (row sets, analytic values, replicates, the fit
trajectory) and :mod:`sim.check.inference` (the statistical tests and their
one Bonferroni correction).  :mod:`sim.check.laws` says what theory knows
about each row.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import exact, registry
from .. import results as res
from ..config import Experiment, FitExperiment, load_config
from ..decision import coin_tilted_hit_probability
from ..distributions import unit_size
from ..errors import ConfigError, ResultsError
from ..pipelines import pipeline_for
from ..registry import LLR
from ..summary import FIT_SUMMARY_COLUMNS, SUMMARY_COLUMNS
from . import tables as tbl
from .columns import EPS, Row, RowCheck
from .counts import replicate_counts
from .laws import Law, convergence_law, fit_law
from .report import ALPHA, CheckReport

__all__ = ["ALPHA", "CheckReport", "check_results", "check_tables"]


class _Convergence:
    """What the checks need to know about a convergence experiment."""

    def __init__(self, experiment):
        self.experiment = experiment
        self.keeps_replicates = experiment.save_replicates
        self.columns = list(SUMMARY_COLUMNS) + ([] if experiment.save_replicates else ["quantile_error"])
        self.analytic = pipeline_for(experiment).analytic(experiment)
        self._analytic = {r["case"]: r for r in self.analytic.to_dict("records")}
        self.cases = {c.name: c for c in experiment.cases}

    def law(self, case: str, n: int, est: str) -> Law:
        return convergence_law(self.cases[case].pair, est, n, self.experiment.units)

    def target(self, case: str, est: str) -> float:
        spec = registry.get(est)
        return 0.0 if spec.probability else float(self._analytic[case][spec.target])

    def extras(self, case: str, n: int, est: str) -> dict:
        pair, spec = self.cases[case].pair, registry.get(est)
        out = {}
        if spec.coverage:
            out["coverage_exact"] = exact.coverage95(pair, n)
            out["coverage"] = _coverage_counter(pair, n, self.experiment.units)
        if spec.tilted and pair.family == "coin" and 0.0 < pair.p.heads < 1.0:
            out["hit_probability"] = coin_tilted_hit_probability(pair.p.heads, pair.q.heads, n)
        return out

    def coin_linear(self) -> dict:
        """Per coin case, the linear form of the llr (from which any mean estimator's is known)."""
        out = {}
        for name, case in self.cases.items():
            pair = case.pair
            if pair.family == "coin" and pair.support.size == 2 and LLR.name in self.experiment.estimators:
                law = self.law(name, self.experiment.checkpoints[0], LLR.name)
                out[name] = law.linear
        return out

    def coin_cases(self) -> set[str]:
        return {name for name, c in self.cases.items() if c.pair.family == "coin"}


class _Fit:
    """What the checks need to know about a fit experiment."""

    def __init__(self, experiment):
        self.experiment = experiment
        self.keeps_replicates = True  # save_replicates does not apply to fits
        self.columns = list(FIT_SUMMARY_COLUMNS)
        self.analytic = pipeline_for(experiment).analytic(experiment)
        self._analytic = {r["case"]: r for r in self.analytic.to_dict("records")}
        self.cases = {c.name: c for c in experiment.cases}

    def law(self, case: str, n: int, est: str) -> Law:
        return fit_law(self.experiment, self.cases[case], est, n)

    def target(self, case: str, est: str) -> float:
        return float(self._analytic[case][registry.get(est).target])

    def extras(self, case: str, n: int, est: str) -> dict:
        return {"fitted": True, "finite_expected": self.experiment.smoothing > 0}

    def coin_linear(self) -> dict:
        return {}

    def coin_cases(self) -> set[str]:
        return set()


def _coverage_counter(pair, n: int, units: str):
    """Counts of llr values within 1.96σ/√n of KL: (surely inside, inside or on the boundary)."""
    k = unit_size(units)
    sigma, kl = pair.llr_sigma / k, pair.kl_pq / k
    if pair.family == "coin" and pair.llr_sigma > 0 and 0.0 < pair.p.heads < 1.0:
        lo, hi = exact.coin_coverage_bounds(pair.p.heads, n)
        v_h, v_t = (float(v) / k for v in pair.log_ratio)

        def count(x: np.ndarray) -> tuple[int, int]:
            heads = np.round(n * (x - v_t) / (v_h - v_t))
            inside = int(((heads >= lo) & (heads <= hi)).sum())
            return inside, inside

        return count
    half = 1.96 * sigma / math.sqrt(n) + 1e-12 * max(1.0, abs(pair.kl_pq)) / k
    band = 64 * EPS * (float(np.max(np.abs(pair.log_ratio), initial=0.0)) / k + abs(kl) + half)

    def count(x: np.ndarray) -> tuple[int, int]:
        d = np.abs(x - kl)
        return int((d <= half - band).sum()), int((d <= half + band).sum())

    return count


#: What the checks know of each kind of experiment, by its config class.
_VIEWS = {Experiment: _Convergence, FitExperiment: _Fit}


def _kind(experiment):
    return _VIEWS[type(experiment)](experiment)


def check_tables(
    experiment, tables: dict[str, pd.DataFrame], *, name: str = "", alpha: float = ALPHA
) -> CheckReport:
    """Check a results folder's tables (keyed by file name) against ``experiment``.

    Parameters
    ----------
    experiment : Experiment or FitExperiment
        The validated config the tables claim to come from.
    tables : dict
        ``analytic.csv`` and ``summary.csv`` are required; ``replicates.csv.gz``
        and ``trajectory.csv`` are checked when present (and required when
        the experiment writes them).
    name : str
        How the report names the folder.
    alpha : float
        Family-wise level of the statistical tests.
    """
    kind = _kind(experiment)
    records: list[dict] = []
    records += tbl.analytic(tables[res.ANALYTIC], kind.analytic)
    summary = tables[res.SUMMARY]
    records += tbl.columns_present("summary.csv", summary, kind.columns)
    keys = [(c, n, e) for c in kind.cases for n in experiment.checkpoints for e in experiment.estimators]
    records += tbl.row_set("summary.csv", summary, ["case", "n", "estimator"], keys)
    laws = {k: kind.law(*k) for k in keys}
    counts, count_records = replicate_counts(experiment, tables)
    records += count_records
    replicate_records, values = _replicates(experiment, kind, tables.get(res.REPLICATES), laws, counts)
    records += replicate_records
    if all(c in summary.columns for c in kind.columns):
        records += _rows(experiment, kind, summary, laws, values, counts)
        records += tbl.tilted_against_plain(summary, kind.coin_cases())
    if res.TRAJECTORY in tables:
        records += tbl.trajectory(tables[res.TRAJECTORY])
    return CheckReport.decide(name or experiment.name, records, alpha=alpha)


def _replicates(
    experiment, kind, reps: pd.DataFrame | None, laws: dict, counts: dict[str, int]
) -> tuple[list[dict], dict | None]:
    """The checks of ``replicates.csv.gz`` (or of its absence) and its values per row key."""
    if reps is not None:
        return tbl.replicates(reps, experiment, laws, kind.coin_linear(), counts)
    if not kind.keeps_replicates:
        return [], None
    missing = tbl.record(
        "replicates.csv.gz",
        {},
        "file",
        tbl.ROW_SET,
        "missing",
        "present",
        passed=False,
        reason="the config keeps replicates but the file is missing",
    )
    return [missing], None


def _rows(
    experiment, kind, summary: pd.DataFrame, laws: dict, values: dict | None, counts: dict[str, int]
) -> list[dict]:
    """Every column of every summary row the config asks for (others are the row set's failures)."""
    records: list[dict] = []
    for record_ in summary.drop_duplicates(["case", "n", "estimator"]).to_dict("records"):
        row = Row(record_)
        k = (row.case, int(row.n), str(row.estimator))
        if k not in laws:
            continue
        records += RowCheck(
            row,
            laws[k],
            target=kind.target(row.case, row.estimator),
            replicates=counts.get(row.case, experiment.replicates),
            units=experiment.units,
            values=None if values is None else values[k],
            **kind.extras(*k),
        ).run()
    return records


def check_results(folder: str | Path, *, alpha: float = ALPHA) -> CheckReport:
    """Check the results folder ``folder`` against the exact theory of its ``config.yaml``.

    Raises
    ------
    sim.errors.ResultsError
        If ``folder`` is not a results folder (its config, analytic or
        summary table is missing or unreadable).
    """
    folder = Path(folder)
    for name in (res.SUMMARY, res.CONFIG, res.ANALYTIC):
        if not (folder / name).is_file():
            raise ResultsError(f"{folder}: missing {name} (is it a results folder written by sim run?)")
    try:
        experiment = load_config(folder / res.CONFIG)
    except ConfigError as exc:
        raise ResultsError(f"{folder}: its config.yaml is not valid:\n{exc}") from None
    tables = {}
    for name in (res.ANALYTIC, res.SUMMARY, res.REPLICATES, res.TRAJECTORY):
        path = folder / name
        if not path.is_file():
            continue
        try:
            tables[name] = res.read_csv(path)
        except (OSError, ValueError, EOFError) as exc:
            raise ResultsError(f"{folder}: cannot read {name}: {exc}") from None
    needed = {"case", "n", "estimator"}
    if not needed <= set(tables[res.SUMMARY].columns):
        raise ResultsError(f"{folder}: summary.csv lacks its key columns (case, n, estimator)")
    return check_tables(experiment, tables, name=str(folder), alpha=alpha)
