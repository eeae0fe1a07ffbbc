"""Results folders: reading their tables, building every figure, saving them."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from .. import registry
from .. import results as res
from ..config import FitExperiment, experiment_type
from ..errors import ResultsError, one_line
from ..registry import CROSS_ENTROPY, ENTROPY, LLR
from ..sidebyside import can_fork, release_signals, signals_held
from .convergence import clt_figure, convergence_figure, decomposition_figure, error_figure, paths_figure
from .decision import testing_figure
from .estimators import compares_estimators, estimators_figure
from .fit import fit_convergence_figure, fit_trajectory_figure
from .style import DPI, FIT_KINDS, FORMATS, KINDS
from .sweep import has_sweep, sweep_figure

#: Every figure kind, in drawing order.
ALL_KINDS = (*KINDS, "estimators", "testing", "sweep", *FIT_KINDS)

#: Why a figure needs the replicates that ``save_replicates: false`` does not keep.
NEEDS_REPLICATES = {
    "paths": "it needs per-replicate paths (save_replicates: false)",
    "clt": "it needs per-replicate llr values; a streamed summary keeps only quantiles (save_replicates: false)",
}

# --------------------------------------------------------------------------
# Results folders


def load_tables(folder: str | Path) -> dict[str, Any]:
    """Read what the figures need from a results folder.

    Returns a dict with ``summary``, ``analytic``, ``replicates`` (DataFrames;
    ``replicates`` is None for a streamed run, ``save_replicates: false``,
    which writes no ``replicates.csv.gz``), ``trajectory`` for a fit
    experiment, and ``config`` (the resolved config as a mapping).

    Raises
    ------
    sim.errors.ResultsError
        If a file is missing or unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"{folder}: not a results folder")
    names = _table_files(folder)
    tables = _read_tables(folder, names)
    try:
        fit = _is_fit(tables)
    except ValueError as exc:
        raise ResultsError(f"{folder}: {res.CONFIG}: {exc}") from None
    if fit and "trajectory" not in tables:
        raise ResultsError(f"{folder}: missing {res.TRAJECTORY} (a fit experiment's results)")
    _require_columns(folder, tables, names, fit=fit)
    return tables


def _table_files(folder: Path) -> dict[str, str]:
    """Table name → file name of every file to read; an error naming the required ones missing."""
    names = {"summary": res.SUMMARY, "analytic": res.ANALYTIC, "config": res.CONFIG}
    if (folder / res.REPLICATES).is_file():
        names["replicates"] = res.REPLICATES
    if (folder / res.TRAJECTORY).is_file():
        names["trajectory"] = res.TRAJECTORY
    missing = [f for f in names.values() if not (folder / f).is_file()]
    if missing:
        raise ResultsError(
            f"{folder}: missing {', '.join(missing)} (is it a results folder written by sim run?)"
        )
    return names


