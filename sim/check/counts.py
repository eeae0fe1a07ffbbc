"""How many replicates each case of a results folder must have.

A fixed ``replicates: R`` gives every case R.  Replicates chosen by target precision
(:mod:`sim.precision`) give each case the count its stopping rule reached: recomputed by
replaying the rule on ``replicates.csv.gz`` (the pipeline's decisions read nothing else), or,
for a streamed run, which keeps no replicates, read from ``summary.csv`` and checked to be a
count the rule can stop at (the target met on every row asked for, or ``max`` reached).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import results as res
from ..precision import replay
from ..tasks import block_size
from .report import CONSISTENCY, RECOMPUTED, record

_WHAT = "replicates by target precision"


def replicate_counts(experiment, tables: dict[str, pd.DataFrame]) -> tuple[dict[str, int], list[dict]]:
    """Each case's replicate count, and the records of how it was established."""
    precision = getattr(experiment, "precision", None)
    names = [c.name for c in experiment.cases]
    if precision is None:
        return dict.fromkeys(names, experiment.replicates), []
    reps, summary = tables.get(res.REPLICATES), tables[res.SUMMARY]
    counts, records = {}, []
    for case in experiment.cases:
        size = block_size(case.pair.cells)
        if reps is not None:
            values = _values(reps, case.name, experiment)
            if values is None:  # rows missing or extra: the row-set check names them
                counts[case.name] = _written(summary, case.name, experiment.replicates)
                continue
            counts[case.name] = replay(values, list(experiment.estimators), precision, size)
            records.append(
                record("replicates.csv.gz", {"case": case.name}, _WHAT, RECOMPUTED, values.shape[0],
                       counts[case.name], passed=values.shape[0] == counts[case.name])
            )  # fmt: skip
        else:
            counts[case.name] = _written(summary, case.name, experiment.replicates)
            records.append(_stream_stop(summary, case.name, counts[case.name], precision, size))
    return counts, records


def _values(frame: pd.DataFrame, case: str, experiment) -> np.ndarray | None:
    """The case's replicates ``(R, n, estimators)`` in replicate order, if its rows are complete."""
    if not {"case", "replicate", "n", *experiment.estimators} <= set(frame.columns):
        return None
    part = frame[frame.case == case].sort_values(["replicate", "n"], kind="stable")
    ns = np.asarray(experiment.checkpoints)
    if len(part) % ns.size:
        return None
    r = len(part) // ns.size
    if not (
        np.array_equal(part.replicate.to_numpy(), np.repeat(np.arange(r), ns.size))
        and np.array_equal(part.n.to_numpy(), np.tile(ns, r))
    ):
        return None
    return part[list(experiment.estimators)].to_numpy(dtype=float).reshape(r, ns.size, -1)


def _written(summary: pd.DataFrame, case: str, default: int) -> int:
    rows = summary.replicates[summary.case == case] if "replicates" in summary.columns else []
    return int(rows.iloc[0]) if len(rows) and pd.notna(rows.iloc[0]) else default


def _stream_stop(summary: pd.DataFrame, case: str, count: int, precision, size: int) -> dict:
    """A streamed case: its count is ``max``, or whole blocks with every row asked for on target."""
    rows = summary[(summary.case == case) & summary.estimator.isin(precision.estimators)]
    on_target = bool((rows.mcse <= precision.mcse).all()) if "mcse" in rows else False
    fine = count == precision.max or (count % size == 0 and on_target)
    why = "" if fine else f"{count:,} replicates, below max and with rows asked for above the target MCSE"
    return record("summary.csv", {"case": case}, _WHAT, CONSISTENCY, count, count, passed=fine, reason=why)
