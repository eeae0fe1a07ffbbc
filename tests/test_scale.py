"""Scale: executors with identical bytes, streaming summaries, resume, progress, memory."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim.blocks
import sim.runner
from sim.config import parse_config
from sim.executors import default_workers
from sim.pipelines import ConvergencePipeline
from sim.progress import Progress
from sim.resume import ResumeStore
from sim.runner import Execution, run_experiment
from sim.tasks import BLOCKS_PER_TASK, block_size, plan

ROOT = Path(__file__).resolve().parents[1]

# Two cases, several tasks each (blocks of 8192 replicates, 4 blocks a task).
CONFIG = """
name: scale
seed: 11
replicates: 100000
save_replicates: false
n: [1, 10, 1000, 1000000000000]
cases:
  - {name: coin, p: 0.7, q: 0.5}
  - {name: die, p: [0.1, 0.2, 0.3, 0.4], q: {uniform: 4}}
"""
SMALL = CONFIG.replace("replicates: 100000", "replicates: 20000").replace("save_replicates: false\n", "")
FILES = ("summary.csv", "replicates.csv.gz", "analytic.csv", "config.yaml")


def _run(text, out, **execution):
    return run_experiment(parse_config(text), out, execution=Execution(quiet=True, **execution))


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """CONFIG run serially: the bytes every executor and every resumed run must give."""
    return _run(CONFIG, tmp_path_factory.mktemp("reference"), workers=1).path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """SMALL run serially with its progress bar on a terminal: (report, what the terminal showed)."""
    tty = _Tty()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sys, "stderr", tty)
        report = run_experiment(
            parse_config(SMALL), tmp_path_factory.mktemp("small"), execution=Execution(workers=1)
        )
    return report, tty.getvalue()


def test_tasks_do_not_depend_on_workers():
    e = parse_config(CONFIG)
    tasks = plan(e)
    blocks = -(-100000 // block_size(2))
    assert [t.case for t in tasks] == [0] * 4 + [1] * 4
    assert all(t.blocks <= BLOCKS_PER_TASK for t in tasks)
    assert sum(t.blocks for t in tasks) == 2 * blocks


@pytest.mark.slow
@pytest.mark.parametrize("save", ["true", "false"])
def test_serial_processes_and_dask_write_identical_bytes(tmp_path, save, reference):
    pytest.importorskip("distributed")
    text = CONFIG.replace("save_replicates: false", f"save_replicates: {save}")
    if save == "true":  # still two tasks a case (4 blocks and 1)
        text = text.replace("replicates: 100000", "replicates: 33000")
        serial = _run(text, tmp_path / "1", workers=1).path
    else:
        serial = reference
    pool = _run(text, tmp_path / "2", workers=2).path
    dask = _run(text, tmp_path / "d", executor="dask", workers=2).path
    for name in FILES:
        if name == "replicates.csv.gz" and save == "false":
            assert not (serial / name).exists()
            continue
        assert (serial / name).read_bytes() == (pool / name).read_bytes(), name
        assert (serial / name).read_bytes() == (dask / name).read_bytes(), name


@pytest.mark.slow
def test_streaming_summary_equals_the_in_memory_one(tmp_path, small):
    full = small[0].summary
    lean = _run(SMALL + "save_replicates: false\n", tmp_path / "lean")
    assert not (lean.path / "replicates.csv.gz").exists()
    s = lean.summary
    # merged moments differ from numpy's two-pass ones by rounding only; bias
    # (mean − target) and the rounding-level sd of constant estimators show it
    for col in ("mean", "sd", "mcse", "bias", "rmse", "exact_mean", "exact_sd"):
        np.testing.assert_allclose(s[col], full[col], rtol=1e-9, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(s.coverage95, full.coverage95)
    for q in ("q05", "q50", "q95"):
        assert np.all(np.abs(s[q] - full[q]) <= s.quantile_error + 1e-12), q
    assert (s.quantile_error < 0.05 * np.maximum(full.sd, 1e-300) + 1e-12).mean() > 0.5
    assert lean.check.passed


def test_tilted_estimator_streams_within_its_a_priori_bound(tmp_path):
    """save_replicates: false keeps p_wrong_tilted: its values lie in [0, exp(−n·C)], binned there."""
    from sim.decision import chernoff

    text = SMALL.replace("replicates: 20000", "replicates: 3000").replace(
        "n: [1, 10, 1000, 1000000000000]", "n: [1, 10, 100, 1000]\nestimators: [llr, p_wrong, p_wrong_tilted]"
    )
    full = _run(text, tmp_path / "full")
    lean = _run(text + "save_replicates: false\n", tmp_path / "lean")
    reps = pd.read_csv(full.path / "replicates.csv.gz")
    for case in parse_config(text).cases:
        c = chernoff(case.pair).information
        for n, values in reps[reps.case == case.name].groupby("n").p_wrong_tilted:
            assert values.min() >= 0 and values.max() <= math.exp(-n * c) * (1 + 1e-12), (case.name, n)
    s, f = lean.summary, full.summary
    for col in ("mean", "sd", "mcse", "exact_mean", "exact_sd"):
        np.testing.assert_allclose(s[col], f[col], rtol=1e-9, atol=1e-300, equal_nan=True)
    for q in ("q05", "q50", "q95"):
        assert np.all(np.abs(s[q] - f[q]) <= s.quantile_error * (1 + 1e-9) + 1e-300), q
    assert lean.check.passed


def test_resume_after_an_interruption_gives_identical_bytes(tmp_path, monkeypatch, reference):
    real = sim.blocks.run_task
    calls = []

    def interrupted(experiment, task):
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(experiment, task)

    monkeypatch.setattr(ConvergencePipeline, "run_task", staticmethod(interrupted))
    with pytest.raises(KeyboardInterrupt):
        _run(CONFIG, tmp_path / "out")
    assert not (tmp_path / "out" / "scale").exists()
    assert len(list((tmp_path / "out" / ".scale.resume").glob("task-*.npz"))) == 2
    calls.clear()
    monkeypatch.setattr(
        ConvergencePipeline, "run_task", staticmethod(lambda e, t: (calls.append(t), real(e, t))[1])
    )
    resumed = _run(CONFIG, tmp_path / "out", resume=True).path
    assert len(calls) == len(plan(parse_config(CONFIG))) - 2  # only the unfinished tasks ran
    for name in ("summary.csv", "analytic.csv", "config.yaml"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    assert not (tmp_path / "out" / ".scale.resume").exists()


def _fail_on_third_task(experiment, task, real=sim.blocks.run_task):
    if task.first == 2 * BLOCKS_PER_TASK and task.case == 0:
        raise RuntimeError("worker failure")
    return real(experiment, task)


def test_worker_processes_store_their_tasks_for_resume(tmp_path, monkeypatch, reference):
    """With --workers 2 the workers write the resume files; resuming from them is exact."""
    monkeypatch.setattr(
        ConvergencePipeline, "run_task", staticmethod(_fail_on_third_task)
    )  # forked workers inherit it
    with pytest.raises(RuntimeError, match="worker failure"):
        _run(CONFIG, tmp_path / "out", workers=2)
    stored = {f.name for f in (tmp_path / "out" / ".scale.resume").glob("task-*.npz")}
    assert {"task-0000-00000000.npz", "task-0000-00000004.npz"} <= stored
    assert "task-0000-00000008.npz" not in stored
    monkeypatch.undo()
    calls = []
    real = sim.blocks.run_task
    monkeypatch.setattr(
        ConvergencePipeline, "run_task", staticmethod(lambda e, t: (calls.append(t), real(e, t))[1])
    )
    resumed = _run(CONFIG, tmp_path / "out", resume=True, workers=1).path
    assert len(calls) == len(plan(parse_config(CONFIG))) - len(stored)
    for name in ("summary.csv", "analytic.csv", "config.yaml"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name


def test_resume_refuses_a_different_config(tmp_path, monkeypatch, cli):
    def interrupted(experiment, task):
        raise KeyboardInterrupt

    monkeypatch.setattr(ConvergencePipeline, "run_task", staticmethod(interrupted))
    cfg = tmp_path / "scale.yaml"
    cfg.write_text(SMALL)
    r = cli("run", str(cfg), "--out", str(tmp_path / "o"), "--no-figures")
    assert r.exit_code == 130
    monkeypatch.undo()
    r = cli("run", str(cfg), "--out", str(tmp_path / "o"), "--no-figures", "--resume", "--set", "seed=12")
    assert r.exit_code == 2 and "refusing to resume" in r.stderr


def test_progress_bar_only_on_a_terminal():
    tty, pipe = _Tty(), io.StringIO()
    for stream, quiet in ((tty, False), (pipe, False), (_Tty(), True)):
        bar = Progress(10, "x", quiet=quiet, stream=stream)
        bar.start -= 5  # as if the run had lasted five seconds
        for _ in range(10):
            bar.update()
        bar.close()
    assert "10/10 blocks" in tty.getvalue() and "ETA" in tty.getvalue() and "/s" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_scheduler_needs_the_dask_executor(cli, tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(SMALL)
    r = cli("run", str(cfg), "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1")
    assert r.exit_code == 2 and "--scheduler goes with --executor dask" in r.stderr


def test_default_workers_is_serial_for_small_runs():
    work = ConvergencePipeline().work
    assert default_workers(work(parse_config(SMALL))) == 1
    big = parse_config(CONFIG.replace("replicates: 100000", "replicates: 100000000"))
    assert default_workers(work(big)) == max(1, os.cpu_count() or 1)


@pytest.mark.slow
def test_streaming_memory_stays_bounded(tmp_path):
    # 2·10^6 replicates × 4 checkpoints × 4 estimators: the replicates alone
    # would take 256 MB; the streaming run's peak RSS stays far below.
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        "name: mem\nseed: 1\nreplicates: 2000000\nsave_replicates: false\nn: [1, 100, 10000, 1000000]\n"
        "cases: [{name: coin, p: 0.7, q: 0.5}]\n"
    )
    # VmHWM (peak RSS of this process image); ru_maxrss would carry over the
    # forking test process's own peak across exec.
    code = (
        "import re, sys; from sim.cli import main\n"
        "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n    print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            str(cfg),
            "--out",
            str(tmp_path),
            "--no-figures",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    peak_kb = int(r.stdout.strip().splitlines()[-1])
    assert peak_kb < 400 * 1024, peak_kb
    assert pd.read_csv(tmp_path / "mem" / "summary.csv").replicates.eq(2_000_000).all()


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and __import__("platform").libc_ver()[0] == "glibc"),
    reason="glibc only",
)
def test_allocator_settings_take_effect_under_glibc():
    from sim.allocator import keep_freed_memory

    assert keep_freed_memory() is True


# 13 tasks of 4 blocks: killed once 4 are stored, 9 are left to resume.
KILLED = """
name: killed
seed: 5
replicates: 400000
save_replicates: false
n: {min: 1, max: 1000000000, points: 40}
cases:
  - {name: coin, p: 0.6, q: 0.5}