def _read_tables(folder: Path, names: Mapping[str, str]) -> dict[str, Any]:
    """The CSV tables as DataFrames (``replicates`` None if absent) and the config as a dict."""
    tables: dict[str, Any] = {"replicates": None}
    try:
        for key in names:
            if key != "config":
                tables[key] = res.read_csv(folder / names[key])
        tables["config"] = yaml.safe_load((folder / res.CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ResultsError(f"{folder}: cannot read its tables: {exc}") from None
    if not isinstance(tables["config"], dict):
        raise ResultsError(f"{folder}: {res.CONFIG} is not a resolved config")
    return tables


def _require_columns(folder: Path, tables: Mapping[str, Any], names: Mapping[str, str], *, fit: bool) -> None:
    """Every column the figures read is present; an error naming the first table lacking some."""
    needed = {
        "summary": {"case", "n", "estimator", "mean", "q05", "q95", "rmse", "target"},
        "analytic": {"case", "kl_floor", "parameters"} if fit else {"case", "kl_pq", "llr_sigma"},
        "replicates": {"case", "replicate", "n"},
    }
    for key, cols in needed.items():
        if tables[key] is None:
            continue
        lacking = cols - set(tables[key].columns)
        if lacking:
            raise ResultsError(f"{folder}: {names[key]} lacks columns {', '.join(sorted(lacking))}")


def _has_llr_replicates(tables: Mapping[str, Any]) -> bool:
    replicates = tables.get("replicates")
    return replicates is not None and LLR.name in replicates.columns


def _is_fit(tables: Mapping[str, Any]) -> bool:
    """Whether the folder holds a fit experiment's results (its resolved config says so)."""
    return issubclass(experiment_type(tables["config"]), FitExperiment)


#: Estimator names the figures know (a table may hold others: they are not drawn).
_KNOWN = set(registry.names(registry.ALL))


def figure_kinds(tables: Mapping[str, Any]) -> list[str]:
    """The figure kinds a results folder's tables support, in drawing order.

    A fit experiment has ``fit_trajectory`` and ``fit_convergence``; a
    convergence experiment has ``error`` always, ``convergence`` with
    ``llr``, ``paths`` and ``clt`` with llr replicates (not kept by
    ``save_replicates: false``), ``decomposition`` with llr, cross-entropy
    and entropy, ``estimators`` with an estimator of KL beyond ``llr`` and
    ``plugin_kl`` (:func:`sim.figures.estimators.compares_estimators`), and
    ``testing`` with ``p_wrong`` or ``p_wrong_tilted``, and ``sweep`` with a grid of cases
    (:func:`sim.figures.sweep.has_sweep`).
    """
    if _is_fit(tables):
        return list(FIT_KINDS)
    estimators = set(tables["summary"].estimator)
    wanted = {"error"}
    if LLR.name in estimators:
        wanted |= {"convergence"}
    if _has_llr_replicates(tables):
        wanted |= {"paths", "clt"}
    if set(registry.names((LLR, CROSS_ENTROPY, ENTROPY))) <= estimators:
        wanted |= {"decomposition"}
    if (
        any(registry.get(e).probability for e in estimators & _KNOWN)
        and "chernoff" in tables["analytic"].columns
    ):
        wanted |= {"testing"}
    if compares_estimators(tables["summary"]):
        wanted |= {"estimators"}
    if has_sweep(tables["config"]):
        wanted |= {"sweep"}
    return [k for k in (*KINDS, "estimators", "testing", "sweep") if k in wanted]


def figure_notes(tables: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """What the tables cannot support: (skipped kinds, kinds drawn incompletely), each kind → why.

    A streamed run (no ``replicates.csv.gz``) skips ``paths`` and ``clt``,
    and its ``testing`` figure lacks the simulated Stein curve, which
    reweights the saved llr replicates.  The reasons are one line each.
    """
    if _is_fit(tables) or tables.get("replicates") is not None:
        return {}, {}
    estimators = set(tables["summary"].estimator)
    skipped = {k: why for k, why in NEEDS_REPLICATES.items() if LLR.name in estimators}
    partial = {}
    if "testing" in figure_kinds(tables) and LLR.name in estimators:
        partial["testing"] = (
            "drawn without the simulated Stein curve: it reweights per-replicate llr values "
            "(save_replicates: false)"
        )
    return skipped, partial


def _drawers(tables: Mapping[str, Any]) -> dict[str, Callable[[], Figure]]:
    """A function drawing each figure kind the tables support, by kind name."""
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
        "estimators": lambda: estimators_figure(summary, analytic, config=config),
        "testing": lambda: testing_figure(summary, analytic, replicates=replicates, config=config),
        "sweep": lambda: sweep_figure(summary, analytic, config=config),
        "fit_trajectory": lambda: fit_trajectory_figure(tables.get("trajectory"), config=config, units=units),
        "fit_convergence": lambda: fit_convergence_figure(summary, analytic, config=config),
    }
    return {kind: draw[kind] for kind in figure_kinds(tables)}


def build_figures(tables: Mapping[str, Any]) -> dict[str, Figure]:
    """Every figure kind that the tables support (see :func:`figure_kinds`), by kind name."""
    return {kind: draw() for kind, draw in _drawers(tables).items()}


#: zlib level of PNG files: level 3 compresses a figure in about 60% of the time of Pillow's
#: default 6, into a file at most about 1.2 times as large (levels 4 and up search much longer).
PNG_COMPRESSION = 3


def save_figure(fig: Figure, path: Path) -> None:
    """Save with fixed metadata, so equal figures give equal files where the format allows."""
    fmt = path.suffix.lstrip(".")
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    extra = {"pil_kwargs": {"compress_level": PNG_COMPRESSION}} if fmt == "png" else {}
    fig.savefig(path, dpi=DPI, metadata=metadata, **extra)


def warm_up() -> None:
    """Load what every figure's first drawing loads (fonts, glyph and text-extent caches) in this process.

    One small faceted figure with a log axis, a legend and a title is built
    and laid out (which measures its text on the Agg renderer); it is not
    saved.  Worth calling before forking processes that will draw figures:
    each inherits the loaded state instead of loading it again (about 0.3 s
    of CPU a process here).
    """
    from .style import _facets

    def panel(ax, _item):
        ax.plot([1.0, 10.0, 100.0], [0.1, 0.2, 0.4], label="warm-up")
        ax.set_xscale("log")
        ax.set(title="p = 0.5, q = 0.5 [n = 10]", xlabel="sample size N", ylabel="value (nats)")

    _facets([0], panel, suptitle="warm-up\nwarm-up")


@dataclass
class FigureReport:
    """What :func:`draw_figures` did.

    Attributes
    ----------
    written : list of pathlib.Path
        The files written.
    skipped : dict
        Figure kind → why the tables cannot support it (one line).
    partial : dict
        Figure kind → what it lacks (one line), for figures drawn incompletely.
    failed : dict
        Figure kind → why drawing or saving it failed (one line).
    """

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (file names only), for ``run.json``."""
        return {
            "written": [p.name for p in self.written],
            "skipped": dict(self.skipped),
            "partial": dict(self.partial),
            "failed": dict(self.failed),
        }


def _save_atomically(fig: Figure, path: Path) -> None:
    """Save ``fig`` to a temporary file beside ``path``, then rename it into place."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        tmp.chmod(0o666 & ~umask)  # mkstemp makes it private; figures are ordinary files
        save_figure(fig, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


#: The figures being drawn, set just before the drawing processes are forked (which inherit it).
_JOB: dict[str, Any] = {}


def _draw_one(kind: str) -> str | None:
    """Draw and save one figure of :data:`_JOB`; the failure in one line, or None."""
    try:
        _save_atomically(_JOB["drawers"][kind](), _JOB["paths"][kind])
    except Exception as exc:  # one figure never costs the others, nor the results
        return one_line(exc)
    return None


def _draw_all(
    drawers: Mapping[str, Callable[[], Figure]], paths: Mapping[str, Path], processes: int
) -> dict[str, str | None]:
    """Draw every figure, on up to ``processes`` forked processes; each kind's failure or None.

    A figure's drawing is independent of the others' and gives the same
    bytes in any process, so the figures are drawn side by side (layout and
    rendering dominate, in pure Python and Agg).  Where processes cannot be
    forked, or for one figure or one core, they are drawn here, in turn.
    """
    _JOB.update(drawers=drawers, paths=paths)
    try:
        workers = min(len(drawers), processes)
        if workers < 2 or not can_fork():
            return {kind: _draw_one(kind) for kind in drawers}
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=fork, initializer=release_signals) as pool:
            with signals_held():  # the first submit forks every process
                futures = {kind: pool.submit(_draw_one, kind) for kind in drawers}
            return {kind: _outcome(future) for kind, future in futures.items()}
    finally:
        _JOB.clear()


def _outcome(future: Future) -> str | None:
    """A drawing process's answer, or why it gave none (it died: out of memory, killed)."""
    try:
        return future.result()
    except Exception as exc:
        return one_line(exc)


def draw_figures(
    folder: str | Path, *, fmt: str = "png", into: str | Path | None = None, processes: int | None = None
) -> FigureReport:
    """Draw every figure of a results folder into ``into`` (default ``folder/figures``).

    Figures are drawn on up to ``processes`` forked processes (default: one
    per core; 1: in this process), with the same files either way.  Reads
    only the folder's CSVs and ``config.yaml``.  Each figure file is
    written to a temporary file and renamed into place, replacing only the
    file of that name; files of other formats are kept.  Files of this
    format for figures that are not drawn this time (skipped or failed) are
    removed, so that none is left from other tables.

    A figure that fails to draw or save (any exception, ``MemoryError``
    included) does not stop the others: it is reported in
    :attr:`FigureReport.failed`.

    Returns
    -------
    FigureReport
        Files written, and the kinds skipped, drawn incompletely or failed.

    Raises
    ------
    sim.errors.ResultsError
        If the folder's tables cannot be read (see :func:`load_tables`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; use one of {', '.join(FORMATS)}")
    folder = Path(folder)
    tables = load_tables(folder)
    target = Path(into) if into is not None else folder / res.FIGURES
    target.mkdir(parents=True, exist_ok=True)
    report = FigureReport()
    report.skipped, report.partial = figure_notes(tables)
    drawers = _drawers(tables)
    paths = {kind: target / f"{kind}.{fmt}" for kind in drawers}
    for kind, failure in _draw_all(drawers, paths, processes or os.cpu_count() or 1).items():
        if failure is None:
            report.written.append(paths[kind])
        else:
            report.failed[kind] = failure
    for kind in ALL_KINDS:
        stale = target / f"{kind}.{fmt}"
        if stale not in report.written and stale.is_file():
            stale.unlink()
    return report
