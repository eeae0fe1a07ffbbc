"""The shipped experiments: valid, described, and their committed results regenerate."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import figures
from sim.config import load_config
from sim.runner import run_experiment
from tests.conftest import z_crit

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
REQUIRED = {"coin", "coin_sweep", "categorical", "vocabulary", "bits", "classifier", "testing"}


def test_the_required_experiments_are_shipped():
    assert {p.stem for p in CONFIGS} >= REQUIRED


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_is_valid_and_described(path):
    e = load_config(path)
    assert e.name == path.stem
    assert e.description and "\n" not in e.description


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_committed_results_are_what_sim_run_produces(path, tmp_path):
    """Byte-equal with the recorded numpy; statistically equal with another.

    numpy promises stable streams only within a version, so under another
    version each summary mean must agree with the committed one within
    z·√(mcse₁² + mcse₂²) (Bonferroni over the rows), exact rows exactly.
    """
    e = load_config(path)
    committed = ROOT / "results" / e.name
    fresh = run_experiment(e, tmp_path).path
    assert (fresh / "config.yaml").read_bytes() == (committed / "config.yaml").read_bytes()
    assert (fresh / "analytic.csv").read_bytes() == (committed / "analytic.csv").read_bytes()
    recorded = json.loads((committed / "run.json").read_text())["versions"]["numpy"]
    if recorded == metadata.version("numpy"):
        for name in ("summary.csv", "replicates.csv.gz", "trajectory.csv"):
            if (committed / name).exists():
                assert (fresh / name).read_bytes() == (committed / name).read_bytes(), name
        return
    a, b = pd.read_csv(committed / "summary.csv"), pd.read_csv(fresh / "summary.csv")
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    se = np.sqrt(a.mcse**2 + b.mcse**2)
    tol = np.maximum(z_crit(len(a)) * se, 1e-12 * np.maximum(1, a["mean"].abs()))
    assert np.all(np.abs(a["mean"] - b["mean"]) <= tol)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_committed_figures_exist(path):
    folder = ROOT / "results" / path.stem
    kinds = figures.figure_kinds(figures.load_tables(folder))
    assert {p.stem for p in (folder / "figures").glob("*.png")} == set(kinds)
    assert len(kinds) >= 2
