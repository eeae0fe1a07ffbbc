"""Replicates chosen by target precision: ``replicates: {mcse, max, estimators}``."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import precision as prec
from sim.check import check_results
from sim.config import load_config, parse_config
from sim.errors import ConfigError
from sim.runner import Execution, run_experiment
from sim.tasks import block_size

CONFIG = """
name: adaptive
seed: 11
n: [10, 100, 1000]
replicates: {{mcse: {mcse}, max: {max}{extra}}}
save_replicates: {save}
cases:
  - {{name: coin, p: 0.3, q: 0.5}}
  - {{name: mid, p: {{zipf: {{k: 3000, s: 1.1}}}}, q: {{uniform: 3000}}}}
  - {{name: wide, p: {{zipf: {{k: 3000, s: 0.6}}}}, q: {{zipf: {{k: 3000, s: 1.6}}}}}}
"""
MAX = 5000


def _config(mcse=0.01, max=MAX, extra="", save="true"):
    return parse_config(CONFIG.format(mcse=mcse, max=max, extra=extra, save=save))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("precision")
    e = _config()
    serial = run_experiment(e, out / "serial", execution=Execution(workers=1))
    assert serial.check.passed, serial.check.table()  # sim check replays the counts (below: when wrong)
    return {"serial": serial.path, "two": run_experiment(e, out / "two", execution=Execution(workers=2)).path}


@pytest.mark.slow
def test_every_row_asked_for_meets_the_target_or_max_is_reached(runs):
    s = pd.read_csv(runs["serial"] / "summary.csv")
    llr = s[s.estimator == "llr"]
    for case, part in llr.groupby("case"):
        r = int(part.replicates.iloc[0])
        assert (part.replicates == r).all() and (s[s.case == case].replicates == r).all()
        assert (part.mcse <= 0.01).all() or r == MAX, case
    reached = llr.groupby("case").replicates.first()
    assert reached["coin"] == MAX  # its first block (8,192) is more than max: one round of max
    assert reached["mid"] == MAX and not (llr[llr.case == "mid"].mcse <= 0.01).all()  # short: a note
    size = block_size(_config().cases[2].pair.cells)
    assert size < reached["wide"] < MAX and reached["wide"] % size == 0  # rounds of whole blocks


@pytest.mark.slow
def test_counts_are_whole_blocks_and_the_first_that_meets_the_target(runs):
    """The rule, replayed here from its definition on the saved replicates: each case stops at the
    first count of its sequence (one block, then predictions in whole blocks) that meets the target."""
    e = _config()
    reps = pd.read_csv(runs["serial"] / "replicates.csv.gz")
    for case in e.cases:
        part = reps[reps.case == case.name].sort_values(["replicate", "n"])
        llr = part.llr.to_numpy().reshape(-1, 3)
        size = block_size(case.pair.cells)
        count, seen = min(MAX, size), []
        while True:
            seen.append(count)
            mcse = llr[:count].std(axis=0, ddof=1) / math.sqrt(count)
            if np.all(mcse <= 0.01 * (1 - 1e-9)) or count >= MAX:
                break
            count = prec.next_count(e.precision, count, size, mcse)
        assert llr.shape[0] == count, case.name
        assert all(c % size == 0 or c == MAX for c in seen)
        assert all(np.any(llr[:c].std(axis=0, ddof=1) / math.sqrt(c) > 0.01) for c in seen[:-1])


@pytest.mark.slow
def test_one_and_two_workers_write_the_same_bytes(runs):
    for name in ("config.yaml", "analytic.csv", "summary.csv", "replicates.csv.gz"):
        assert (runs["serial"] / name).read_bytes() == (runs["two"] / name).read_bytes(), name


@pytest.mark.slow
def test_sim_check_replays_the_counts(runs, tmp_path):
    """Without the coin's last replicate, its count is not one the rule stops at: the check fails."""
    folder = tmp_path / "short"
    folder.mkdir()
    for f in runs["serial"].iterdir():
        if f.is_file():
            (folder / f.name).write_bytes(f.read_bytes())
    reps = pd.read_csv(folder / "replicates.csv.gz")
    last = reps[reps.case == "coin"].replicate.max()
    reps = reps[~((reps.case == "coin") & (reps.replicate == last))]
    with gzip.open(folder / "replicates.csv.gz", "wt", compresslevel=1) as fh:
        reps.to_csv(fh, index=False)
    report = check_results(folder)
    assert not report.passed
    failed = report.failures
    assert ((failed.column == "replicates by target precision") & (failed.case == "coin")).any()


