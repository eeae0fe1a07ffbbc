"""``sim init`` templates, the README.md of each results folder, and shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim import columns
from sim.config import load_config, parse_config
from sim.config.templates import TEMPLATES
from sim.runner import Execution, run_experiment

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_every_template_validates_as_written_and_names_the_experiment(cli, tmp_path, kind):
    assert not (tmp_path / "mine.yaml").exists()
    r = cli("init", "mine", f"--{kind}", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    text = (tmp_path / "mine.yaml").read_text(encoding="utf-8")
    assert text.startswith(f"# mine: made by `sim init --{kind}`") and text.count("#") >= 3  # commented
    experiment = load_config(tmp_path / "mine.yaml")
    assert experiment.name == "mine" and experiment.description == TEMPLATES[kind][0]


def test_init_writes_a_coin_by_default_and_never_replaces_a_file(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("init", "first").exit_code == 0
    assert load_config(tmp_path / "first.yaml").cases[0].pair.p.k == 2  # a coin
    (tmp_path / "first.yaml").write_text("mine", encoding="utf-8")
    r = cli("init", "first", "--grid")
    assert r.exit_code == 2 and "already exists" in r.stderr
    assert (tmp_path / "first.yaml").read_text(encoding="utf-8") == "mine"
    r = cli("init", "no good")
    assert r.exit_code == 2 and "not a usable name" in r.stderr and not (tmp_path / "no good.yaml").exists()


def test_the_readme_column_tables_are_what_the_code_makes():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, made in columns.readme_tables().items():
        assert columns.readme_block(text, name) == made, (
            f"run: python -m sim.columns --readme README.md ({name})"
        )


@pytest.mark.slow
def test_every_column_a_run_writes_is_documented(tmp_path):
    iid = "name: docs\nreplicates: 20\nn: [1, 10]\nestimators: [llr, plugin_kl, p_wrong, k2]\n"
    iid += "cases:\n  - {name: c, p: 0.3, q: 0.5}\n"
    chain = "name: chain\nreplicates: 20\nn: [2, 10]\ncases:\n"
    chain += "  - {name: m, p: {markov: {transition: [[0.9, 0.1], [0.5, 0.5]]}}, q: [0.8, 0.2]}\n"
    for text in (iid, chain, iid.replace("cases:", "save_replicates: false\ncases:")):
        run = run_experiment(parse_config(text), tmp_path / str(hash(text)), execution=Execution(workers=1))
        for name, documented in columns.COLUMNS.items():
            written = pd.read_csv(run.path / name).columns
            assert set(written) <= {c.name for c in documented}, name


@pytest.mark.slow
def test_each_results_folder_explains_itself(tmp_path):
    text = "name: docs\ndescription: 'Two coins.'\nreplicates: 20\nn: [1, 10]\nsave_replicates: false\n"
    text += "cases:\n  - {name: c, p: 0.3, q: 0.5}\n"
    run = run_experiment(parse_config(text), tmp_path, execution=Execution(workers=1))
    readme = (run.path / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# docs\n\nTwo coins.\n") and "- c: p = 0.3, q = 0.5" in readme
    summary = pd.read_csv(run.path / "summary.csv")
    for column in summary.columns:  # every column, its unit and its check, in the folder's order
        line = next(x for x in readme.splitlines() if x.startswith(f"| `{column}` |"))
        assert line.count(" | ") == 3, line
    assert "quantile_error" in readme and "- `replicates.csv.gz`" not in readme  # streamed: none kept
    shipped = ROOT / "results" / "coin" / "README.md"
    assert shipped.read_text(encoding="utf-8").startswith("# coin\n")


@pytest.mark.slow
def test_shell_completion_is_what_the_readme_says():
    env = {**os.environ, "_SIM_COMPLETE": "bash_source", "PYTHONPATH": str(ROOT)}
    script = subprocess.run(
        [sys.executable, "-c", "import sys; from sim.cli import main; sys.argv[0] = 'sim'; main()"],
        env=env, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "_sim_completion" in script and "complete" in script
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'eval "$(_SIM_COMPLETE=bash_source sim)"' in readme


def test_init_takes_one_kind_and_reports_an_unwritable_folder_in_one_line(cli, tmp_path):
    r = cli("init", "two", "--coin", "--grid", "--out", str(tmp_path))
    assert r.exit_code == 2 and "choose one kind of template, not --coin and --grid" in r.output
    assert not (tmp_path / "two.yaml").exists()
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    r = cli("init", "x", "--out", str(blocker / "sub"))
    assert r.exit_code == 2 and "cannot be written" in r.stderr and len(r.stderr.strip().splitlines()) == 1
