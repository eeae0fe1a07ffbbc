"""Running experiments: lock, stages, publish.

:func:`run_experiment` takes the results folder's lock, asks the
experiment's pipeline (:mod:`sim.pipelines`) for its tables, running its
tasks on the chosen executor (:mod:`sim.executors`) with resume
(:mod:`sim.resume`) and progress (:mod:`sim.progress`),
checks the tables against exact theory (:mod:`sim.check`), writes them and
the figures into a staged folder and publishes it atomically
(:mod:`sim.results`).  Nothing here depends on the kind of experiment.
"""

from __future__ import annotations

import functools
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import provenance
from . import results as res
from .check import CheckReport, check_tables
from .columns import folder_readme
from .config import Experiment, FitExperiment, dump_config
from .errors import OutputError, one_line
from .executors import dask_session, default_workers, execute
from .pipelines import Pipeline, pipeline_for
from .precision import shortfall_notes
from .progress import Progress
from .resume import ResumeStore, fingerprint
from .sidebyside import can_fork, workers_here
from .summary import unseen_notes
from .tasks import Task


def _run_and_store(experiment, task: Task, *, fn: Callable, store: ResumeStore) -> dict[str, np.ndarray]:
    """``fn(experiment, task)``, then store the task for ``--resume`` (in the worker)."""
    result = fn(experiment, task)
    store.save(task, result)
    return result


@dataclass(frozen=True)
class Execution:
    """How to run an experiment's tasks (see :mod:`sim.executors`).

    ``workers`` None chooses serial for small runs and every core otherwise.
    """

    executor: str = "local"
    workers: int | None = None
    scheduler: str | None = None
    resume: bool = False
    quiet: bool = False
    #: False skips the check stage (``report.check`` None, ``run.json`` says so): for programs that
    #: run ``sim check`` on the folder later, or elsewhere.  ``sim run`` always checks.
    check: bool = True


@dataclass
class RunReport:
    """What :func:`run_experiment` did: where it wrote and how long each stage took.

    ``notes`` are one-line remarks on the results (``sim run`` prints them,
    ``run.json`` records them): a case whose ``p_wrong_tilted`` rows were
    left empty because no replicate saw the event.
    """

    experiment: Experiment
    path: Path
    timings: dict[str, float] = field(default_factory=dict)
    summary: pd.DataFrame | None = None
    analytic: pd.DataFrame | None = None
    check: CheckReport | None = None
    figures: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


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


def side_by_side_width(experiments: Sequence[Experiment | FitExperiment], execution: Execution) -> int:
    """How many of ``experiments`` ``sim run`` runs at once (see :mod:`sim.sidebyside`).

    One per core when there are several and every one is small enough to
    run its blocks on one core (see :func:`sim.executors.default_workers`)
    and writes no large replicates file (whose note and progress bar must
    show while it runs), on local processes with the worker count left to
    ``sim run``; otherwise 1, in turn, each run free to use every core.  An
    experiment's results do not depend on what runs beside it.
    """
    if len(experiments) < 2 or execution.executor != "local" or execution.workers is not None:
        return 1
    if not can_fork() or any(default_workers(pipeline_for(e).work(e)) > 1 for e in experiments):
        return 1
    if any(replicates_note(e) is not None for e in experiments):
        return 1
    return min(len(experiments), workers_here())


def heaviest_first(experiments: Sequence[Experiment | FitExperiment]) -> list[int]:
    """Indices of ``experiments`` from the most effort to the least (ties in order), to start side by side."""
    effort = [pipeline_for(e).effort(e) for e in experiments]
    return sorted(range(len(experiments)), key=lambda i: -effort[i])


