"""Executors: run a function on every task, yielding the results in task order.

``serial``      in this process;
``processes``   a :class:`concurrent.futures.ProcessPoolExecutor` of N workers;
``dask``        a ``dask.distributed`` cluster: the scheduler at ``--scheduler``,
                or a :class:`distributed.LocalCluster` on loopback.  Dask is an
                optional extra (``pip install -e '.[dask]'``), imported only here.

Whatever the executor, results come back in task order (see :mod:`sim.tasks`),
so every executor writes the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from .errors import RunError
from .sidebyside import release_signals, signals_held
from .tasks import Task

#: A worker process's function and experiment, set once by the pool's initializer,
#: so that the experiment (up to 10^7 categories) is sent to each worker once,
#: not with every task.  Empty in the process that runs the pool.
_WORKER_STATE: dict = {}


def _submit(pool: ProcessPoolExecutor, task: Task):
    """Submit ``task``; a submit may fork workers, which must be born with signals held (see sim.sidebyside)."""
    with signals_held():
        return pool.submit(_call_in_worker, task)


def _init_worker(fn, experiment) -> None:
    release_signals()  # born with them held: see sim.sidebyside
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
            try:
                yield from _windowed(functools.partial(_submit, pool), tasks, 4 * workers, on_done)
            except BaseException:  # interrupted, failed or closed: what is queued never starts
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return
    if executor == "dask":
        yield from _execute_dask(fn, experiment, tasks, scheduler, workers, on_done)
        return
    raise ValueError(f"unknown executor {executor!r}")


#: The local Dask cluster of the :func:`dask_session` in force, if any (one per process).
_SESSION: dict[str, object] = {}


@contextlib.contextmanager
def dask_session() -> Iterator[None]:
    """Within it, every :func:`execute` with the dask executor and no scheduler shares one
    LocalCluster, started at the first need and closed at the end: a run in rounds (replicates by
    target precision) starts one cluster, not one a round."""
    _SESSION["active"] = True
    try:
        yield
    finally:
        cluster = _SESSION.pop("cluster", None)
        _SESSION.pop("active", None)
        if cluster is not None:
            cluster.close()


def _local_cluster(workers: int):
    """A new LocalCluster on loopback, or the session's (see :func:`dask_session`); and whether the
    caller owns it (closes it when done)."""
    from distributed import LocalCluster

    if _SESSION.get("cluster") is not None:
        return _SESSION["cluster"], False
    cluster = LocalCluster(
        n_workers=max(1, workers),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    if _SESSION.get("active"):
        _SESSION["cluster"] = cluster
        return cluster, False
    return cluster, True


def _execute_dask(fn, experiment, tasks, scheduler, workers, on_done):
    try:
        # Imported here: dask is an optional extra, and importing it takes about 2 s.
        from distributed import Client
    except ImportError:
        raise RunError("--executor dask needs the dask extra: pip install -e '.[dask]'") from None
    cluster, owned = None, False
    try:
        if scheduler:
            client = Client(scheduler, timeout="10s")
        else:
            cluster, owned = _local_cluster(workers)
            client = Client(cluster)
    except OSError as exc:
        raise RunError(f"cannot reach the dask scheduler {scheduler or '(local)'}: {exc}") from None
    try:
        shared = client.scatter(experiment, broadcast=True)
        window = 4 * max(1, len(client.scheduler_info().get("workers", {})) or workers)
        yield from _windowed(lambda t: client.submit(fn, shared, t, pure=False), tasks, window, on_done)
    finally:
        client.close()
        if owned:
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
