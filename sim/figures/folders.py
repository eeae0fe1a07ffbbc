"""Results folders: reading their tables, building every figure, saving them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .. import results as res
from ..errors import ResultsError
from .convergence import clt_figure, convergence_figure, decomposition_figure, error_figure, paths_figure
from .decision import testing_figure
from .fit import fit_convergence_figure, fit_trajectory_figure
from .style import DPI, FIT_KINDS, FORMATS, KINDS

# --------------------------------------------------------------------------
# Results folders


def load_tables(folder: str | Path) -> dict[str, Any]:
    """Read what the figures need from a results folder.

    Returns a dict with ``summary``, ``analytic``, ``replicates`` (DataFrames),
    ``trajectory`` for a fit experiment, and ``config`` (the resolved config as
    a mapping).

    Raises
    ------
    sim.errors.ResultsError
        If a file is missing or unreadable.
    """
    import yaml

    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"{folder}: not a results folder")
    names = {
        "summary": res.SUMMARY,
        "analytic": res.ANALYTIC,
        "replicates": res.REPLICATES,
        "config": res.CONFIG,
    }
    if (folder / res.TRAJECTORY).is_file():
        names["trajectory"] = res.TRAJECTORY
    missing = [f for f in names.values() if not (folder / f).is_file()]
    if missing:
        raise ResultsError(
            f"{folder}: missing {', '.join(missing)} (is it a results folder written by sim run?)"
        )
    tables: dict[str, Any] = {}
    try:
        for key in names:
            if key != "config":
                tables[key] = res.read_csv(folder / names[key])
        tables["config"] = yaml.safe_load((folder / res.CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ResultsError(f"{folder}: cannot read its tables: {exc}") from None
    fit = isinstance(tables["config"], dict) and tables["config"].get("kind") == "fit"
    if fit and "trajectory" not in tables:
        raise ResultsError(f"{folder}: missing {res.TRAJECTORY} (a fit experiment's results)")
    needed = {
        "summary": {"case", "n", "estimator", "mean", "q05", "q95", "rmse", "target"},
        "analytic": {"case", "kl_floor", "parameters"} if fit else {"case", "kl_pq", "llr_sigma"},
        "replicates": {"case", "replicate", "n"},
    }
    for key, cols in needed.items():
        lacking = cols - set(tables[key].columns)
        if lacking:
            raise ResultsError(f"{folder}: {names[key]} lacks columns {', '.join(sorted(lacking))}")
    return tables


def figure_kinds(tables: Mapping[str, Any]) -> list[str]:
    """The figure kinds a results folder's tables support, in drawing order.

    A fit experiment has ``fit_trajectory`` and ``fit_convergence``; a
    convergence experiment has ``error`` always, ``convergence``, ``paths``
    and ``clt`` with ``llr``, ``decomposition`` with llr, cross-entropy and
    entropy, and ``testing`` with ``p_wrong`` or ``p_wrong_tilted``.
    """
    if tables["config"].get("kind") == "fit":
        return list(FIT_KINDS)
    estimators = set(tables["summary"].estimator)
    wanted = {"error"}
    if "llr" in estimators:
        wanted |= {"convergence"}
    if "llr" in tables["replicates"].columns:
        wanted |= {"paths", "clt"}
    if {"llr", "cross_entropy", "entropy"} <= estimators:
        wanted |= {"decomposition"}
    if {"p_wrong", "p_wrong_tilted"} & estimators and "chernoff" in tables["analytic"].columns:
        wanted |= {"testing"}
    return [k for k in (*KINDS, "testing") if k in wanted]


def build_figures(tables: Mapping[str, Any]) -> dict[str, Figure]:
    """Every figure kind that the tables support (see :func:`figure_kinds`), by kind name."""
    summary, analytic, replicates, config = (
        tables[k] for k in ("summary", "analytic", "replicates", "config")
    )
    units = str(config.get("units", "nats"))
    draw = {
        "convergence": lambda: convergence_figure(summary, analytic, config=config),
        "paths": lambda: paths_figure(replicates, analytic, config=config),
        "clt": lambda: clt_figure(replicates, analytic, config=config),
        "error": lambda: error_figure(summary, analytic, config=config),
        "decomposition": lambda: decomposition_figure(summary, analytic, config=config),
        "testing": lambda: testing_figure(summary, analytic, replicates=replicates, config=config),
        "fit_trajectory": lambda: fit_trajectory_figure(tables.get("trajectory"), config=config, units=units),
        "fit_convergence": lambda: fit_convergence_figure(summary, analytic, config=config),
    }
    return {kind: draw[kind]() for kind in figure_kinds(tables)}


def save_figure(fig: Figure, path: Path) -> None:
    """Save with fixed metadata, so equal figures give equal files where the format allows."""
    fmt = path.suffix.lstrip(".")
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    fig.savefig(path, dpi=DPI, metadata=metadata)


def draw_figures(folder: str | Path, *, fmt: str = "png", into: str | Path | None = None) -> list[Path]:
    """Draw every figure of a results folder into ``into`` (default ``folder/figures``).

    Reads only the folder's CSVs and ``config.yaml``.  The figures folder is
    replaced as a whole once every figure is drawn.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; use one of {', '.join(FORMATS)}")
    folder = Path(folder)
    tables = load_tables(folder)
    target = Path(into) if into is not None else folder / res.FIGURES
    written = []
    with res.staged_folder(target.parent, target.name) as tmp:
        for kind, fig in build_figures(tables).items():
            save_figure(fig, tmp / f"{kind}.{fmt}")
            written.append(target / f"{kind}.{fmt}")
    return written