def run_experiment(
    experiment: Experiment | FitExperiment,
    out: str | Path = "results",
    *,
    command: Sequence[str] | None = None,
    after: Callable[[RunReport, Path], Mapping[str, Any] | None] | None = None,
    overwrite: bool = True,
    execution: Execution | None = None,
) -> RunReport:
    """Simulate ``experiment``, publish its results folder ``out/<name>/`` and return a :class:`RunReport`.

    Parameters
    ----------
    experiment : Experiment or FitExperiment
        A validated experiment (see :func:`sim.config.load_config`).
    out : path
        The parent folder; created if needed.
    command : sequence of str, optional
        The command line recorded in ``run.json`` (default: ``sys.argv``).
    after : callable, optional
        Called as ``after(report, folder)`` with the staged folder once the
        tables are written, before it is published; used to draw figures.
        Its time is recorded as the ``figures`` stage.  What it returns (a
        mapping such as :meth:`sim.figures.FigureReport.to_dict`, with a
        ``failed`` mapping of figure → reason) is kept as
        ``report.figures`` and written to ``run.json`` under ``figures``.
        If it raises an exception, the tables are still published: the
        failure is recorded as ``{"failed": {"figures": reason}}``.
    overwrite : bool
        Replace an existing ``out/<name>/`` (only once the run has
        succeeded); with False, refuse before simulating.
    execution : Execution, optional
        Executor, workers, resume and progress.

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
    pipeline = pipeline_for(experiment)
    store = ResumeStore.open(
        out,
        experiment.name,
        fingerprint(dump_config(experiment), pipeline.mode(experiment)),
        resume=execution.resume,
    )

    def run_tasks(tasks, fn):
        return task_results(experiment, tasks, fn, store, execution, pipeline=pipeline)

    with dask_session():  # a run in rounds shares one local Dask cluster
        tables = pipeline.tables(experiment, stage, run_tasks)
    analytic, summary = tables[res.ANALYTIC], tables[res.SUMMARY]
    report.summary, report.analytic = summary, analytic
    report.notes = unseen_notes(summary) + shortfall_notes(getattr(experiment, "precision", None), summary)
    if execution.check:
        with stage("check"):
            report.check = check_tables(experiment, tables, name=experiment.name)
    with res.staged_folder(out, experiment.name) as tmp:
        with stage("write"):
            (tmp / res.CONFIG).write_text(dump_config(experiment), encoding="utf-8")
            readme = folder_readme(experiment, tables, notes=report.notes)
            (tmp / res.README).write_text(readme, encoding="utf-8")
            for name, frame in tables.items():
                _write_table(frame, tmp / name, experiment.name, quiet=execution.quiet)
        if after is not None:
            with stage("figures"):
                report.figures = _figures_outcome(after, report, tmp)
        report.timings["total"] = time.perf_counter() - t_start
        info = _run_info(experiment, command, started, report.timings)
        info["check"] = (
            {"agrees_with_theory": report.check.passed, "summary": report.check.headline()}
            if report.check is not None
            else {"agrees_with_theory": None, "summary": "not checked (run sim check on this folder)"}
        )
        info["notes"] = list(report.notes)
        if report.figures is not None:
            info["figures"] = report.figures
        res.write_json(info, tmp / res.RUN)
    store.discard()
    return report


#: A write shows its progress bar once it has lasted this long (seconds).
WRITE_PROGRESS_DELAY = 2.0


def _write_table(frame: pd.DataFrame, path: Path, label: str, *, quiet: bool) -> None:
    """Write one table, with a progress bar in rows if the write takes more than a couple of seconds."""
    progress = Progress(
        len(frame),
        f"{label}: writing {path.name}",
        quiet=quiet,
        unit="rows",
        delay=WRITE_PROGRESS_DELAY,
        final=False,
    )
    try:
        res.write_csv(frame, path, progress=progress.update)
    finally:
        progress.close()


#: Bytes per value of ``replicates.csv.gz``, on the large side (3.7 to 9.6 in the shipped results).
REPLICATE_BYTES_PER_VALUE = 10


def replicates_size(experiment: Experiment | FitExperiment) -> int:
    """An estimate (on the large side) of the bytes ``replicates.csv.gz`` will take; 0 when not written."""
    rows = pipeline_for(experiment).replicate_rows(experiment)
    return rows * len(experiment.estimators) * REPLICATE_BYTES_PER_VALUE


#: A replicates file estimated above this many bytes is announced before the run.
LARGE_REPLICATES = 100 * 10**6


def replicates_note(experiment: Experiment | FitExperiment) -> str | None:
    """One line announcing a ``replicates.csv.gz`` of more than ~100 MB, with the way to avoid it; else None."""
    size = replicates_size(experiment)
    if size <= LARGE_REPLICATES:
        return None
    pipeline = pipeline_for(experiment)
    rows = pipeline.replicate_rows(experiment)
    instead = (
        "save_replicates: false keeps the summaries without it"
        if pipeline.streams
        else "fewer replicates or sample sizes make it smaller"
    )
    return f"replicates.csv.gz will hold {rows:,} rows, about {size / 1e6:,.0f} MB; {instead}"


def _figures_outcome(after: Callable, report: RunReport, folder: Path) -> dict[str, Any]:
    """Run the figure stage; a failure of any kind is recorded, never raised.

    The figures must never cost the tables: whatever ``after`` raises
    (``MemoryError`` included, though not ``KeyboardInterrupt``) becomes a
    one-line entry of ``failed``.
    """
    try:
        outcome = after(report, folder)
    except Exception as exc:  # the tables are published whatever the figures do
        return {"failed": {"figures": one_line(exc)}}
    outcome = dict(outcome or {})
    outcome.setdefault("failed", {})
    return outcome


def task_results(
    experiment,
    tasks: Sequence[Task],
    fn: Callable,
    store: ResumeStore,
    execution: Execution,
    *,
    pipeline: Pipeline | None = None,
) -> Iterator[tuple[Task, dict[str, np.ndarray]]]:
    """Run ``fn(experiment, task)`` for every task not already stored; yield all in task order.

    Finished tasks are stored for ``--resume`` (by local worker processes
    themselves, in parallel and off this process; by this process for a dask
    cluster, whose workers may not share our disk), and counted on the
    progress bar in blocks (cases × blocks).
    """
    stored = {t: store.load(t) for t in tasks} if execution.resume else dict.fromkeys(tasks)
    pending = [t for t in tasks if stored[t] is None]
    progress = Progress(sum(t.blocks for t in tasks), experiment.name, quiet=execution.quiet)
    progress.update(sum(t.blocks for t in tasks) - sum(t.blocks for t in pending))
    workers = execution.workers or default_workers((pipeline or pipeline_for(experiment)).work(experiment))
    kind = "dask" if execution.executor == "dask" else ("processes" if workers > 1 else "serial")
    in_worker = kind == "processes"

    def done(task, result) -> None:
        if not in_worker:
            store.save(task, result)
        progress.update(task.blocks)

    results = execute(
        functools.partial(_run_and_store, fn=fn, store=store) if in_worker else fn,
        experiment,
        pending,
        executor=kind,
        workers=workers,
        scheduler=execution.scheduler,
        on_done=done,
    )
    try:
        for task in tasks:
            arrays = stored.pop(task)
            yield task, (next(results)[1] if arrays is None else arrays)
    finally:
        results.close()
        progress.close()


def _run_info(experiment: Experiment, command, started: str, timings: dict[str, float]) -> dict:
    return {
        "experiment": experiment.name,
        "config": experiment.source,
        "seed": experiment.seed,
        "command": list(sys.argv if command is None else command),
        "started": started,
        "platform": platform.platform(),
        "versions": provenance.versions(),
        "machine": provenance.machine(),
        "wall_seconds": {k: round(v, 4) for k, v in timings.items()},
    }
