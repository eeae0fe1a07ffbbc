"""The shipped experiments: valid, described, and their committed results regenerate.

What "regenerate" means depends on the machine (README, "Reproducibility"):
byte for byte where the committed ``run.json`` records this machine (the
same numpy version and CPU paths); within the cross-machine bound of
:mod:`tests.agreement` on another CPU with the same numpy; statistically
with another numpy version, whose random streams may differ.  Never skipped.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim import figures, provenance
from sim.config import load_config
from sim.runner import Execution, run_experiment
from tests.agreement import another_cpu, disagreements
from tests.helpers import TINY, z_crit

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
REQUIRED = {"coin", "coin_sweep", "categorical", "vocabulary", "bits", "classifier", "testing", "estimators"}
FILES = ("config.yaml", "README.md", "analytic.csv", "summary.csv", "replicates.csv.gz", "trajectory.csv")


#: Run first, so that the two processes of :func:`runs` finish together (the others take seconds).
LONGEST = ("estimators", "vocabulary", "classifier")

#: The other-CPU comparison of these two runs a smaller copy of each (the same cases and
#: estimators, fewer sample sizes and replicates), on this machine and on the emulated one: their
#: full runs spend half a minute of the suite's CPU on exact sums over 50,000 categories, which the
#: emulation would only repeat at sample sizes the smaller copy already reaches in every code path.
SMALLER = {
    "estimators": {"n": [1, 1000], "replicates": 20},
    "vocabulary": {"n": [10, 10000], "replicates": 20},
}


def _run(path: Path, out: Path, emulated: bool, smaller: bool = False) -> Path:
    """Run one shipped config serially into ``out`` (in a worker process); ``emulated``: on another CPU;
    ``smaller``: its :data:`SMALLER` copy."""
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.ExitStack() as stack:
        experiment = load_config(path)
        if smaller:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) | SMALLER[path.stem]
            copy = out.parent / f"{path.stem}-smaller-{emulated}.yaml"
            copy.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
            experiment = load_config(copy)
        if emulated:
            stack.enter_context(another_cpu(monkeypatch))
        # not checked here: the committed folders are (test_check_tampering); these are compared
        return run_experiment(experiment, out, execution=Execution(workers=1, check=False)).path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """Each shipped config run on this machine ("fresh") and on an emulated other CPU ("emulated");
    for the :data:`SMALLER` ones, the emulated run and its own baseline ("baseline") are the copy's.

    Each run is serial, in a process of its own forked from this one (so
    that neither the emulation nor anything it cached outlives it); two run
    at a time.  By (name, what).
    """
    out = tmp_path_factory.mktemp("shipped")
    jobs = [(path, "fresh") for path in CONFIGS] + [(path, "emulated") for path in CONFIGS]
    jobs += [(path, "baseline") for path in CONFIGS if path.stem in SMALLER]
    jobs.sort(key=lambda job: job[0].stem not in LONGEST)
    args = [
        (path, out / what, what == "emulated", path.stem in SMALLER and what != "fresh")
        for path, what in jobs
    ]
    fork = multiprocessing.get_context("fork")
    with fork.Pool(min(2, os.cpu_count() or 1), maxtasksperchild=1) as pool:
        done = pool.starmap(_run, args, chunksize=1)
    return {(path.stem, what): folder for (path, what), folder in zip(jobs, done, strict=True)}


def test_the_required_experiments_are_shipped():
    assert {p.stem for p in CONFIGS} >= REQUIRED


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_is_valid_and_described(path):
    e = load_config(path)
    assert e.name == path.stem
    assert e.description and "\n" not in e.description


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_committed_results_are_what_sim_run_produces(path, runs):
    """Bytes on the recording machine; the stated bound on another CPU; statistics under another numpy.

    Under another numpy version each summary mean must agree with the
    committed one within z·√(mcse₁² + mcse₂²) (Bonferroni over the rows):
    two independent estimates of one expectation, each with its own MCSE.
    """
    committed, new = ROOT / "results" / path.stem, runs[path.stem, "fresh"]
    recorded = json.loads((committed / "run.json").read_text())
    here = {"versions": provenance.versions(), "machine": provenance.machine()}
    assert (new / "config.yaml").read_bytes() == (committed / "config.yaml").read_bytes()
    if provenance.same_machine(recorded, here):
        for name in FILES:
            assert (new / name).exists() == (committed / name).exists(), name
            if (committed / name).exists():
                assert (new / name).read_bytes() == (committed / name).read_bytes(), name
    elif recorded["versions"]["numpy"] == here["versions"]["numpy"]:
        assert disagreements(committed, new) == []
    else:
        a, b = pd.read_csv(committed / "summary.csv"), pd.read_csv(new / "summary.csv")
        assert list(a.columns) == list(b.columns) and len(a) == len(b)
        assert a[["case", "n", "estimator"]].equals(b[["case", "n", "estimator"]])
        se = np.sqrt(a.mcse**2 + b.mcse**2)
        exact = (se == 0) | se.isna()
        assert np.all(np.abs(a["mean"] - b["mean"])[~exact] <= z_crit(len(a)) * se[~exact])
        assert np.allclose(a["mean"][exact], b["mean"][exact], rtol=1e-10, atol=0.0, equal_nan=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_another_cpu_stays_within_the_stated_bound(path, runs):
    """The cross-machine promise, on an emulated CPU whose log/exp differ in the last bit.

    Without an AVX-512 machine at hand, :func:`tests.agreement.another_cpu`
    rounds numpy's and math's log, exp, log1p and expm1 differently for
    half of all inputs; the results must still be within the bound the
    README states.  (Comparing bytes here would fail, as it does between
    real CPUs.)
    """
    baseline = runs[path.stem, "baseline" if path.stem in SMALLER else "fresh"]
    assert disagreements(baseline, runs[path.stem, "emulated"]) == []


def test_the_emulated_cpu_does_change_last_bits(tmp_path, monkeypatch, write_config):
    """The emulation is not a no-op: bytes differ, the bound holds (so the test above can fail)."""
    path = write_config(TINY)
    a = run_experiment(load_config(path), tmp_path / "a", execution=Execution(workers=1)).path
    with another_cpu(monkeypatch):
        b = run_experiment(load_config(path), tmp_path / "b", execution=Execution(workers=1)).path
    assert (a / "summary.csv").read_bytes() != (b / "summary.csv").read_bytes()
    assert disagreements(a, b) == []
    assert disagreements(a, b, rel=1e-17) != []


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_committed_figures_exist(path):
    folder = ROOT / "results" / path.stem
    kinds = figures.figure_kinds(figures.load_tables(folder))
    assert {p.stem for p in (folder / "figures").glob("*.png")} == set(kinds)
    assert len(kinds) >= 2


def test_run_json_records_the_machine(tmp_path, write_config):
    run = run_experiment(load_config(write_config(TINY)), tmp_path, execution=Execution(workers=1))
    info = json.loads((run.path / "run.json").read_text())
    assert info["machine"] == provenance.machine()
    assert info["machine"]["numpy_simd"]["baseline"]


def test_bytes_are_promised_only_with_the_same_machine_numpy_and_isal():
    here = {"versions": provenance.versions(), "machine": provenance.machine()}
    assert provenance.same_machine(here, json.loads(json.dumps(here)))
    for package in ("numpy", "isal"):
        other = {**here, "versions": {**here["versions"], package: "0.0"}}
        assert not provenance.same_machine(here, other), package
    assert not provenance.same_machine(here, {"versions": here["versions"]})
    assert not provenance.same_machine(here, {**here, "machine": {**here["machine"], "cpu": "other"}})
