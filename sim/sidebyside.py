"""Independent jobs run side by side on forked processes, their output replayed in order.

``sim run`` of several small experiments is bound by one core at a time:
each experiment's simulation, summaries, check and writes run in turn in one
process.  :func:`side_by_side` runs such jobs on one forked process per core
instead.  Each child's ``sys.stdout`` and ``sys.stderr`` are captured, and the
parent writes a job's output, then yields its result (or raises its
exception), in the order the jobs were given, as soon as that job and every
job before it are done: what is printed is what running the jobs in turn
would print, only sooner.

A job that raises stops the jobs after it, as running them in turn would
never have started them: those still running are terminated (SIGTERM, which
``sim run`` turns into a clean interruption that leaves earlier results
untouched), and none is started; the jobs that had already finished are
reported in order before the exception is raised.

Every process sim forks is born with SIGINT and SIGTERM held
(:func:`signals_held` around the fork, :func:`release_signals` first thing
in the child).  Were a signal that raises ``KeyboardInterrupt`` delivered
between ``fork()`` and the start of the child's own code, the exception
would unwind through the stack the child inherited, and the child would
carry on running its parent's code (seen as a second ``sim run``, or a
second pytest worker sharing its parent's channel, after a terminate()
that hit a process just forked).  Held, the signal waits until the child
runs its job, where it interrupts the job.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any, NamedTuple

from .errors import one_line


class _Outcome(NamedTuple):
    """What a child sends back: its output as (stream, text) pieces, and its result or exception."""

    output: list[tuple[str, str]]
    ok: bool
    value: Any


class _Capture(io.TextIOBase):
    """A text stream that records what is written to it, tagged with the stream's name."""

    def __init__(self, name: str, record: list[tuple[str, str]]):
        super().__init__()
        self.name = name
        self._record = record

    @property
    def encoding(self) -> str:
        """UTF-8, as the parent's streams are assumed to accept."""
        return "utf-8"

    def writable(self) -> bool:
        """Always writable."""
        return True

    def write(self, text: str) -> int:
        """Record ``text``; return its length (bytes are refused, as by any text stream)."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            self._record.append((self.name, text))
        return len(text)


#: The signals a child is born with held: those that raise ``KeyboardInterrupt`` in sim.
HELD = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM in this thread for the duration: fork inside it.

    A child forked inside is born with both held, until it calls
    :func:`release_signals`; in this process they are delivered when the
    block ends.  Keep the block short (the forks only): while it lasts,
    Ctrl-C waits.
    """
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows, which does not fork
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def release_signals() -> None:
    """In a child forked inside :func:`signals_held`: let SIGINT and SIGTERM in (any pending arrive now)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)


def can_fork() -> bool:
    """Whether processes can be forked here (not on Windows; not where fork is unavailable)."""
    return "fork" in multiprocessing.get_all_start_methods()


def side_by_side(
    jobs: Sequence[Callable[[], Any]], *, workers: int, start: Sequence[int] | None = None
) -> Iterator[Any]:
    """Run ``jobs`` on up to ``workers`` forked processes; yield their results in order.

    Parameters
    ----------
    jobs : sequence of callables
        Independent jobs taking no argument, whose results and exceptions
        pickle (one that does not becomes a one-line :class:`RuntimeError`).
    workers : int
        Most jobs running at once (at least 1).
    start : sequence of int, optional
        The order in which to start the jobs (indices into ``jobs``); output
        and results come in the order of ``jobs`` whatever it is.

    Yields
    ------
    object
        Each job's result, in order, after its captured output has been
        written to this process's ``sys.stdout``/``sys.stderr``.

    Raises
    ------
    BaseException
        The first (in order) job's exception, after the output of every job
        that finished; the jobs after it are stopped (see the module notes).
    """
    context = multiprocessing.get_context("fork")
    gc.freeze()  # what exists now is shared with every child: no collection of theirs writes to it
    pending = [(i, jobs[i]) for i in (range(len(jobs)) if start is None else start)][::-1]
    running: dict[Connection, tuple[int, multiprocessing.process.BaseProcess]] = {}
    done: dict[int, _Outcome] = {}
    following = 0
    try:
        while pending or running or following in done:
            if following not in done:
                _advance(context, pending, running, done, workers)
                continue
            outcome = done.pop(following)
            following += 1
            _replay(outcome.output)
            if not outcome.ok:
                pending.clear()
                _stop(running)
                _replay([piece for index in sorted(done) for piece in done[index].output])
                raise outcome.value
            yield outcome.value
    finally:
        _stop(running)


def _advance(context, pending: list, running: dict, done: dict, workers: int) -> None:
    """Start what may start (the last of ``pending`` first), then collect every child that has finished."""
    while pending and len(running) < max(1, workers):
        _start(context, *pending.pop(), running)
    for reader in wait(list(running)):
        index, process = running.pop(reader)
        done[index] = _receive(reader, process)


def _start(context, index: int, job: Callable[[], Any], running: dict) -> None:
    """Fork a child running ``job``, born with signals held (:func:`signals_held`).

    It is entered in ``running`` (its pipe's reading end → (index, process))
    before it starts: an interruption at any moment after finds it there,
    and :func:`_stop` terminates it.
    """
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(job, writer), daemon=False)
    running[reader] = (index, process)
    try:
        with signals_held():
            process.start()
    finally:
        writer.close()


def _child(job: Callable[[], Any], writer: Connection) -> None:
    """Run ``job`` with its output captured; send the :class:`_Outcome` to the parent."""
    output: list[tuple[str, str]] = []
    sys.stdout, sys.stderr = _Capture("stdout", output), _Capture("stderr", output)
    try:
        release_signals()  # inside the try: a signal pending since the fork interrupts the job
        outcome = _Outcome(output, True, job())
    except BaseException as exc:  # everything goes back to the parent, as raised
        outcome = _Outcome(output, False, exc)
    try:
        writer.send(outcome)
    except Exception as exc:  # the result or exception could not be pickled
        writer.send(_Outcome(output, False, RuntimeError(one_line(exc))))
    writer.close()


def _receive(reader: Connection, process) -> _Outcome:
    """A finished child's outcome, or why there is none (it died without answering)."""
    try:
        outcome = reader.recv()
    except EOFError:
        process.join()
        outcome = _Outcome([], False, RuntimeError(f"a worker process died (exit status {process.exitcode})"))
    reader.close()
    process.join()
    return outcome


def _replay(output: list[tuple[str, str]]) -> None:
    """Write a child's captured output to this process's streams, in its order."""
    for name, text in output:
        stream = sys.stdout if name == "stdout" else sys.stderr
        stream.write(text)
        stream.flush()


def _stop(running: dict[Connection, tuple[int, Any]]) -> None:
    """Terminate and reap every child still running."""
    for reader, (_index, process) in list(running.items()):
        reader.close()  # first: a child blocked sending its outcome then fails instead of waiting
        if process.pid is not None:  # not interrupted before it started
            if process.is_alive():
                process.terminate()
            process.join()
        del running[reader]


def workers_here() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
