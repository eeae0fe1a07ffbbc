"""Replicate blocks: the simulation of one block, and of one task's blocks.

Block sizes and seeds are those of :mod:`sim.tasks`: block ``b`` of a case
draws from :func:`sim.tasks.block_rng`, never from a generator shared with
other blocks.  A task (see :mod:`sim.tasks`) is a few consecutive blocks;
:func:`run_task` turns one into arrays, replicates last, or into the state of
a streaming accumulator.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence

import numpy as np

from . import registry
from .config import Case, Experiment
from .decision import chernoff, tilted
from .distributions import Pair
from .estimators import DENSE_K, SparseSums, SupportArrays, estimate, row_dot, two_sample
from .events import llr_covered, llr_wrong
from .registry import LLR
from .sampling import count_paths
from .streaming import Accumulator, BlockFold, Ranges
from .tasks import Task, block_rng, block_size, rows_in_block


def simulate_block(
    experiment: Experiment, case: Case, arrays: SupportArrays, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate block ``block`` of ``case``, replicates last.

    Returns the values in nats, ``(checkpoints, estimators, rows)``, and the
    coverage flags, ``(checkpoints, rows)``.
    """
    rows = block_rows(experiment, arrays, block)
    names = experiment.estimators
    out = np.empty((len(experiment.checkpoints), len(names), rows))
    covered = np.zeros((len(experiment.checkpoints), rows), dtype=bool)
    for j, values, flags in checkpoint_values(experiment, case, arrays, block):
        out[j] = values
        if flags is not None:
            covered[j] = flags
    for e, spec in enumerate(registry.specs(names)):
        if spec.tilted:
            out[:, e] = _tilted_block(experiment, case, arrays, block, rows).T
    return out, covered


def block_rows(experiment: Experiment, arrays: SupportArrays, block: int) -> int:
    """Replicates in block ``block`` (the last block of a case may be short)."""
    return rows_in_block(experiment.replicates, block_size(arrays.probs.size), block)


