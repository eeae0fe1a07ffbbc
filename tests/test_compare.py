"""``sim compare A B``: two results folders' means, row by row, in units of their combined MCSE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.compare import compare_results
from sim.config import parse_config
from sim.runner import Execution, run_experiment

CONFIG = """
name: cmp
seed: {seed}
replicates: 200
n: [1, 10, 100, 1000]
estimators: [llr, cross_entropy, entropy, plugin_kl]
cases:
  - {{name: coin, p: 0.3, q: 0.5}}
  - {{name: die, p: [0.1, 0.2, 0.3, 0.4], q: {{uniform: 4}}}}
"""


def _run(out: Path, seed: int = 1, **changes: str) -> Path:
    text = CONFIG.format(seed=seed)
    for old, new in changes.items():
        text = text.replace(old, new)
    return run_experiment(parse_config(text), out, execution=Execution(workers=1)).path


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("compare")
    return {"a": _run(base / "a"), "seed2": _run(base / "b", seed=2)}


def _copy(folder: Path, to: Path) -> Path:
    return Path(shutil.copytree(folder, to / folder.name))


def _shift(folder: Path, case: str, n: int, estimator: str, by) -> None:
    """Move one row's mean: ``by(mean, mcse)`` is the new mean."""
    path = folder / "summary.csv"
    s = pd.read_csv(path)
    row = (s.case == case) & (s.n == n) & (s.estimator == estimator)
    assert row.sum() == 1
    s.loc[row, "mean"] = by(float(s.loc[row, "mean"].iloc[0]), float(s.loc[row, "mcse"].iloc[0]))
    s.to_csv(path, index=False)


def test_a_folder_agrees_with_itself_exactly(cli, folders):
    r = cli("compare", str(folders["a"]), str(folders["a"]))
    assert r.exit_code == 0, r.output
    assert "agree" in r.stdout and "largest |z| = 0.00" in r.stdout


def test_a_rerun_under_another_seed_agrees(cli, folders):
    c = compare_results(folders["a"], folders["seed2"])
    assert c.comparable and c.agree, c.table()
    assert (c.rows.z != 0).any()  # the seeds did change the means: a real test
    assert cli("compare", str(folders["a"]), str(folders["seed2"])).exit_code == 0


def test_a_mean_moved_by_ten_mcse_is_named(cli, folders, tmp_path):
    b = _copy(folders["seed2"], tmp_path)
    _shift(b, "coin", 100, "llr", lambda mean, mcse: mean + 10.0 * mcse)
    r = cli("compare", str(folders["a"]), str(b))
    assert r.exit_code == 1
    assert "DISAGREE" in r.stdout
    assert "case 'coin', n = 100, llr: means" in r.stdout
    bad = compare_results(folders["a"], b).disagreements
    assert list(zip(bad.case, bad.n, bad.estimator, strict=True)) == [("coin", 100, "llr")]


def test_exact_rows_agree_to_rounding_and_no_further(folders, tmp_path):
    """die's cross-entropy against a uniform q is log 4 for every sample: its MCSE is that value's
    rounding (1e-17), by which a z would divide a last-bit gap; equal to rounding is agreement."""
    s = pd.read_csv(folders["a"] / "summary.csv")
    exact = s[(s.case == "die") & (s.estimator == "cross_entropy")]
    assert (exact.mcse <= 1e-15 * exact["mean"]).all()
    b = _copy(folders["a"], tmp_path / "rounded")
    _shift(b, "die", 10, "cross_entropy", lambda mean, _: mean * (1 + 1e-13))
    assert compare_results(folders["a"], b).agree
    c = _copy(folders["a"], tmp_path / "moved")
    _shift(c, "die", 10, "cross_entropy", lambda mean, _: mean * (1 + 1e-7))
    assert not compare_results(folders["a"], c).agree


def test_infinite_means_must_be_equal(folders, tmp_path):
    b = _copy(folders["a"], tmp_path / "inf")
    _shift(b, "coin", 1, "plugin_kl", lambda *_: np.inf)
    assert not compare_results(folders["a"], b).agree
    assert compare_results(b, b).agree


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"[1, 10, 100, 1000]": "[1, 10, 100]"}, "different sample sizes: only A has 1000"),
        ({"name: die": "name: dice"}, "different cases: only A has die; only B has dice"),
        ({"p: 0.3": "p: 0.35"}, "case 'coin' differs in analytic.csv's kl_pq"),
        ({"seed: 1": "seed: 1\nunits: bits"}, "different units: nats and bits"),
    ],
)
@pytest.mark.slow
def test_folders_of_different_experiments_are_not_comparable(cli, folders, tmp_path, changes, why):
    b = _run(tmp_path, **changes)
    r = cli("compare", str(folders["a"]), str(b))
    assert r.exit_code == 2
    assert why in r.stdout
    data = json.loads(cli("compare", str(folders["a"]), str(b), "--json").stdout)
    assert data["comparable"] is False and data["agree"] is False
    assert any(why in w for w in data["why"])


@pytest.mark.slow
def test_estimators_only_one_folder_has_are_left_out_with_a_note(folders, tmp_path):
    b = _run(tmp_path, **{"plugin_kl]": "plugin_kl, k2]"})
    c = compare_results(folders["a"], b)
    assert c.comparable and set(c.rows.estimator) == {"llr", "cross_entropy", "entropy", "plugin_kl"}
    assert c.notes == [f"only {b} has k2: left out"]


def test_json_lists_every_row_and_the_disagreements(cli, folders, tmp_path):
    b = _copy(folders["a"], tmp_path)
    _shift(b, "die", 1000, "entropy", lambda mean, mcse: mean - 10.0 * mcse)
    r = cli("compare", str(folders["a"]), str(b), "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["agree"] is False and len(data["rows"]) == 2 * 4 * 4
    assert [(d["case"], d["n"], d["estimator"]) for d in data["disagreements"]] == [("die", 1000, "entropy")]
    assert data["disagreements"][0]["z"] == pytest.approx(10.0 / np.sqrt(2.0), rel=1e-9, abs=0.0)


def test_a_folder_that_is_not_one_exits_2_in_one_line(cli, folders, tmp_path):
    r = cli("compare", str(folders["a"]), str(tmp_path / "nothing"))
    assert r.exit_code == 2
    assert "not a results folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
