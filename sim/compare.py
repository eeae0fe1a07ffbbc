"""Comparing two results folders row by row: do their means estimate the same expectations?

Each row of ``summary.csv`` (case, n, estimator) holds a mean over replicates and its Monte Carlo
standard error.  Two folders of the same experiment (another seed, another machine, another
version of sim) estimate the same expectation in each row, independently, so

    z = (mean_A − mean_B) / √(mcse_A² + mcse_B²)

is approximately standard normal in every row.  The folders agree when every |z| is within the
two-sided Bonferroni critical value at family-wise level α over the rows compared, or when the
two means are equal to rounding (a relative 1e-9: two CPUs' last bits, see the README's
"Reproducibility"), which is how the rows of an estimator exact for every sample agree (their
MCSE is 0 or the rounding of that one value).  Infinite means must be equal.

Folders are comparable when they hold the same cases (the same analytic.csv rows, to rounding),
the same sample sizes and units, and at least one estimator in common; rows of estimators only
one folder has are left out, with a note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from . import results as res
from .errors import ResultsError

#: The default family-wise false-alarm rate, as ``sim check``'s.
ALPHA = 1e-3
#: Two exact values (both MCSEs 0) or two analytic values agree within this relative gap.
ROUNDING = 1e-9
KEY = ["case", "n", "estimator"]


@dataclass
class Comparison:
    """The comparison of folders ``a`` and ``b``.

    Attributes
    ----------
    a, b : str
        The folders.
    alpha : float
        Family-wise false-alarm rate.
    comparable : bool
        Whether the folders estimate the same things (else ``why`` says how they differ).
    why : list of str
        Why they are not comparable.
    rows : pandas.DataFrame
        One row per (case, n, estimator) compared: both means and MCSEs, their combined ``se``,
        ``z``, ``equal`` (to rounding) and ``agrees``.
    notes : list of str
        Rows left out (estimators only one folder has).
    """

    a: str
    b: str
    alpha: float
    comparable: bool
    why: list[str] = field(default_factory=list)
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)

    @property
    def critical_z(self) -> float:
        """The two-sided Bonferroni critical |z| over the rows compared."""
        m = max(1, int(np.count_nonzero(self.rows["se"] > 0))) if len(self.rows) else 1
        return NormalDist().inv_cdf(1.0 - self.alpha / (2.0 * m))

    @property
    def disagreements(self) -> pd.DataFrame:
        return self.rows[~self.rows["agrees"]] if len(self.rows) else self.rows

    @property
    def agree(self) -> bool:
        return self.comparable and len(self.disagreements) == 0

    def table(self) -> str:
        """The verdict and every disagreeing row, one line each."""
        head = f"{self.a} vs {self.b}: "
        if not self.comparable:
            return head + "not comparable\n" + "\n".join(f"  {w}" for w in self.why)
        tested = int(np.count_nonzero(self.rows["se"] > 0))
        verdict = (
            f"{len(self.rows)} rows, {tested} of them tested at family-wise α = {self.alpha:g} "
            f"(Bonferroni: |z| ≤ {self.critical_z:.2f}); largest |z| = {_largest(self.rows):.2f}"
        )
        lines = [head + ("agree" if self.agree else "DISAGREE") + f" ({verdict})"]
        lines += [f"  {_row_text(r, self.critical_z)}" for r in self.disagreements.to_dict("records")]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON types."""
        rows = [{k: _plain(v) for k, v in r.items()} for r in self.rows.to_dict("records")]
        out: dict[str, Any] = {"a": self.a, "b": self.b, "alpha": self.alpha, "comparable": self.comparable}
        if not self.comparable:
            return out | {"agree": False, "why": self.why}
        return out | {
            "agree": self.agree,
            "critical_z": self.critical_z,
            "rows": rows,
            "disagreements": [r for r in rows if not r["agrees"]],
            "notes": self.notes,
        }


def compare_results(a: str | Path, b: str | Path, *, alpha: float = ALPHA) -> Comparison:
    """Compare the means of two results folders, row by row (see the module notes).

    Raises
    ------
    sim.errors.ResultsError
        If either is not a results folder (a missing or unreadable table).
    """
    tables = [_tables(Path(f)) for f in (a, b)]
    out = Comparison(str(a), str(b), alpha, comparable=True)
    out.why = _differences(*tables)
    if out.why:
        out.comparable = False
        return out
    (sa, _), (sb, _) = tables
    both = set(sa.estimator) & set(sb.estimator)
    for name, frame in ((out.a, sa), (out.b, sb)):
        only = sorted(set(frame.estimator) - both)
        if only:
            out.notes.append(f"only {name} has {', '.join(only)}: left out")
    merged = sa[sa.estimator.isin(both)].merge(sb[sb.estimator.isin(both)], on=KEY, suffixes=("_a", "_b"))
    out.rows = _scored(merged[[*KEY, "mean_a", "mean_b", "mcse_a", "mcse_b"]])
    out.rows["agrees"] = _agrees(out.rows, out.critical_z)
    return out


