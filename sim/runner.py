"""Running experiments: replicate blocks, their seeds, and the files they produce.

Replicates of a case are simulated in blocks of a fixed size that depends
only on the case (its number of categories), never on how the work is
scheduled.  Block ``b`` of case ``c`` draws from its own generator,

    numpy.random.SeedSequence(seed, spawn_key=(key(c), b)),

where ``key(c)`` is a hash of the case's *name*: adding, removing or
reordering other cases does not change a case's numbers.
"""

from __future__ import annotations

import functools
import hashlib
import math
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from . import results as res
from .check import CheckReport, check_summary, check_trajectory
from .config import Case, Experiment, FitExperiment, dump_config
from .distributions import to_units
from .errors import OutputError
from .estimators import (
    DENSE_K,
    PROBABILITIES,
    SparseSums,
    SupportArrays,
    estimate,
    llr_covered,
    llr_wrong,
    row_dot,
    unit_divisor,
)
from .parallel import Progress, ResumeStore, Task, default_workers, execute, fingerprint, plan
from .sampling import count_paths
from .streaming import Accumulator, BlockFold, Ranges
from .summary import (
    analytic_table,
    replicates_frame,
    summarize_case,
    summarize_fit_case,
    summarize_stream,
)

#: Counts held in memory per block (rows × categories), which bounds a block's size.
BLOCK_CELLS = 1 << 21
#: Most replicates in one block.
MAX_BLOCK = 8192