def checkpoint_values(
    experiment: Experiment, case: Case, arrays: SupportArrays, block: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield ``(j, values, flags)`` for each checkpoint of one block, in nats.

    ``values`` is ``(estimators, rows)`` (a tilted estimator, drawn from its
    own paths, left unset), reused from one checkpoint to the next: consume
    or copy it before asking for the next.  ``flags`` are the llr's coverage
    flags, or None without an estimator that reports coverage.
    """
    specs, ckpts = registry.specs(experiment.estimators), experiment.checkpoints
    rows = block_rows(experiment, arrays, block)
    rng = block_rng(experiment.seed, case.name, block)
    from_counts = [s.name for s in specs if not s.probability and not s.needs_q_sample]
    if any(s.needs_llr for s in specs) and LLR.name not in from_counts:
        from_counts.append(LLR.name)
    sums = SparseSums(rows, arrays, from_counts) if arrays.probs.size > DENSE_K else None
    paths = count_paths(
        arrays.probs, ckpts, rows, rng=rng, method=experiment.sampler, sparse=sums is not None
    )
    covering = next((s for s in specs if s.coverage), None)
    samples = (
        _q_samples(experiment, case, arrays, block, rows) if any(s.needs_q_sample for s in specs) else None
    )
    row = np.zeros((len(specs), rows))
    for j, (n, step) in enumerate(zip(ckpts, paths, strict=True)):
        if sums is None:
            counts, values = step, estimate(step, n, arrays, from_counts)
        else:
            counts, change = step
            values = sums.update(counts, change, n)
        m, q_counts = next(samples) if samples is not None else (0, None)
        for e, spec in enumerate(specs):
            if spec.needs_llr:
                row[e] = llr_wrong(counts, n, values[LLR.name], case.pair, arrays)
            elif spec.needs_q_sample:
                alpha = spec.smoothing.value(arrays.k, m)
                row[e] = two_sample(counts, q_counts, n, m, alpha, arrays)
            elif not spec.tilted:
                row[e] = values[spec.name]
        flags = None if covering is None else llr_covered(counts, n, values[covering.name], case.pair, arrays)
        yield j, row, flags


def _q_samples(
    experiment: Experiment, case: Case, arrays: SupportArrays, block: int, rows: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(M, counts)`` of q's own sample at each checkpoint: M = ``q_sample_size(n)`` draws from q.

    The counts are on p's support in the order of ``arrays`` (a last column,
    when q has mass off it, counts the draws that fell there); nested like
    p's paths, from their own stream (key ``q:<case>``), so asking for a
    two-sample estimator changes none of p's draws.  Checkpoints whose M
    repeats share one draw.
    """
    sizes = [case.pair.q_sample_size(n) for n in experiment.checkpoints]
    probs = arrays.q_probs if arrays.q_outside == 0.0 else np.append(arrays.q_probs, arrays.q_outside)
    rng = block_rng(experiment.seed, f"q:{case.name}", block)
    paths = count_paths(probs, sorted(set(sizes)), rows, rng=rng, method=experiment.sampler)
    counts, last = None, 0
    for m in sizes:
        if m != last:
            counts, last = next(paths), m
        yield m, counts


def _tilted_block(
    experiment: Experiment, case: Case, arrays: SupportArrays, block: int, rows: int
) -> np.ndarray:
    """Importance-sampling values w·1{llr ≤ 0} of one block, (rows, checkpoints).

    Paths are drawn from the Chernoff-tilted r ∝ p^(1−s) q^s with their own
    stream (key ``tilted:<case>``), nested like the plain ones; a path's
    weight at n is Π_k (p_k/r_k)^{c_k}, its likelihood ratio.
    """
    r = tilted(case.pair, chernoff(case.pair).s)[arrays.index]
    log_w_per = arrays.log_p - np.log(r)
    rng = block_rng(experiment.seed, f"tilted:{case.name}", block)
    out = np.empty((rows, len(experiment.checkpoints)))
    paths = count_paths(r, experiment.checkpoints, rows, rng=rng, method="counts")
    for j, (n, counts) in enumerate(zip(experiment.checkpoints, paths, strict=True)):
        c = counts.astype(float)
        wrong = llr_wrong(counts, n, row_dot(c, arrays.log_ratio) / n, case.pair, arrays)
        out[:, j] = np.where(wrong, np.exp(row_dot(c, log_w_per)), 0.0)
    return out


def simulate_case(experiment: Experiment, case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Simulate every replicate of ``case``, serially.

    Returns
    -------
    values : numpy.ndarray
        ``(replicates, checkpoints, estimators)`` in nats.
    covered : numpy.ndarray
        ``(replicates, checkpoints)`` booleans: |llr − KL| ≤ 1.96 σ/√n
        (see :func:`sim.events.llr_covered`); all False when ``llr`` is
        not among the estimators.
    """
    arrays = SupportArrays.from_pair(case.pair)
    blocks = math.ceil(experiment.replicates / block_size(arrays.probs.size))
    parts = [simulate_block(experiment, case, arrays, b) for b in range(blocks)]
    return by_replicate(stack([p[0] for p in parts])), by_replicate(stack([p[1] for p in parts]))


def run_task(experiment: Experiment, task: Task) -> dict[str, np.ndarray]:
    """Simulate one task's blocks, in the experiment's units.

    Returns the values ``(checkpoints, estimators, replicates)`` and coverage
    flags ``(checkpoints, replicates)``, or with ``save_replicates: false``
    the state of a :class:`sim.streaming.Accumulator`.
    """
    case = experiment.cases[task.case]
    arrays = SupportArrays.from_pair(case.pair)
    divisor = registry.divisors(experiment.estimators, experiment.units)[:, None]
    blocks = range(task.first, task.first + task.blocks)
    if not experiment.save_replicates:
        return _stream_task(experiment, task, arrays, divisor)
    values, covered = [], []
    for b in blocks:
        v, c = simulate_block(experiment, case, arrays, b)
        if (divisor != 1.0).any():
            v /= divisor
        values.append(v)
        covered.append(c)
    return {"values": stack(values), "covered": stack(covered)}


def _stream_task(experiment: Experiment, task: Task, arrays: SupportArrays, divisor: np.ndarray) -> dict:
    """:func:`run_task` without replicates: each checkpoint folded in while it is in cache."""
    case = experiment.cases[task.case]
    acc = Accumulator.empty((len(experiment.checkpoints), len(experiment.estimators)))
    ranges = ranges_of(experiment, task.case)
    scale = bool((divisor != 1.0).any())
    tilted = [e for e, spec in enumerate(registry.specs(experiment.estimators)) if spec.tilted]
    for b in range(task.first, task.first + task.blocks):
        rows = block_rows(experiment, arrays, b)
        fold = BlockFold(acc, ranges, rows)
        # a tilted estimator is drawn from its own paths, all checkpoints at once
        own = _tilted_block(experiment, case, arrays, b, rows) if tilted else None
        for j, v, c in checkpoint_values(experiment, case, arrays, b):
            for t in tilted:
                v[t] = own[:, j]
            if scale:
                v /= divisor
            fold.add(j, v, c)
        fold.close()
    return acc.arrays()


def stack(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate blocks along replicates (the last axis) into a new C-ordered array.

    numpy sums in an order that follows memory layout, so the summaries' last
    bits would otherwise depend on where the blocks came from (fresh here,
    unpickled or resumed copies there).
    """
    out = np.empty((*parts[0].shape[:-1], sum(p.shape[-1] for p in parts)), dtype=parts[0].dtype)
    return np.concatenate(parts, axis=-1, out=out)


def by_replicate(values: np.ndarray) -> np.ndarray:
    """The ``(replicates, checkpoints[, estimators])`` view of replicates-last values."""
    return np.moveaxis(values, -1, 0)


def ranges_of(experiment: Experiment, case: int) -> Ranges:
    """Histogram ranges of case number ``case``, cached for the case being worked on."""
    c = experiment.cases[case]
    return _case_ranges(c.pair, tuple(experiment.checkpoints), tuple(experiment.estimators), experiment.units)


@functools.lru_cache(maxsize=1)
def _case_ranges(pair: Pair, checkpoints: tuple[int, ...], estimators: tuple[str, ...], units: str) -> Ranges:
    """:meth:`sim.streaming.Ranges.for_case`, kept for the last arguments it was asked for.

    Its key is everything the ranges depend on: ``pair`` by identity (pairs
    compare by identity), the rest by value; so two experiments of one name
    and seed (the same config with a ``--set``) never share ranges.  Asking
    for another case replaces the entry; ``_case_ranges.cache_clear()`` empties it.
    """
    return Ranges.for_case(pair, checkpoints, estimators, units)


def run_own_blocks(experiment: Experiment, task: Task, simulate) -> dict[str, np.ndarray]:
    """One task of a case whose pair has a sampler of its own (parametric families, Markov sources).

    ``simulate(experiment, case, block)`` gives a block's values in nats, ``(checkpoints,
    estimators, rows)``, and its coverage flags; they come back in the experiment's units, stacked.
    """
    case = experiment.cases[task.case]
    divisor = registry.divisors(experiment.estimators, experiment.units)[:, None]
    values, covered = [], []
    for b in range(task.first, task.first + task.blocks):
        v, c = simulate(experiment, case, b)
        values.append(v / divisor)
        covered.append(c)
    return {"values": stack(values), "covered": stack(covered)}


def coverage_flags(pair, specs, checkpoints: Sequence[int], values: np.ndarray) -> np.ndarray:
    """Whether each replicate's llr (nats, ``values[:, e]``) is within 1.96 σ/√n of KL, ``(checkpoints, rows)``."""
    covered = np.zeros((len(checkpoints), values.shape[-1]), dtype=bool)
    for e, spec in enumerate(specs):
        if spec.coverage:
            # as events.llr_covered and sim check's recount: rounding never decides (σ may be 0)
            half = 1.96 * pair.llr_sigma / np.sqrt(np.asarray(checkpoints, dtype=float))
            half += 1e-12 * max(1.0, abs(pair.kl_pq))
            covered = np.abs(values[:, e] - pair.kl_pq) <= half[:, None]
    return covered
