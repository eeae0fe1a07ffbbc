"""Experiments side by side: output in order, results and failures as if run in turn."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click
import pytest

from sim.config import parse_config
from sim.executors import default_workers
from sim.pipelines import pipeline_for
from sim.runner import Execution, replicates_note, side_by_side_width
from sim.sidebyside import HELD, can_fork, release_signals, side_by_side, signals_held

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork")


def _job(i: int, *, sleep: float = 0.0, fail: bool = False, started: Path | None = None):
    def job():
        if started is not None:
            (started / str(i)).touch()
        click.echo(f"out {i}")
        click.echo(f"err {i}", err=True)
        time.sleep(sleep)
        if fail:
            raise ValueError(f"job {i} failed")
        return i * 10

    return job


def test_results_and_output_come_in_the_order_given(capsys):
    # the first job is the slowest: the others finish before it and must wait for it
    jobs = [_job(0, sleep=0.6), _job(1), _job(2, sleep=0.2), _job(3)]
    assert list(side_by_side(jobs, workers=2)) == [0, 10, 20, 30]
    captured = capsys.readouterr()
    assert captured.out == "out 0\nout 1\nout 2\nout 3\n"
    assert captured.err == "err 0\nerr 1\nerr 2\nerr 3\n"


def test_a_failure_is_raised_in_order_and_stops_the_jobs_after_it(capsys, tmp_path):
    jobs = [_job(0, started=tmp_path), _job(1, fail=True, started=tmp_path)]
    jobs += [_job(i, started=tmp_path, sleep=0.5) for i in range(2, 6)]
    seen = []
    with pytest.raises(ValueError, match="job 1 failed"):
        for value in side_by_side(jobs, workers=2):
            seen.append(value)
    assert seen == [0]
    started = {int(p.name) for p in tmp_path.iterdir()}
    assert {0, 1} <= started and len(started) <= 3  # two at a time: job 2 at most had started
    assert capsys.readouterr().out.splitlines()[:2] == ["out 0", "out 1"]


def test_a_job_that_dies_is_reported():
    with pytest.raises(RuntimeError, match="died"):
        list(side_by_side([lambda: os._exit(3), _job(1)], workers=2))


def test_an_unpicklable_result_is_reported_in_one_line():
    with pytest.raises(RuntimeError, match="pickle"):
        list(side_by_side([lambda: lambda: None], workers=1))


def test_output_goes_to_the_streams_of_the_moment(monkeypatch):
    # the parent's streams are looked up when replaying (as click's CliRunner swaps them)
    lines = []

    class Sink:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Sink())
    assert list(side_by_side([_job(5)], workers=1)) == [50]
    assert lines == ["out 5\n"]


SMALL = "name: {name}\nseed: 1\nreplicates: 20\nn: [1, 10]\ncases: [{{name: c, p: 0.7, q: 0.5}}]\n"


def test_side_by_side_only_for_several_small_local_runs():
    small = [parse_config(SMALL.format(name=f"e{i}")) for i in range(3)]
    big = parse_config(SMALL.format(name="big").replace("replicates: 20", "replicates: 100000000"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert side_by_side_width(small, Execution()) == min(3, cores)
    assert side_by_side_width(small[:1], Execution()) == 1
    assert side_by_side_width([*small, big], Execution()) == 1
    assert side_by_side_width(small, Execution(workers=1)) == 1
    assert side_by_side_width(small, Execution(executor="dask")) == 1
    # little work, but a replicates file of ~160 MB: its note and progress bar show as it runs
    large_file = SMALL.format(name="file").replace("replicates: 20", "replicates: 2000000")
    large_file = parse_config(large_file.replace("n: [1, 10]", "n: [1, 2]"))
    assert default_workers(pipeline_for(large_file).work(large_file)) == 1
    assert replicates_note(large_file) is not None
    assert side_by_side_width([*small, large_file], Execution()) == 1


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing runs side by side")
def test_sim_run_side_by_side_writes_what_running_in_turn_writes(cli, write_config, tmp_path):
    configs = [str(write_config(SMALL.format(name=f"e{i}"), f"e{i}.yaml")) for i in range(3)]
    together = cli("run", *configs, "--out", str(tmp_path / "together"), "--no-figures")
    in_turn = cli("run", *configs, "--out", str(tmp_path / "in_turn"), "--no-figures", "--workers", "1")
    assert together.exit_code == in_turn.exit_code == 0

    def first_words(output):
        return [line.split(" ")[0] for line in output.splitlines()]

    assert first_words(together.output) == first_words(in_turn.output)
    assert first_words(together.output)[0::2] == ["e0:", "e1:", "e2:"]
    for i in range(3):
        for name in ("analytic.csv", "summary.csv", "replicates.csv.gz", "config.yaml"):
            a = (tmp_path / "together" / f"e{i}" / name).read_bytes()
            assert a == (tmp_path / "in_turn" / f"e{i}" / name).read_bytes(), (i, name)


def test_jobs_start_in_the_order_asked_and_report_in_theirs(capsys, tmp_path):
    jobs = [_job(i, started=tmp_path) for i in range(3)]
    assert list(side_by_side(jobs, workers=1, start=[2, 0, 1])) == [0, 10, 20]
    started = sorted(tmp_path.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert [p.name for p in started] == ["2", "0", "1"]
    assert capsys.readouterr().out == "out 0\nout 1\nout 2\n"


def test_the_longest_shipped_experiments_start_first():
    """Measured on 2 cores: estimators (exact sums over 50,000 categories for six estimators at 9
    sizes) and vocabulary (the same for the plug-in at 11) take about 23 s and 7.6 s, coin_sweep
    (6 cases of figures) 5.8 s, every other shipped experiment under 3 s."""
    from sim.config import load_all, resolve_paths
    from sim.runner import heaviest_first

    root = Path(__file__).resolve().parents[1]
    shipped = load_all(resolve_paths([str(p) for p in sorted((root / "configs").glob("*.yaml"))]), ())
    first = [shipped[i].name for i in heaviest_first(shipped)[:2]]
    assert first == ["estimators", "vocabulary"]


# --------------------------------------------------------------------------
# Signals across a fork


def _mask() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_a_child_forked_with_signals_held_is_born_holding_them():
    before = _mask()
    with signals_held():
        pid = os.fork()
        if pid == 0:  # the child: held until it releases them; then let in
            born = _mask()
            release_signals()
            os._exit(0 if born >= HELD and not HELD & _mask() else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert _mask() == before  # the parent's mask is back as it was


def _interrupted_where() -> None:
    """A forked child: exit 7 if SIGTERM interrupts it after it released signals, 5 if before."""
    code, stage = 9, "held"
    try:
        try:
            time.sleep(0.3)  # SIGTERM is sent meanwhile; held, it waits
            stage = "released"
            release_signals()
            time.sleep(10)
            code = 3  # never interrupted
        except KeyboardInterrupt:
            code = 7 if stage == "released" else 5
    finally:
        os._exit(code)


def test_a_signal_sent_just_after_the_fork_interrupts_the_child_s_own_code_only():
    """The race behind a hung test suite: SIGTERM, raising KeyboardInterrupt, reaching a child
    between fork() and its own code unwound into the parent's code, in the child. Held, it
    waits for the child's code, and interrupts it there."""
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        with signals_held():
            pid = os.fork()
            if pid == 0:
                _interrupted_where()
            os.kill(pid, signal.SIGTERM)  # at once: the child has not reached its code yet
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7