def block_size(k_support: int) -> int:
    """Replicates per block for a case with ``k_support`` possible categories."""
    return max(1, min(MAX_BLOCK, BLOCK_CELLS // max(1, k_support)))


def case_key(name: str) -> int:
    """A stable 64-bit key for a case name (part of its blocks' seeds)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def block_rng(seed: int, case: str, block: int) -> np.random.Generator:
    """The generator of one block of one case."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(case_key(case), block)))


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
    if "p_wrong_tilted" in names:
        out[:, names.index("p_wrong_tilted")] = _tilted_block(experiment, case, arrays, block, rows).T
    return out, covered


def block_rows(experiment: Experiment, arrays: SupportArrays, block: int) -> int:
    """Replicates in block ``block`` (the last block of a case may be short)."""
    size = block_size(arrays.probs.size)
    return min(experiment.replicates, (block + 1) * size) - block * size


def checkpoint_values(
    experiment: Experiment, case: Case, arrays: SupportArrays, block: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield ``(j, values, flags)`` for each checkpoint of one block, in nats.

    ``values`` is ``(estimators, rows)`` (``p_wrong_tilted``, drawn from its
    own paths, left unset), reused from one checkpoint to the next: consume
    or copy it before asking for the next.  ``flags`` are the llr's coverage
    flags, or None without ``llr``.
    """
    names, ckpts = experiment.estimators, experiment.checkpoints
    rows = block_rows(experiment, arrays, block)
    rng = block_rng(experiment.seed, case.name, block)
    paths = count_paths(arrays.probs, ckpts, rows, rng=rng, method=experiment.sampler, with_delta=True)
    sums = SparseSums(rows, arrays) if arrays.probs.size > DENSE_K else None
    wanted = [name for name in names if name not in PROBABILITIES]
    if "p_wrong" in names and "llr" not in wanted:
        wanted.append("llr")
    row = np.zeros((len(names), rows))
    for j, (n, (counts, delta)) in enumerate(zip(ckpts, paths, strict=True)):
        values = (
            estimate(counts, n, arrays, wanted) if sums is None else sums.update(counts, delta, n, wanted)
        )
        if "p_wrong" in names:
            values["p_wrong"] = llr_wrong(counts, n, values["llr"], case.pair, arrays)
        for e, name in enumerate(names):
            if name != "p_wrong_tilted":
                row[e] = values[name]
        flags = llr_covered(counts, n, values["llr"], case.pair, arrays) if "llr" in values else None
        yield j, row, flags


def _tilted_block(
    experiment: Experiment, case: Case, arrays: SupportArrays, block: int, rows: int
) -> np.ndarray:
    """Importance-sampling values w·1{llr ≤ 0} of one block, (rows, checkpoints).

    Paths are drawn from the Chernoff-tilted r ∝ p^(1−s) q^s with their own
    stream (key ``tilted:<case>``), nested like the plain ones; a path's
    weight at n is Π_k (p_k/r_k)^{c_k}, its likelihood ratio.
    """
    from .decision import chernoff, tilted

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
        (see :func:`sim.estimators.llr_covered`); all False when ``llr`` is
        not among the estimators.
    """
    arrays = SupportArrays.from_pair(case.pair)
    blocks = math.ceil(experiment.replicates / block_size(arrays.probs.size))
    parts = [simulate_block(experiment, case, arrays, b) for b in range(blocks)]
    return by_replicate(_stack([p[0] for p in parts])), by_replicate(_stack([p[1] for p in parts]))


def run_task(experiment: Experiment, task: Task) -> dict[str, np.ndarray]:
    """Simulate one task's blocks, in the experiment's units.

    Returns the values ``(checkpoints, estimators, replicates)`` and coverage
    flags ``(checkpoints, replicates)``, or with ``save_replicates: false``
    the state of a :class:`sim.streaming.Accumulator`.
    """
    case = experiment.cases[task.case]
    arrays = SupportArrays.from_pair(case.pair)
    shape = (len(experiment.checkpoints), len(experiment.estimators))
    acc = None if experiment.save_replicates else Accumulator.empty(shape)
    ranges = None if acc is None else _ranges(experiment, task.case)
    divisor = unit_divisor(experiment.estimators, experiment.units)[:, None]
    scale = bool((divisor != 1.0).any())
    values, covered = [], []
    for b in range(task.first, task.first + task.blocks):
        if acc is None:
            v, c = simulate_block(experiment, case, arrays, b)
            if scale:
                v /= divisor
            values.append(v)
            covered.append(c)
        else:  # fold each checkpoint in while it is in cache
            fold = BlockFold(acc, ranges, block_rows(experiment, arrays, b))
            for j, v, c in checkpoint_values(experiment, case, arrays, b):
                if scale:
                    v /= divisor
                fold.add(j, v, c)
            fold.close()
    if acc is not None:
        return acc.arrays()
    return {"values": _stack(values), "covered": _stack(covered)}


def _run_and_store(experiment: Experiment, task: Task, *, store: ResumeStore) -> dict[str, np.ndarray]:
    """:func:`run_task`, then store the task for ``--resume`` (in the worker)."""
    result = run_task(experiment, task)
    store.save(task, result)
    return result


def _stack(parts: Sequence[np.ndarray]) -> np.ndarray:
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


_RANGES: dict = {}


def _ranges(experiment: Experiment, case: int) -> Ranges:
    """Histogram ranges of a case, cached for the case being worked on."""
    key = (experiment.name, experiment.seed, case)
    if key not in _RANGES:
        c = experiment.cases[case]
        _RANGES.clear()
        _RANGES[key] = Ranges.for_case(
            c.pair, experiment.checkpoints, experiment.estimators, experiment.units
        )
    return _RANGES[key]


@dataclass(frozen=True)
class Execution:
    """How to run a convergence experiment's tasks (see :mod:`sim.parallel`).

    ``workers`` None chooses serial for small runs and every core otherwise.
    """

    executor: str = "local"
    workers: int | None = None
    scheduler: str | None = None
    resume: bool = False
    quiet: bool = False


@dataclass
class RunReport:
    """What :func:`run_experiment` did: where it wrote and how long each stage took."""

    experiment: Experiment
    path: Path
    timings: dict[str, float] = field(default_factory=dict)
    summary: pd.DataFrame | None = None
    analytic: pd.DataFrame | None = None
    check: CheckReport | None = None


class _Stopwatch:
    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    def __call__(self, stage: str):
        sw = self

        class _Stage:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                sw.timings[stage] = sw.timings.get(stage, 0.0) + time.perf_counter() - self.t0

        return _Stage()


def run_experiment(
    experiment: Experiment | FitExperiment,
    out: str | Path = "results",
    *,
    command: Sequence[str] | None = None,
    after: Callable[[RunReport, Path], None] | None = None,
    overwrite: bool = True,
    execution: Execution | None = None,
) -> RunReport:
    """Simulate ``experiment`` and publish its results folder ``out/<name>/``.

    Parameters
    ----------
    experiment : Experiment
        A validated experiment (see :func:`sim.config.load_config`).
    out : path
        The parent folder; created if needed.
    command : sequence of str, optional
        The command line recorded in ``run.json`` (default: ``sys.argv``).
    after : callable, optional
        Called as ``after(report, folder)`` with the staged folder once the
        tables are written, before it is published; used to draw figures.
        Its time is recorded as the ``figures`` stage.
    overwrite : bool
        Replace an existing ``out/<name>/`` (only once the run has
        succeeded); with False, refuse before simulating.
    execution : Execution, optional
        Executor, workers, resume and progress (convergence experiments;
        fit experiments run serially).

    Returns
    -------
    RunReport

    Raises
    ------
    sim.errors.OutputError
        If ``out`` cannot be written, or the results exist and ``overwrite``
        is False (checked before simulating).
    sim.errors.RunError
        If another run is writing the same results folder.
    """
    out = res.prepare_output(Path(out))
    with res.exclusive(out, experiment.name):
        if not overwrite and (out / experiment.name).exists():
            raise OutputError(
                f"{out / experiment.name}: exists, and overwriting was refused (--no-overwrite)"
            )
        return _run_locked(experiment, out, command, after, execution or Execution())


def _run_locked(experiment, out: Path, command, after, execution: Execution) -> RunReport:
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report = RunReport(experiment, out / experiment.name)
    stage = _Stopwatch(report.timings)
    if experiment.kind == "fit":
        tables = _fit_tables(experiment, stage)
    else:
        tables = _convergence_tables(experiment, stage, out, execution)
    store = tables.pop("_store", None)
    analytic, summary = tables[res.ANALYTIC], tables[res.SUMMARY]
    report.summary, report.analytic = summary, analytic
    with stage("check"):
        report.check = check_summary(summary, experiment, name=experiment.name)
        if res.TRAJECTORY in tables:
            report.check = report.check.extended(check_trajectory(tables[res.TRAJECTORY]))
    with res.staged_folder(out, experiment.name) as tmp:
        with stage("write"):
            (tmp / res.CONFIG).write_text(dump_config(experiment), encoding="utf-8")
            for name, frame in tables.items():
                res.write_csv(frame, tmp / name)
        if after is not None:
            with stage("figures"):
                after(report, tmp)
        report.timings["total"] = time.perf_counter() - t_start
        info = _run_info(experiment, command, started, report.timings)
        info["check"] = {"agrees_with_theory": report.check.passed, "summary": report.check.headline()}
        res.write_json(info, tmp / res.RUN)
    if store is not None:
        store.discard()
    return report


def _convergence_tables(experiment: Experiment, stage, out: Path, execution: Execution) -> dict:
    with stage("analytic"):
        analytic = analytic_table(experiment)
    tasks = plan(experiment, block_size)
    mode = "replicates" if experiment.save_replicates else "streaming"
    store = ResumeStore(
        out, experiment.name, fingerprint(dump_config(experiment), mode), resume=execution.resume
    )
    stored = {t: store.load(t) for t in tasks} if execution.resume else dict.fromkeys(tasks)
    pending = [t for t in tasks if stored[t] is None]
    progress = Progress(len(tasks), experiment.name, quiet=execution.quiet)
    progress.update(len(tasks) - len(pending))

    workers = execution.workers or default_workers(experiment)
    kind = "dask" if execution.executor == "dask" else ("processes" if workers > 1 else "serial")
    # Local worker processes store their own finished tasks (in parallel, off
    # the merging process); a dask cluster's workers may not share our disk.
    in_worker = kind == "processes"

    def done(task, result) -> None:
        if not in_worker:
            store.save(task, result)
        progress.update()

    results = execute(
        functools.partial(_run_and_store, store=store) if in_worker else run_task,
        experiment,
        pending,
        executor=kind,
        workers=workers,
        scheduler=execution.scheduler,
        on_done=done,
    )
    per_case: dict[int, list] = {c: [] for c in range(len(experiment.cases))}
    with stage("simulate"):
        try:
            for task in tasks:
                arrays = stored.pop(task)
                if arrays is None:
                    arrays = next(results)[1]
                parts = per_case[task.case]
                if experiment.save_replicates:
                    parts.append(arrays)
                elif not parts:
                    parts.append(Accumulator.from_arrays(arrays))
                else:  # fold into the running accumulator, in task order
                    parts[0].merge(Accumulator.from_arrays(arrays))
        finally:
            results.close()
            progress.close()
    summaries, replicate_frames = [], []
    kw = dict(checkpoints=experiment.checkpoints, estimators=experiment.estimators)
    with stage("summarize"):
        for c, (case, arow) in enumerate(zip(experiment.cases, analytic.to_dict("records"), strict=True)):
            parts = per_case[c]
            if experiment.save_replicates:
                values = by_replicate(_stack([p["values"] for p in parts]))
                covered = by_replicate(_stack([p["covered"] for p in parts]))
                summaries.append(summarize_case(values, covered, case=case, analytic=arow, **kw))
                replicate_frames.append(replicates_frame(values, case=case.name, **kw))
            else:
                acc = parts[0]
                summaries.append(
                    summarize_stream(acc, _ranges(experiment, c), case=case, analytic=arow, **kw)
                )
    tables = {res.ANALYTIC: analytic, res.SUMMARY: pd.concat(summaries, ignore_index=True)}
    if experiment.save_replicates:
        tables[res.REPLICATES] = pd.concat(replicate_frames, ignore_index=True)
    tables["_store"] = store
    return tables


def _fit_tables(experiment: FitExperiment, stage) -> dict[str, pd.DataFrame]:
    from . import fit_experiment as fx

    with stage("analytic"):
        analytic = fx.analytic_table(experiment)
    with stage("simulate"):
        values, trajectory = fx.simulate(experiment)
    summaries, replicate_frames = [], []
    with stage("summarize"):
        order = {"kl_fitted": 0, "train_cross_entropy": 1, "test_cross_entropy": 2}
        for case, arow in zip(experiment.cases, analytic.to_dict("records"), strict=True):
            v = to_units(values[case.name], experiment.units)
            summaries.append(summarize_fit_case(v, case=case, experiment=experiment, analytic=arow))
            chosen = v[:, :, [order[e] for e in experiment.estimators]]
            replicate_frames.append(
                replicates_frame(
                    chosen,
                    case=case.name,
                    checkpoints=experiment.checkpoints,
                    estimators=experiment.estimators,
                )
            )
    in_units = [c for c in fx.TRAJECTORY_COLUMNS if c not in ("case", "replicate", "n", "step")]
    return {
        res.ANALYTIC: analytic,
        res.SUMMARY: pd.concat(summaries, ignore_index=True),
        res.REPLICATES: pd.concat(replicate_frames, ignore_index=True),
        res.TRAJECTORY: fx.convert(trajectory, experiment.units, in_units),
    }


def _run_info(experiment: Experiment, command, started: str, timings: dict[str, float]) -> dict:
    from importlib import metadata

    versions = {"sim": __version__, "python": platform.python_version()}
    for dist in ("numpy", "pandas", "scipy", "pyyaml", "click", "matplotlib", "seaborn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "experiment": experiment.name,
        "config": experiment.source,
        "seed": experiment.seed,
        "command": list(sys.argv if command is None else command),
        "started": started,
        "platform": platform.platform(),
        "versions": versions,
        "wall_seconds": {k: round(v, 4) for k, v in timings.items()},
    }