"""


@pytest.mark.slow
def test_a_run_killed_halfway_and_resumed_equals_the_uninterrupted_one(tmp_path):
    """SIGKILL to the whole process group (client and worker processes) mid-run, then --resume."""
    import signal
    import time

    reference = _run(KILLED, tmp_path / "ref", workers=2).path
    cfg = tmp_path / "killed.yaml"
    cfg.write_text(KILLED)
    args = [sys.executable, "-m", "sim", "run", str(cfg), "--out", str(tmp_path / "out"), "--no-figures"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*args, "--workers", "2"], env=env, start_new_session=True)
    resume = tmp_path / "out" / ".killed.resume"
    deadline = time.monotonic() + 60
    while len(list(resume.glob("task-*.npz"))) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / "killed").exists()  # killed before it finished
    stored = len(list(resume.glob("task-*.npz")))
    total = len(plan(parse_config(KILLED)))
    assert 4 <= stored < total
    done = subprocess.run(
        [*args, "--resume", "--quiet"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for name in ("summary.csv", "analytic.csv", "config.yaml"):
        assert (tmp_path / "out" / "killed" / name).read_bytes() == (reference / name).read_bytes(), name
    assert not resume.exists()


@pytest.mark.slow
def test_a_run_counts_its_progress_in_blocks(small):
    blocks = sum(t.blocks for t in plan(parse_config(SMALL)))
    assert blocks == 2 * -(-20000 // block_size(2))
    assert f"{blocks}/{blocks} blocks" in small[1]


def test_streamed_experiments_of_one_name_and_seed_do_not_share_histogram_ranges(tmp_path):
    """The same config with other checkpoints, in one process (as --set would give)."""
    from sim.blocks import ranges_of
    from sim.streaming import Ranges

    lean = SMALL + "save_replicates: false\n"
    assert _run(lean, tmp_path / "a").check.passed
    other = parse_config(lean.replace("n: [1, 10, 1000, 1000000000000]", "n: [2, 20, 2000]"))
    used = ranges_of(other, 1)
    c = other.cases[1]
    expected = Ranges.for_case(c.pair, other.checkpoints, other.estimators, other.units)
    np.testing.assert_array_equal(used.fine_lo, expected.fine_lo)
    np.testing.assert_array_equal(used.fine_hi, expected.fine_hi)
    assert run_experiment(other, tmp_path / "b", execution=Execution(quiet=True)).check.passed


def test_a_resume_store_touches_the_disk_only_when_opened(tmp_path):
    store = ResumeStore(tmp_path / ".x.resume", "stamp")
    assert not store.folder.exists()
    assert ResumeStore.open(tmp_path, "x", "stamp", resume=False) == store
    assert (store.folder / "fingerprint").read_text() == "stamp"
    (store.folder / "task-0000-00000000.npz").write_bytes(b"")
    ResumeStore.open(tmp_path, "x", "stamp", resume=True)
    assert (store.folder / "task-0000-00000000.npz").exists()  # kept for --resume
    ResumeStore.open(tmp_path, "x", "stamp", resume=False)
    assert not (store.folder / "task-0000-00000000.npz").exists()  # a fresh run starts empty


def test_a_run_may_leave_its_check_for_later(tmp_path):
    """Execution(check=False): no check stage, run.json says so, and sim check on the folder agrees."""
    import json

    from sim.check import check_results

    report = _run(SMALL, tmp_path, workers=1, check=False)
    assert report.check is None and "check" not in report.timings
    info = json.loads((report.path / "run.json").read_text(encoding="utf-8"))
    assert info["check"] == {
        "agrees_with_theory": None,
        "summary": "not checked (run sim check on this folder)",
    }
    assert check_results(report.path).passed


@pytest.mark.slow
def test_a_run_in_rounds_on_dask_starts_one_cluster_and_writes_the_serial_bytes(tmp_path, monkeypatch):
    """Replicates by target precision run in rounds; on a local Dask cluster they share one."""
    distributed = pytest.importorskip("distributed")
    text = (
        "name: rounds\nseed: 5\nn: [10, 100]\nreplicates: {mcse: 0.02, max: 3000}\ncases:\n"
        "  - {name: wide, p: {zipf: {k: 3000, s: 0.6}}, q: {zipf: {k: 3000, s: 1.6}}}\n"
    )
    serial = _run(text, tmp_path / "serial", workers=1)
    assert serial.summary.replicates.iloc[0] > block_size(3000)  # more than one round
    started = []

    class Counted(distributed.LocalCluster):
        def __init__(self, *args, **kwargs):
            started.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(distributed, "LocalCluster", Counted)
    dask = _run(text, tmp_path / "dask", executor="dask", workers=2)
    assert len(started) == 1
    for name in ("summary.csv", "replicates.csv.gz"):
        assert (dask.path / name).read_bytes() == (serial.path / name).read_bytes(), name
