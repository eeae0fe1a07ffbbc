"""The sim command line, end to end through click's CliRunner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sim.blocks
import sim.runner
from sim.cli import main
from sim.errors import RunError
from tests.helpers import TINY

FILES = {"config.yaml", "analytic.csv", "summary.csv", "replicates.csv.gz", "run.json"}


def _entries(folder: Path) -> list[str]:
    """What a results parent holds, less locks and resume data (.<name>.lock, .<name>.resume)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith((".lock", ".resume")))


def test_run_writes_every_file(cli, write_config, tmp_path):
    cfg = write_config(TINY)
    out = tmp_path / "out"
    r = cli("run", str(cfg), "--out", str(out), "--no-figures")
    assert r.exit_code == 0, r.output
    assert "tiny: 2 case(s)" in r.stdout
    assert {p.name for p in (out / "tiny").iterdir()} >= FILES
    assert _entries(out) == ["tiny"]  # no temporary folders left
    summary = pd.read_csv(out / "tiny" / "summary.csv")
    assert set(summary.case) == {"coin", "die"} and set(summary.n) == {1, 10, 100}


def test_set_overrides_reach_the_run(cli, write_config, tmp_path):
    cfg = write_config(TINY)
    r = cli(
        "run",
        str(cfg),
        "--out",
        str(tmp_path),
        "--set",
        "replicates=20",
        "--set",
        "units=bits",
        "--no-figures",
    )
    assert r.exit_code == 0, r.output
    s = pd.read_csv(tmp_path / "tiny" / "summary.csv")
    assert set(s.replicates) == {20} and set(s.units) == {"bits"}
    text = (tmp_path / "tiny" / "config.yaml").read_text()
    assert "replicates: 20" in text and "units: bits" in text


def test_resolved_config_reproduces_the_run(cli, write_config, tmp_path):
    cfg = write_config(TINY)
    assert cli("run", str(cfg), "--out", str(tmp_path / "a"), "--no-figures").exit_code == 0
    resolved = tmp_path / "a" / "tiny" / "config.yaml"
    assert cli("run", str(resolved), "--out", str(tmp_path / "b"), "--no-figures").exit_code == 0
    for name in ("summary.csv", "replicates.csv.gz", "analytic.csv", "config.yaml"):
        assert (tmp_path / "a" / "tiny" / name).read_bytes() == (tmp_path / "b" / "tiny" / name).read_bytes()


def test_run_without_configs_runs_the_configs_folder(cli, tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "t.yaml").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    r = cli("run", "--no-figures")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "results" / "tiny" / "summary.csv").exists()


def test_run_without_configs_and_without_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("run")
    assert r.exit_code == 2 and "no CONFIG given" in r.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (TINY.replace("p: 0.7", "p: -0.7"), "exp.yaml:7: cases[0].p: must be in [0, 1]"),
        (TINY.replace("q: {uniform: 4}", "q: [0.5, 0.5, 0.0, 0.0]"), "exp.yaml:11: cases[1].q: q is 0"),
        (TINY.replace("seed: 7", "seed: 7\nfoo: 1"), "exp.yaml:3: foo: unknown key"),
        ("", "exp.yaml: the config is empty"),
        ("name: [", "exp.yaml:1: invalid YAML"),
    ],
)
def test_bad_config_exits_2_and_writes_nothing(cli, write_config, tmp_path, text, fragment):
    cfg = write_config(text)
    out = tmp_path / "out"
    r = cli("run", str(cfg), "--out", str(out))
    assert r.exit_code == 2
    assert fragment in r.stderr
    assert "Traceback" not in r.output
    assert r.stdout == ""
    assert not out.exists()


def test_one_bad_config_stops_all_before_anything_runs(cli, write_config, tmp_path):
    good = write_config(TINY, "good.yaml")
    bad = write_config(
        TINY.replace("name: tiny", "name: other").replace("replicates: 50", "replicates: 1"), "bad.yaml"
    )
    r = cli("run", str(good), str(bad), "--out", str(tmp_path / "out"))
    assert r.exit_code == 2 and "bad.yaml:3: replicates" in r.stderr
    assert not (tmp_path / "out").exists()


def test_bad_override_exits_2(cli, write_config, tmp_path):
    cfg = write_config(TINY)
    r = cli("run", str(cfg), "--out", str(tmp_path / "o"), "--set", "n=[100, 10]")
    assert r.exit_code == 2 and "--set n: " in r.stderr and "increase strictly" in r.stderr


def test_unwritable_output_is_refused_before_running(cli, write_config, tmp_path):
    cfg = write_config(TINY)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = cli("run", str(cfg), "--out", str(blocker / "sub"))
    assert r.exit_code == 2 and "cannot write results" in r.stderr


def test_runtime_failure_exits_1_and_keeps_previous_results(cli, write_config, tmp_path, monkeypatch):
    cfg = write_config(TINY)
    out = tmp_path / "out"
    assert cli("run", str(cfg), "--out", str(out), "--no-figures").exit_code == 0
    before = (out / "tiny" / "summary.csv").read_bytes()

    def broken(*args, **kwargs):
        raise RunError("the sampler broke")

    monkeypatch.setattr(sim.blocks, "simulate_block", broken)
    r = cli("run", str(cfg), "--out", str(out), "--set", "seed=99")
    assert r.exit_code == 1 and "the sampler broke" in r.stderr
    assert (out / "tiny" / "summary.csv").read_bytes() == before
    assert _entries(out) == ["tiny"]