@pytest.mark.slow
def test_the_resolved_config_records_the_target_and_reruns_to_the_same_bytes(runs, tmp_path):
    text = (runs["serial"] / "config.yaml").read_text(encoding="utf-8")
    assert "replicates:\n  mcse: 0.01\n  max: 5000\n  estimators: [llr]\n" in text
    again = run_experiment(
        load_config(runs["serial"] / "config.yaml"), tmp_path, execution=Execution(workers=1)
    )
    assert (again.path / "summary.csv").read_bytes() == (runs["serial"] / "summary.csv").read_bytes()
    s = pd.read_csv(again.path / "summary.csv")
    mid = s[(s.case == "mid") & (s.estimator == "llr")]
    short = int((mid.mcse > 0.01).sum())
    assert short >= 1 and again.notes == [
        f"case mid: {short} row(s) asked for reached max = 5,000 replicates with an MCSE above 0.01 "
        f"(largest {mid.mcse.max():.3g}: llr at n = 10)"
    ]


@pytest.mark.slow
def test_other_estimators_can_be_asked_for_and_streamed_runs_stop_alike(tmp_path):
    e = _config(mcse=0.02, max=MAX, extra=", estimators: [llr, plugin_kl]", save="false")
    run = run_experiment(e, tmp_path, execution=Execution(workers=1))
    s = run.summary
    asked = s[s.estimator.isin(["llr", "plugin_kl"])]
    for _, part in asked.groupby("case"):
        assert (part.mcse <= 0.02).all() or (part.replicates == MAX).all()
    assert run.check.passed, run.check.table()
    assert not (tmp_path / "adaptive" / "replicates.csv.gz").exists()


@pytest.mark.parametrize(
    ("replicates", "message"),
    [
        ("{mcse: 0.01}", "replicates: missing key 'max' (the most replicates a case may have)"),
        ("{max: 1000}", "replicates: missing key 'mcse' (the target Monte Carlo standard error)"),
        ("{mcse: 0, max: 1000}", "replicates.mcse: must be in (0, 1e+12], got 0.0"),
        ("{mcse: 0}", "replicates.mcse: must be in (0, 1e+12], got 0.0"),
        ("{mcse: 0.01, max: 1}", "replicates.max: must be between 2"),
        ("{mcse: 0.01, max: 100, estimators: [k2]}", "replicates.estimators[0]: 'k2' is not one of"),
        ("{mcse: 0.01, max: 100, estimators: []}", "replicates.estimators: must be a non-empty list"),
        ("{mcse: 0.01, max: 100, rows: all}", "replicates.rows: unknown key"),
        ("{mcse: 0.01, max: 1e1, estimators: [llr, llr]}", "replicates.estimators: lists an estimator twice"),
    ],
)
def test_config_errors(write_config, replicates, message):
    path = write_config(
        f"name: e\nn: [10]\nreplicates: {replicates}\ncases:\n  - {{name: c, p: 0.3, q: 0.5}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:3: {message}" in str(info.value)


def test_a_fit_experiment_refuses_a_target_precision(write_config):
    shipped = (Path(__file__).resolve().parents[1] / "configs" / "classifier.yaml").read_text(
        encoding="utf-8"
    )
    assert "\nreplicates: 300" in shipped
    path = write_config(shipped.replace("\nreplicates: 300", "\nreplicates: {mcse: 0.01, max: 100}"))
    with pytest.raises(ConfigError, match=r"a target precision .* applies to convergence experiments"):
        load_config(path)
