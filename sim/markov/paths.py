"""Replicates of a Markov case: paths simulated step by step, vectorised over the replicates of a block.

Each step draws every replicate's next state from its current state's row by Walker's alias method
(one uniform integer and one uniform real per replicate), and adds one to that transition's count;
checkpoints are prefixes of one path.  The estimators are read from the first state and the
transition counts at each checkpoint, so memory is the counts (K² per replicate), whatever N.
The cost is linear in N (unlike i.i.d. cases, whose counts can be drawn in one step).

Seeds and block sizes are :mod:`sim.tasks`'s, as for the other cases.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import registry
from ..blocks import coverage_flags, run_own_blocks
from ..config import Case, Experiment
from ..distributions import xlog1px_minus_x
from ..registry import Form
from ..sampling import alias_table
from ..tasks import Task, block_rng, block_size, rows_in_block
from .pair import MarkovPair

#: Uniform draws made at once per block (steps × replicates), which bounds memory (with the chunk's
#: transitions, counted by one ``bincount`` rather than one scatter per step: 1.3× faster).
CHUNK = 1 << 20


def run_task(experiment: Experiment, task: Task) -> dict[str, np.ndarray]:
    """Simulate one task's blocks: values ``(checkpoints, estimators, replicates)`` in the experiment's
    units and the llr's coverage flags ``(checkpoints, replicates)``."""
    return run_own_blocks(experiment, task, simulate_block)


def simulate_block(experiment: Experiment, case: Case, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Block ``block`` of ``case``: values in nats ``(checkpoints, estimators, rows)`` and coverage flags."""
    pair: MarkovPair = case.pair
    size = block_size(pair.cells)
    rows = rows_in_block(experiment.replicates, size, block)
    rng = block_rng(experiment.seed, case.name, block)
    specs = registry.specs(experiment.estimators)
    checkpoints = experiment.checkpoints
    out = np.empty((len(checkpoints), len(specs), rows))
    for j, (first, counts) in enumerate(walk(pair, checkpoints, rows, rng)):
        n = checkpoints[j]
        out[j] = [value(pair, spec, first, counts, n) for spec in specs]
    return out, coverage_flags(pair, specs, checkpoints, out)


def walk(pair: MarkovPair, checkpoints, rows: int, rng: np.random.Generator):
    """Yield, at each checkpoint, the first states ``(rows,)`` and transition counts ``(rows, K²)``.

    The counts array is the running one: read it before the next checkpoint is asked for.
    """
    k = pair.p.k
    threshold, alias = _tables(pair)
    start_threshold, start_alias = alias_table(pair.p.start)
    j = rng.integers(0, k, size=rows)
    state = np.where(rng.random(rows) < start_threshold[j], j, start_alias[j])
    first = state.copy()
    cells = rows * k * k
    counts = np.zeros(cells, dtype=np.int64)
    offsets = np.arange(rows, dtype=np.int64) * (k * k)
    steps = max(1, CHUNK // rows)
    moves = np.empty((steps, rows), dtype=np.int64)  # each step's transitions i·K + j, counted in one go
    done, used, columns, uniforms = 1, steps, None, None
    for n in checkpoints:
        while done < n:
            if used == steps:  # draws come in fixed chunks, whatever the checkpoints: one path per seed
                columns, uniforms, used = rng.integers(0, k, size=(steps, rows)), rng.random((steps, rows)), 0
            begin = used
            for t in range(used, used + min(steps - used, n - done)):
                base = state * k
                cell = base + columns[t]
                state = np.where(uniforms[t] < threshold[cell], columns[t], alias[cell])
                np.add(base, state, out=moves[t])
                used, done = used + 1, done + 1
            counts += np.bincount((moves[begin:used] + offsets).ravel(), minlength=cells)
        yield first, counts.reshape(rows, k * k)


@functools.lru_cache(maxsize=16)
def _tables(pair: MarkovPair) -> tuple[np.ndarray, np.ndarray]:
    """Every row's alias table, flat: entry i·K + j of row i's threshold and alias."""
    tables = [alias_table(row) for row in pair.p.transition]
    threshold = np.concatenate([t for t, _ in tables])
    alias = np.concatenate([a for _, a in tables]).astype(np.int64)
    return threshold, alias


def value(pair: MarkovPair, spec, first: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """``spec``'s value (nats) for each replicate, from its first state and transition counts."""
    if spec.form is Form.PLUGIN:
        return plugin(pair, counts, n)
    fn = pair.functional(spec.term)
    return (fn.g[first] + (counts * fn.F.ravel()).sum(axis=1)) / n


def plugin(pair: MarkovPair, counts: np.ndarray, n: int) -> np.ndarray:
    """Σ_i (N_i/(n − 1)) KL(P̂_i‖Q_i), P̂_ij = N_ij/N_i: the empirical transitions' KL rate against Q."""
    k = pair.p.k
    big_q = pair.q.transition
    c = counts.reshape(-1, k, k).astype(float)
    out_of = c.sum(axis=2)  # N_i
    live = (big_q > 0.0)[None] & (out_of > 0.0)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(live, c / (out_of[:, :, None] * big_q[None]) - 1.0, 0.0)
    terms = np.where(live, big_q[None] * xlog1px_minus_x(rel), 0.0)
    return (out_of * terms.sum(axis=2)).sum(axis=1) / (n - 1)
