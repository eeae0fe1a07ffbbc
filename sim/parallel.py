"""Tasks, executors, progress and resume for convergence experiments.

A run is split into tasks of ``BLOCKS_PER_TASK`` (4) consecutive replicate blocks
of one case.  Blocks and tasks depend only on the experiment, never on how
many workers run them; each block draws from its own generator (see
:func:`sim.blocks.block_rng`), and results merge in task order, so serial,
``--workers N`` and ``--executor dask`` runs write byte-identical files.

Executors
---------
``serial``      in this process;
``processes``   a :class:`concurrent.futures.ProcessPoolExecutor` of N workers;
``dask``        a ``dask.distributed`` cluster: the scheduler at ``--scheduler``,
                or a :class:`distributed.LocalCluster` on loopback.  Dask is an
                optional extra (``pip install -e '.[dask]'``), imported only here.

Resume
------
Each finished task is stored atomically in ``<out>/.<name>.resume/`` with a
fingerprint of the resolved config and the sim version; ``sim run --resume``
loads the finished tasks and runs the rest, refusing if the fingerprint
differs.  A successful run removes the folder.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, ConfigIssue, RunError

BLOCKS_PER_TASK = 4


@dataclass(frozen=True)
class Task:
    """Blocks ``first .. first + blocks − 1`` of case number ``case``."""

    case: int
    first: int
    blocks: int

    @property
    def key(self) -> str:
        return f"task-{self.case:04d}-{self.first:08d}"


def plan(experiment, block_size: Callable[[int], int]) -> list[Task]:
    """Every task of a convergence experiment, in merge order."""
    tasks = []
    for c, case in enumerate(experiment.cases):
        size = block_size(int(case.pair.support.size))
        blocks = math.ceil(experiment.replicates / size)
        tasks += [Task(c, b, min(BLOCKS_PER_TASK, blocks - b)) for b in range(0, blocks, BLOCKS_PER_TASK)]
    return tasks


# --------------------------------------------------------------------------
# Executors


_WORKER_STATE: dict = {}


def _init_worker(fn, experiment) -> None:
    _WORKER_STATE["fn"], _WORKER_STATE["experiment"] = fn, experiment


def _call_in_worker(task: Task):
    return _WORKER_STATE["fn"](_WORKER_STATE["experiment"], task)


def execute(
    fn: Callable,
    experiment,
    tasks: Sequence[Task],
    *,
    executor: str = "serial",
    workers: int = 1,
    scheduler: str | None = None,
    on_done: Callable[[Task, object], None] | None = None,
) -> Iterator[tuple[Task, object]]:
    """Run ``fn(experiment, task)`` for every task; yield results in task order.

    ``on_done`` is called as each task finishes (in any order): progress and
    resume storage hook in there.
    """
    if not tasks:
        return
    if executor == "serial" or (executor == "processes" and workers <= 1):
        for task in tasks:
            result = fn(experiment, task)
            if on_done:
                on_done(task, result)
            yield task, result
        return
    if executor == "processes":
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(fn, experiment)
        ) as pool:
            yield from _windowed(lambda t: pool.submit(_call_in_worker, t), tasks, 4 * workers, on_done)
        return
    if executor == "dask":
        yield from _execute_dask(fn, experiment, tasks, scheduler, workers, on_done)
        return
    raise ValueError(f"unknown executor {executor!r}")


def _execute_dask(fn, experiment, tasks, scheduler, workers, on_done):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise RunError("--executor dask needs the dask extra: pip install -e '.[dask]'") from None
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="10s")
        else:
            cluster = LocalCluster(
                n_workers=max(1, workers),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            client = Client(cluster)
    except OSError as exc:
        raise RunError(f"cannot reach the dask scheduler {scheduler or '(local)'}: {exc}") from None
    try:
        shared = client.scatter(experiment, broadcast=True)
        window = 4 * max(1, len(client.scheduler_info().get("workers", {})) or workers)
        yield from _windowed(lambda t: client.submit(fn, shared, t, pure=False), tasks, window, on_done)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _windowed(submit, tasks, window: int, on_done):
    """Keep at most ``window`` tasks in flight; yield results in task order.

    Bounding the finished-but-not-yet-merged results bounds memory.
    """
    pending: dict[int, object] = {}
    next_submit = 0
    try:
        for i, task in enumerate(tasks):
            while next_submit < len(tasks) and next_submit < i + window:
                pending[next_submit] = submit(tasks[next_submit])
                next_submit += 1
            result = pending.pop(i).result()
            if on_done:
                on_done(task, result)
            yield task, result
    finally:
        for future in pending.values():
            future.cancel()


def default_workers(work: float) -> int:
    """Serial for small runs; every core once a run is worth the start-up cost.

    ``work`` is the run's cost in replicate × checkpoint × category steps
    (see :meth:`sim.pipelines.base.Pipeline.work`).
    """
    return 1 if work < 5e7 else max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------
# Progress


class Progress:
    """A one-line progress bar on stderr: blocks done (of cases × blocks), rate and ETA.

    Shown only when stderr is a terminal, ``quiet`` is False and the run has
    lasted a second; a non-terminal stderr gets nothing.
    """

    def __init__(self, total: int, label: str, *, quiet: bool = False, stream=None):
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.enabled = not quiet and total > 0 and getattr(self.stream, "isatty", lambda: False)()
        self.done = 0
        self.start = time.monotonic()
        self.shown = False

    def update(self, count: int = 1) -> None:
        self.done += count
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        if elapsed < 1.0 and self.done < self.total:
            return
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        width = 28
        filled = int(width * self.done / self.total)
        eta_text = f"{eta:5.0f}s" if math.isfinite(eta) else "    ?"
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} blocks "
            f"{rate:6.1f}/s ETA {eta_text}"
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------
# Resume


def fingerprint(config_text: str, mode: str) -> str:
    from . import __version__

    digest = hashlib.sha256(f"{__version__}\n{mode}\n{BLOCKS_PER_TASK}\n{config_text}".encode()).hexdigest()
    return digest


class ResumeStore:
    """Finished tasks of an interrupted run, in ``<out>/.<name>.resume/``."""

    def __init__(self, out: Path, name: str, print_: str, *, resume: bool):
        self.folder = Path(out) / f".{name}.resume"
        self.print_ = print_
        stamp = self.folder / "fingerprint"
        if resume and self.folder.is_dir():
            if not stamp.is_file() or stamp.read_text() != print_:
                raise ConfigError(
                    [
                        ConfigIssue(
                            str(self.folder),
                            None,
                            "",
                            "refusing to resume: the config (or sim version) differs from the interrupted "
                            "run's; run without --resume to start afresh",
                        )
                    ]
                )
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(print_)

    def load(self, task: Task):
        path = self.folder / f"{task.key}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save(self, task: Task, arrays: dict[str, np.ndarray]) -> None:
        """Store a finished task atomically, as an ``.npz`` that :func:`numpy.load` reads.

        Deflate at level 1, not numpy's default 6: the histograms of small
        counts shrink about as much, at a third of the cost on the process
        that merges every task.
        """
        tmp = self.folder / f".{task.key}.tmp.npz"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for name, value in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)
        os.replace(tmp, self.folder / f"{task.key}.npz")

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