def test_interrupt_exits_130_and_leaves_nothing_partial(cli, write_config, tmp_path, monkeypatch):
    cfg = write_config(TINY)

    def interrupted(report, folder, **_options):
        assert (folder / "summary.csv").exists()  # tables staged, not yet published
        raise KeyboardInterrupt

    monkeypatch.setattr(sim.cli, "_draw_figures", interrupted, raising=False)
    real = sim.runner.run_experiment

    def run(*args, **kwargs):
        return real(*args, **{**kwargs, "after": interrupted})

    monkeypatch.setattr(sim.runner, "run_experiment", run)
    r = cli("run", str(cfg), "--out", str(tmp_path / "out"))
    assert r.exit_code == 130 and "Interrupted" in r.stderr
    assert _entries(tmp_path / "out") == []


def test_validate(cli, write_config):
    good = write_config(TINY, "good.yaml")
    r = cli("validate", str(good))
    assert r.exit_code == 0 and "ok" in r.stdout and "2 case(s)" in r.stdout
    bad = write_config(TINY.replace("units", "unit") + "unit: bits\n", "bad.yaml")
    r = cli("validate", str(good), str(bad))
    assert r.exit_code == 2 and "bad.yaml:12: unit: unknown key; did you mean 'units'?" in r.stderr


def test_llr_works_the_source_example_through(cli):
    r = cli("llr", "--p", "0.5", "--q", "0.8", "HTHHTTH")
    assert r.exit_code == 0
    assert "4 heads, 3 tails" in r.stdout
    assert "0.1241" in r.stdout and "0.2231" in r.stdout
    bits = cli("llr", "--p", "0.5", "--q", "0.8", "--units", "bits", "HTH", "HTTH")
    assert "0.1791" in bits.stdout and "0.3219" in bits.stdout


@pytest.mark.parametrize(
    "args",
    [["--p", "0.5", "--q", "0.8", "HTXH"], ["--p", "1.5", "--q", "0.8", "HT"], ["--q", "0.8", "HT"]],
)
def test_llr_bad_input_exits_2(cli, args):
    r = cli("llr", *args)
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_llr_bad_flip_is_reported_as_typed_in_one_line(cli):
    r = cli("llr", "--p", "0.5", "--q", "0.8", "hthx")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == "Error: SEQUENCE: the sequence may hold only H and T; found 'x' at position 4\n"
    spaced = cli("llr", "--p", "0.5", "--q", "0.8", "HT", "hé")
    assert spaced.exit_code == 2
    assert spaced.stderr.strip().endswith("found 'é' at position 5 of 'HT hé'")


@pytest.mark.parametrize(
    ("flips", "counted"),
    [
        ("H", "1 head, 0 tails"),
        ("T", "0 heads, 1 tail"),
        ("HT", "1 head, 1 tail"),
        ("HHT", "2 heads, 1 tail"),
    ],
)
def test_llr_counts_in_the_singular_for_one(cli, flips, counted):
    r = cli("llr", "--p", "0.5", "--q", "0.8", flips)
    assert r.exit_code == 0 and f"({counted})" in r.stdout


def test_validate_describes_a_fit_experiment_as_a_fit(cli):
    r = cli("validate", str(Path(__file__).resolve().parents[1] / "configs" / "classifier.yaml"))
    assert r.exit_code == 0, r.output
    assert "sampler" not in r.stdout
    assert (
        "fit of 4 model(s) (saturated, linear, constant, ordinal) to 3 input(s) × 3 classes, "
        "N = 20…100,000 (12 sizes), 300 replicates, smoothing 0.5, nats"
    ) in r.stdout


def test_every_command_has_help_with_an_example(cli):
    assert cli("--help").exit_code == 0
    for name in main.commands:
        r = cli(name, "--help")
        assert r.exit_code == 0, name
        assert "Example" in r.stdout, name


def test_python_dash_m_sim_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run(
        [sys.executable, "-m", "sim", "llr", "--p", "0.5", "--q", "0.8", "HTHHTTH"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert r.returncode == 0 and "0.1241" in r.stdout


@pytest.mark.parametrize("outcome", ["finished", "interrupted"])
def test_run_leaves_the_sigterm_handler_as_it_found_it(cli, write_config, tmp_path, monkeypatch, outcome):
    """SIGTERM interrupts a run cleanly, but only while it runs: a process that invoked ``sim run``
    (a test runner, a notebook) must still die on SIGTERM afterwards. Left installed, the handler
    passed to the processes this one forks later, hanging a ``multiprocessing.Pool``'s terminate()."""
    import signal

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        seen = []
        real = sim.runner.run_experiment

        def run(*args, **kwargs):
            seen.append(signal.getsignal(signal.SIGTERM))
            if outcome == "interrupted":
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(sim.runner, "run_experiment", run)
        r = cli("run", str(write_config(TINY)), "--out", str(tmp_path / "out"), "--no-figures")
        assert r.exit_code == (0 if outcome == "finished" else 130), r.output
        assert seen == [sim.cli._interrupt]  # during the run
        assert signal.getsignal(signal.SIGTERM) is mine  # after it
    finally:
        signal.signal(signal.SIGTERM, previous)
