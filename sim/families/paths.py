"""Replicates of a parametric case: nested sample paths, kept as statistics or drawn one by one.

``counts`` (p and q of one family): each replicate's sample is its sufficient statistics, grown from
one checkpoint to the next by one exact draw of the m observations' statistics (the family's
``grow``); the estimators read them.  The cost of a replicate does not depend on N.

``per-sample``: every observation is drawn (in chunks of at most :data:`CHUNK` values per block),
the mean estimators sum their terms from log p(x) and log q(x), and p's family's statistics are
accumulated from the same draws for the plug-in.  Its cost grows with N; it serves for mixed
families and to validate ``counts``.

Seeds and block sizes are :mod:`sim.tasks`'s, as for categorical cases.
"""

from __future__ import annotations

import numpy as np

from .. import registry
from ..blocks import coverage_flags, run_own_blocks
from ..config import Case, Experiment
from ..registry import Form, PairLogs
from ..tasks import Task, block_rng, block_size, rows_in_block
from .pair import FamilyPair

#: Observations drawn at once per block (rows × observations), which bounds memory.
CHUNK = 1 << 20


def run_task(experiment: Experiment, task: Task) -> dict[str, np.ndarray]:
    """Simulate one task's blocks: values ``(checkpoints, estimators, replicates)`` in the experiment's
    units and the llr's coverage flags ``(checkpoints, replicates)``."""
    return run_own_blocks(experiment, task, simulate_block)


def simulate_block(experiment: Experiment, case: Case, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Block ``block`` of ``case``: values in nats ``(checkpoints, estimators, rows)`` and coverage flags."""
    pair: FamilyPair = case.pair
    size = block_size(pair.cells)
    rows = rows_in_block(experiment.replicates, size, block)
    rng = block_rng(experiment.seed, case.name, block)
    specs = registry.specs(experiment.estimators)
    steps = _by_statistics if experiment.sampler == "counts" else _by_observation
    out = np.empty((len(experiment.checkpoints), len(specs), rows))
    for j, row in enumerate(steps(pair, specs, experiment.checkpoints, rows, rng)):
        out[j] = row
    return out, coverage_flags(pair, specs, experiment.checkpoints, out)


def _by_statistics(pair: FamilyPair, specs, checkpoints, rows: int, rng: np.random.Generator):
    """Yield each checkpoint's values ``(estimators, rows)``, the samples kept as statistics."""
    state, before = pair.p.empty(rows), 0
    for n in checkpoints:
        pair.p.grow(state, before, n - before, rng)
        before = n
        yield np.stack([pair.statistic_value(spec, state, n) for spec in specs])


def _by_observation(pair: FamilyPair, specs, checkpoints, rows: int, rng: np.random.Generator):
    """Yield each checkpoint's values ``(estimators, rows)``, every observation drawn."""
    means = [e for e, spec in enumerate(specs) if spec.form is Form.MEAN]
    sums = np.zeros((len(specs), rows))
    state, before = pair.p.empty(rows), 0
    chunk = max(1, CHUNK // rows)
    for n in checkpoints:
        while before < n:
            m = min(chunk, n - before)
            x = pair.p.draw((rows, m), rng)
            lp, lq = pair.p.log_density(x), pair.q.log_density(x)
            logs = PairLogs(lp, lq, lp - lq)
            for e in means:
                sums[e] += specs[e].term(logs).sum(axis=1)
            if pair.same_family:
                pair.p.observe(state, before, x)
            before += m
        row = sums / n
        for e, spec in enumerate(specs):
            if spec.form is not Form.MEAN:
                row[e] = pair.statistic_value(spec, state, n)
        yield row
