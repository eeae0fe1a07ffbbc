"""Shared fixtures (statistical helpers and shared configs are in tests/helpers.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main


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
