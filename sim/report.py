"""One self-contained HTML page for results folders: ``sim report``.

Per experiment: its name and description, the ``sim check`` verdict (failures highlighted, each
on its own line), every figure of ``figures/`` embedded as a PNG data URI, the analytic table, the
summary table with each mean written to its Monte Carlo standard error, and the resolved
``config.yaml``.  The page has no script and loads nothing: no network, no CDN, no file beside it,
so it reads offline and can be mailed.  Built from the folders' files only (never re-simulated);
the check is run on them as ``sim check`` runs it.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from . import results as res
from .check import check_results
from .check.report import CheckReport
from .errors import ResultsError

#: summary.csv columns the page shows, in order (``mean`` carries its MCSE).
SUMMARY_COLUMNS = ("case", "n", "estimator", "target", "mean", "sd", "bias", "rmse", "exact_mean", "z")
#: A summary of more rows than this is folded (``<details>``), the rest of the page staying short.
FOLD_ROWS = 60

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #1d1d1d; background: #fff; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2.2em; }
table { border-collapse: collapse; font-size: 13px; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.scroll { overflow-x: auto; } pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: 13px; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.pass { color: #116611; font-weight: 600; } .fail { color: #b00000; font-weight: 600; }
ul.failures li { color: #b00000; font-family: monospace; white-space: pre-wrap; }
nav li { margin: .2em 0; } .note { color: #555; }
"""


@dataclass(frozen=True)
class Folder:
    """What the page shows of one results folder."""

    path: Path
    config: str
    description: str
    name: str
    analytic: pd.DataFrame
    summary: pd.DataFrame
    figures: list[tuple[str, bytes]]
    check: CheckReport
    cases: list[str]
    notes: list[str]


def read_folder(folder: str | Path, *, alpha: float) -> Folder:
    """Read one results folder and check it.

    Raises
    ------
    sim.errors.ResultsError
        If it is not a results folder.
    """
    import yaml

    from .columns import case_lines
    from .config import load_config

    path = Path(folder)
    check = check_results(path, alpha=alpha)  # raises ResultsError for what is no results folder
    text = (path / res.CONFIG).read_text(encoding="utf-8")
    config = yaml.safe_load(text) or {}
    cases = [line.removeprefix("- ") for line in case_lines(load_config(path / res.CONFIG))]
    pngs = sorted((path / res.FIGURES).glob("*.png"), key=lambda p: _figure_rank(p.stem))
    return Folder(
        path=path,
        config=text,
        description=str(config.get("description") or ""),
        name=str(config.get("name") or path.name),
        analytic=res.read_csv(path / res.ANALYTIC),
        summary=res.read_csv(path / res.SUMMARY),
        figures=[(p.stem, p.read_bytes()) for p in pngs],
        check=check,
        cases=cases,
        notes=_run_notes(path),
    )