def _tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not folder.is_dir():
        raise ResultsError(f"{folder}: not a results folder")
    missing = [name for name in (res.SUMMARY, res.ANALYTIC) if not (folder / name).is_file()]
    if missing:
        raise ResultsError(f"{folder}: not a results folder (no {' or '.join(missing)})")
    frames = []
    for name in (res.SUMMARY, res.ANALYTIC):
        try:
            frames.append(res.read_csv(folder / name))
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{folder}: cannot read {name}: {exc}") from None
    summary = frames[0]
    missing = [c for c in (*KEY, "mean", "mcse", "units") if c not in summary.columns]
    if missing:
        raise ResultsError(f"{folder}: {res.SUMMARY} lacks the column(s) {', '.join(missing)}")
    return summary, frames[1]


def _differences(a: tuple, b: tuple) -> list[str]:
    """How two folders' experiments differ, in what makes their rows comparable (empty if not)."""
    (sa, aa), (sb, ab) = a, b
    why = []
    cases_a, cases_b = list(dict.fromkeys(sa.case)), list(dict.fromkeys(sb.case))
    if set(cases_a) != set(cases_b):
        why.append(f"different cases: {_sets(cases_a, cases_b)}")
    ns_a, ns_b = sorted(set(sa.n)), sorted(set(sb.n))
    if ns_a != ns_b:
        why.append(f"different sample sizes: {_sets(ns_a, ns_b)}")
    units_a, units_b = set(sa.units), set(sb.units)
    if units_a != units_b:
        why.append(f"different units: {', '.join(map(str, units_a))} and {', '.join(map(str, units_b))}")
    if not set(sa.estimator) & set(sb.estimator):
        why.append("no estimator in common")
    if not why:
        why += _analytic_differences(aa, ab)
    return why


def _analytic_differences(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Cases of the same name whose exact values differ (another p or q)."""
    if "case" not in a.columns or "case" not in b.columns:
        return []
    columns = [c for c in a.columns if c in b.columns and c != "case" and pd.api.types.is_numeric_dtype(a[c])]
    joined = a.merge(b, on="case", suffixes=("_a", "_b"))
    out = []
    for row in joined.to_dict("records"):
        for c in columns:
            x, y = row[f"{c}_a"], row[f"{c}_b"]
            if not _same(x, y):
                out.append(f"case '{row['case']}' differs in analytic.csv's {c}: {x!r} and {y!r}")
                break
    return out


def _same(x: float, y: float) -> bool:
    if isinstance(x, float) and isinstance(y, float) and (math.isnan(x) or math.isnan(y)):
        return math.isnan(x) and math.isnan(y)
    if x == y:
        return True
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    return bool(abs(x - y) <= ROUNDING * max(abs(x), abs(y)))


def _scored(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.reset_index(drop=True).copy()
    rows["se"] = np.sqrt(rows.mcse_a.fillna(0.0) ** 2 + rows.mcse_b.fillna(0.0) ** 2)
    gap = rows.mean_a - rows.mean_b
    with np.errstate(divide="ignore", invalid="ignore"):
        rows["z"] = np.where(rows.se > 0, gap / rows.se, np.where(gap.fillna(0.0) == 0.0, 0.0, np.nan))
    return rows


def _agrees(rows: pd.DataFrame, critical: float) -> pd.Series:
    """Equal to rounding (infinities equal), or finite and within the critical |z|.

    Rounding matters where the replicates are all one value (an exact estimator): their MCSE is
    then the rounding of that value (1e-17), which a z would divide a last-bit gap by.
    """
    a, b = rows.mean_a.to_numpy(dtype=float), rows.mean_b.to_numpy(dtype=float)
    same = np.array([_same(x, y) for x, y in zip(a, b, strict=True)], dtype=bool)
    finite = np.isfinite(a) & np.isfinite(b)
    tested = (rows.se.to_numpy() > 0) & (np.abs(rows.z.to_numpy(dtype=float)) <= critical) & finite
    rows["equal"] = same
    return pd.Series(same | tested, index=rows.index)


def _largest(rows: pd.DataFrame) -> float:
    """The largest |z| of the rows not equal to rounding (where a z says something)."""
    z = np.abs(rows.z[~rows.equal].to_numpy(dtype=float))
    z = z[np.isfinite(z)]
    return float(z.max()) if z.size else 0.0


def _row_text(row: dict, critical: float) -> str:
    where = f"case '{row['case']}', n = {int(row['n']):,}, {row['estimator']}"
    means = f"means {row['mean_a']:.10g} and {row['mean_b']:.10g}"
    if row["se"] > 0 and math.isfinite(row["z"]):
        return f"{where}: {means} differ by {abs(row['z']):.1f} combined MCSE (critical {critical:.2f})"
    return f"{where}: {means} differ (exact, or infinite: they must be equal)"


def _sets(a: list, b: list) -> str:
    only_a = [x for x in a if x not in set(b)]
    only_b = [x for x in b if x not in set(a)]
    parts = [f"only A has {_few(only_a)}" if only_a else "", f"only B has {_few(only_b)}" if only_b else ""]
    return "; ".join(p for p in parts if p)


def _few(values: list, most: int = 5) -> str:
    shown = ", ".join(str(v) for v in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
