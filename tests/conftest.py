"""Shared fixtures (statistical helpers and shared configs are in tests/helpers.py)."""

from __future__ import annotations

import faulthandler
import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main

#: A suite still running after this long is stuck (it takes 2-5 minutes on 2 cores, loaded or
#: not): each process prints every thread's stack and exits, so a hang costs minutes of CI, not
#: its whole time limit, and says where it was.
STUCK_AFTER_S = 20 * 60


def pytest_configure(config):
    """Arm the watchdog, in the main process and in every xdist worker."""
    # fd 2 here is the terminal (capture is suspended between tests): keep a copy, as tests capture it
    faulthandler.dump_traceback_later(STUCK_AFTER_S, exit=True, file=os.dup(2))


#: The longest files, longest first (measured: figures ~75 s, shipped ~65 s — every shipped
#: config, twice —, hostile and scale ~30 s each): handed to the workers first, so that under
#: ``--dist loadfile`` the short files fill in after them and the two workers finish together,
#: rather than one starting a long file when the other is nearly done.
LONGEST_FIRST = ("test_figures.py", "test_shipped.py", "test_hostile.py", "test_scale.py")


def pytest_collection_modifyitems(config, items):
    """Put the longest files first, in :data:`LONGEST_FIRST` order (stable: the rest keep theirs)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns click's Result (stderr separate)."""
    runner = CliRunner()

    def invoke(*args: str, **kwargs):
        return runner.invoke(main, list(args), catch_exceptions=False, **kwargs)

    return invoke


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a YAML config (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module", params=["nats", "bits"])
def units(request) -> str:
    """Each of the two units, for a module's runs that must hold in both."""
    return request.param


@pytest.fixture(scope="module")
def run_serially(tmp_path_factory):
    """Run a config's text serially into a fresh folder; its RunReport."""
    from sim.config import parse_config
    from sim.runner import Execution, run_experiment

    def run(text: str):
        return run_experiment(
            parse_config(text), tmp_path_factory.mktemp("run"), execution=Execution(workers=1)
        )

    return run