def _job_mask():
    return _mask()


def _worker_mask(_experiment, _task):
    return _mask()


def test_jobs_and_executor_workers_run_with_signals_let_in():
    from sim.executors import execute
    from sim.tasks import Task

    with signals_held():  # even forked from a thread that holds them
        masks = list(side_by_side([_job_mask, _job_mask], workers=2))
        tasks = [Task(0, b, 1) for b in range(4)]
        masks += [mask for _, mask in execute(_worker_mask, None, tasks, executor="processes", workers=2)]
    assert len(masks) == 6 and all(not HELD & mask for mask in masks)


def _sleep_then_mark(folder: Path) -> None:
    time.sleep(1)
    (folder / "finished").touch()


@pytest.mark.slow
def test_a_signal_arriving_while_a_child_is_forked_stops_that_child_too(tmp_path, monkeypatch):
    """The signal, held during the fork, arrives as the hold ends: the child must be known by then,
    so that the interruption terminates it (it would otherwise run its whole job, unseen)."""
    import multiprocessing

    from sim.cli import _sigterm_interrupts

    fork = multiprocessing.get_context("fork").Process
    start = fork.start

    def start_then_signal(self):
        start(self)
        os.kill(os.getpid(), signal.SIGTERM)  # held now: delivered when the hold ends

    monkeypatch.setattr(fork, "start", start_then_signal)
    with pytest.raises(KeyboardInterrupt), _sigterm_interrupts():
        list(side_by_side([lambda: _sleep_then_mark(tmp_path)], workers=1))
    assert multiprocessing.active_children() == []  # terminated and reaped, not left to finish
    time.sleep(1.5)
    assert not (tmp_path / "finished").exists()