def _run_notes(path: Path) -> list[str]:
    """``run.json``'s notes and its figures that failed or were skipped (none if it is unreadable)."""
    import json

    try:
        info = json.loads((path / res.RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    figures = info.get("figures") or {}
    notes = [str(n) for n in info.get("notes") or []]
    for what in ("failed", "skipped", "partial"):
        notes += [f"figure {kind} {what}: {why}" for kind, why in (figures.get(what) or {}).items()]
    return notes


def _figure_rank(kind: str) -> tuple[int, str]:
    from .figures.folders import ALL_KINDS

    return (ALL_KINDS.index(kind) if kind in ALL_KINDS else len(ALL_KINDS), kind)


def build_report(folders: Sequence[Folder]) -> str:
    """The page's HTML."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    toc = "".join(
        f'<li><a href="#{_anchor(f, i)}">{_e(f.name)}</a> — {_verdict(f.check, short=True)}</li>'
        for i, f in enumerate(folders)
    )
    body = "".join(_section(f, i) for i, f in enumerate(folders))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>sim report: {_e(', '.join(f.name for f in folders))}</title>\n<style>{_STYLE}</style>\n"
        "</head>\n<body>\n<h1>sim report</h1>\n"
        f'<p class="note">{len(folders)} experiment(s), made {when} by sim {_e(__version__)} from the '
        "results folders' files (nothing re-simulated; each folder checked as <code>sim check</code> "
        "checks it).</p>\n"
        f"<nav><ul>{toc}</ul></nav>\n{body}</body>\n</html>\n"
    )


def _section(f: Folder, i: int) -> str:
    parts = [f'<section id="{_anchor(f, i)}">\n<h2>{_e(f.name)}</h2>\n']
    parts.append(f"<p>{_e(f.description)}</p>\n" if f.description else "")
    parts.append(f'<p class="note">Folder: <code>{_e(str(f.path))}</code></p>\n')
    parts.append("<h3>Cases</h3>\n<ul>" + "".join(f"<li>{_e(c)}</li>" for c in f.cases) + "</ul>\n")
    if f.notes:
        parts.append("<h3>Notes</h3>\n<ul>" + "".join(f"<li>{_e(n)}</li>" for n in f.notes) + "</ul>\n")
    parts.append(f"<h3>sim check</h3>\n<p>{_verdict(f.check)}</p>\n")
    if not f.check.passed:
        lines = "".join(f"<li>{_e(line.strip())}</li>" for line in f.check.failure_lines())
        parts.append(f'<ul class="failures">{lines}</ul>\n')
    parts.append("<h3>Figures</h3>\n")
    if not f.figures:
        parts.append(
            '<p class="note">No figures in this folder (draw them with <code>sim plot</code>).</p>\n'
        )
    for kind, data in f.figures:
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        parts.append(
            f'<figure><img src="{uri}" alt="{_e(kind)} figure of {_e(f.name)}">'
            f"<figcaption>{_e(kind)}</figcaption></figure>\n"
        )
    parts.append("<h3>Analytic values (analytic.csv)</h3>\n" + _table(f.analytic, _analytic_cells))
    summary = _table(f.summary, _summary_cells, columns=[c for c in SUMMARY_COLUMNS if c in f.summary])
    heading = "<h3>Simulated (summary.csv): each mean ± its Monte Carlo standard error</h3>\n"
    if len(f.summary) > FOLD_ROWS:
        summary = f"<details><summary>{len(f.summary):,} rows</summary>\n{summary}</details>\n"
    parts.append(heading + summary)
    parts.append(f"<h3>Config (config.yaml)</h3>\n<pre>{_e(f.config)}</pre>\n</section>\n")
    return "".join(parts)


def _verdict(check: CheckReport, *, short: bool = False) -> str:
    if short:
        return '<span class="pass">agrees</span>' if check.passed else '<span class="fail">FAILS</span>'
    css = "pass" if check.passed else "fail"
    return f'<span class="{css}">{_e(check.headline())}</span>'


def _table(frame: pd.DataFrame, cells, *, columns: Sequence[str] | None = None) -> str:
    columns = list(frame.columns if columns is None else columns)
    head = "".join(f'<th class="{_align(frame, c)}">{_e(c)}</th>' for c in columns)
    rows = []
    for record in frame.to_dict("records"):
        rows.append("".join(f'<td class="{_align(frame, c)}">{_e(cells(c, record))}</td>' for c in columns))
    body = "".join(f"<tr>{r}</tr>\n" for r in rows)
    return f'<div class="scroll"><table>\n<tr>{head}</tr>\n{body}</table></div>\n'


def _align(frame: pd.DataFrame, column: str) -> str:
    return "num" if column in frame and pd.api.types.is_numeric_dtype(frame[column]) else "text"


def _analytic_cells(column: str, record: dict) -> str:
    return _number(record[column], 12)


def _summary_cells(column: str, record: dict) -> str:
    value = record[column]
    if column == "mean":
        return to_mcse(value, record.get("mcse", math.nan))
    if column == "bias":
        return to_mcse(value, record.get("mcse", math.nan), with_mcse=False)
    if column in ("n",):
        return f"{int(value):,}"
    return _number(value, 4 if column in ("sd", "rmse", "z") else 10)


def to_mcse(mean: float, mcse: float, *, with_mcse: bool = True) -> str:
    """``mean ± mcse`` with the MCSE to two significant digits and the mean to the same place.

    >>> to_mcse(0.4800644796832836, 0.05290127754556311)
    '0.480 ± 0.053'
    >>> to_mcse(2.0816761983e-06, 3.1e-09)
    '2.0817e-06 ± 3.1e-09'
    >>> to_mcse(0.6931471805599453, 0.0)
    '0.69314718056 (exact)'
    """
    if not isinstance(mean, int | float) or not math.isfinite(mean):
        return _number(mean, 10)
    if not (isinstance(mcse, int | float) and math.isfinite(mcse) and mcse > 0):
        return f"{_number(mean, 12)} (exact)" if with_mcse else _number(mean, 12)
    place = math.floor(math.log10(mcse)) - 1  # the MCSE's second significant digit
    top = math.floor(math.log10(max(abs(mean), mcse)))
    if -4 <= top < 6:
        decimals = max(0, -place)
        text = f"{mean:.{decimals}f}"
        return f"{text} ± {mcse:.{decimals}f}" if with_mcse else text
    text = f"{mean:.{max(0, top - place)}e}"
    return f"{text} ± {mcse:.1e}" if with_mcse else text


def _number(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.{digits}g}"
    return str(value)


def _anchor(f: Folder, i: int) -> str:
    return f"exp-{i}-" + "".join(c if c.isalnum() or c in "-_." else "-" for c in f.name)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def write_report(folders: Sequence[str | Path], out: str | Path, *, alpha: float) -> list[Folder]:
    """Read and check every folder, then write the page to ``out`` atomically.

    Every folder is read before anything is written: one that is not a results folder raises
    :class:`~sim.errors.ResultsError` and leaves ``out`` as it was.
    """
    read = [read_folder(f, alpha=alpha) for f in folders]
    out = Path(out)
    if out.is_dir():
        raise ResultsError(f"{out}: is a folder; give the report's file name (-o report.html)")
    page = build_report(read)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a file the user wrote (mkstemp's is private)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return read
