"""The outcome of checking a results folder: one record per test, and how it reads."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .inference import equivalent_z

#: Default family-wise false-alarm rate of one folder's statistical tests.
ALPHA = 1e-3

#: Kinds of test.  The statistical ones end in a p-value and share the
#: folder's Bonferroni correction; the others are decided on their own.
RECOMPUTED = "recomputed from the config"
FROM_REPLICATES = "recomputed from replicates.csv.gz"
CONSISTENCY = "consistency within the row"
RANGE = "within the possible values"
ROW_SET = "row set"
EXACT_TEST = "exact test (Binomial)"
NORMAL_TEST = "z-test (exact sd)"
BOUND_TEST = "Bernstein bound test"
CHEBYSHEV_TEST = "Chebyshev bound test"
ESTIMATED_TEST = "z-test (sd estimated from the replicates; approximate)"
UNTESTABLE = "not testable"
STATISTICAL = (EXACT_TEST, NORMAL_TEST, BOUND_TEST, CHEBYSHEV_TEST, ESTIMATED_TEST)
#: How the overview names each kind of test.
SHORT = {
    RECOMPUTED: "recomputed",
    FROM_REPLICATES: "from replicates",
    CONSISTENCY: "consistent",
    RANGE: "in range",
    ROW_SET: "complete",
    EXACT_TEST: "exact Binomial test",
    NORMAL_TEST: "z-test",
    BOUND_TEST: "Bernstein test",
    CHEBYSHEV_TEST: "Chebyshev test",
    ESTIMATED_TEST: "z-test (estimated sd)",
    UNTESTABLE: "NOT TESTABLE",
}

COLUMNS = [
    "table",
    "case",
    "n",
    "estimator",
    "column",
    "test",
    "observed",
    "expected",
    "tolerance",
    "z",
    "p",
    "passed",
    "reason",
]


def record(
    table: str,
    key: dict,
    column: str,
    test: str,
    observed,
    expected,
    *,
    tolerance: float = math.nan,
    p: float = math.nan,
    z: float = math.nan,
    passed: bool = True,
    reason: str = "",
) -> dict:
    """One test's record (``passed`` is decided later for statistical tests)."""
    return {
        "table": table,
        "case": key.get("case", ""),
        "n": key.get("n", -1),
        "estimator": key.get("estimator", ""),
        "column": column,
        "test": test,
        "observed": observed,
        "expected": expected,
        "tolerance": tolerance,
        "z": z,
        "p": p,
        "passed": bool(passed),
        "reason": reason,
    }


@dataclass
class CheckReport:
    """The outcome of checking one results folder.

    Attributes
    ----------
    name : str
        What was checked (the folder, or the experiment's name).
    tests : pandas.DataFrame
        One row per test with :data:`COLUMNS`: which table, case, n,
        estimator and column; the kind of test; the value found and the one
        expected, the tolerance of an exact comparison, the p-value and the
        equivalent |z| of a statistical test; whether it passed, and why not
        (or why a value could not be tested).
    alpha : float
        The family-wise level of the statistical tests.
    """

    name: str
    tests: pd.DataFrame
    alpha: float = ALPHA

    @classmethod
    def decide(cls, name: str, records: list[dict], *, alpha: float = ALPHA) -> CheckReport:
        """Build a report, deciding the statistical tests by one Bonferroni correction."""
        tests = pd.DataFrame(records, columns=COLUMNS)
        statistical = tests.test.isin(STATISTICAL)
        m = max(1, int(statistical.sum()))
        limit = alpha / m
        p = tests.p.astype(float)
        failed = statistical & ~(p > limit)
        tests.loc[statistical, "passed"] = ~failed[statistical]
        tests.loc[failed & (tests.reason == ""), "reason"] = (
            f"p ≤ α/m = {limit:.3g} (Bonferroni over {m} statistical tests)"
        )
        impossible = failed & np.isinf(tests.z.astype(float))
        tests.loc[impossible, "reason"] = (
            "|z| = ∞: a value the exact law gives probability 0 (its exact spread allows no such deviation); "
            + tests.loc[impossible, "reason"]
        )
        tests["passed"] = tests.passed.astype(bool)
        return cls(name, tests, alpha)

    @property
    def statistical(self) -> int:
        """Number of statistical tests (the m of the Bonferroni correction)."""
        return int(self.tests.test.isin(STATISTICAL).sum())

    @property
    def z_crit(self) -> float:
        """The Bonferroni critical |z| of the folder's statistical tests."""
        return float(stats.norm.isf(self.alpha / (2 * max(1, self.statistical))))

    @property
    def passed(self) -> bool:
        return bool(self.tests.passed.all())

    @property
    def failures(self) -> pd.DataFrame:
        return self.tests[~self.tests.passed]

    @property
    def largest_z(self) -> float:
        z = self.tests.z[self.tests.test.isin(STATISTICAL)].abs()
        return float(z.max()) if z.notna().any() else math.nan

    def counts(self) -> pd.DataFrame:
        """Tests per table, column and kind: how many, how many failed."""
        t = self.tests
        return (
            t.assign(failed=~t.passed)
            .groupby(["table", "column", "test"], sort=False)
            .agg(values=("passed", "size"), failed=("failed", "sum"))
            .reset_index()
        )

    def headline(self) -> str:
        """One line: does the folder agree with theory?"""
        worst = self.largest_z
        z = f"; largest |z| = {worst:.2f}" if not math.isnan(worst) else ""
        untested = int((self.tests.test == UNTESTABLE).sum())
        extra = f"; {untested} values not testable (see the table)" if untested else ""
        basis = (
            f"{len(self.tests)} tests, {self.statistical} of them statistical at family-wise "
            f"α = {self.alpha:g} (Bonferroni: |z| ≤ {self.z_crit:.2f}){z}{extra}"
        )
        if self.passed:
            return f"{self.name}: agrees with theory ({basis})"
        return f"{self.name}: DISAGREES with theory: {len(self.failures)} of {basis} fail"

    def failure_lines(self) -> list[str]:
        """One line per failure: where, which column, found, expected, tolerance or z."""
        lines = []
        for _, row in self.failures.iterrows():
            where = [f"{row.table}"]
            if row.case != "":
                where.append(f"case {row.case}")
            if row.n >= 0:
                where.append(f"n = {int(row.n):,}")
            if row.estimator != "":
                where.append(str(row.estimator))
            judged = ""
            if not pd.isna(row.z):
                judged = f", z = {row.z:+.2f}"
            elif not pd.isna(row.tolerance):
                judged = f", tolerance {row.tolerance:.3g}"
            lines.append(
                f"  {', '.join(where)}: column {row.column} ({row.test}): found {_fmt(row.observed)}, "
                f"expected {_fmt(row.expected)}{judged}" + (f": {row.reason}" if row.reason else "")
            )
        return lines

    def overview(self) -> pd.DataFrame:
        """One row per table and column: how many values each kind of test checked."""
        counts = self.counts()
        counts["checked"] = [
            f"{v} {SHORT[k]}" + (f" ({f} FAILED)" if f else "")
            for v, k, f in zip(counts["values"], counts.test, counts.failed, strict=True)
        ]
        return (
            counts.groupby(["table", "column"], sort=False).agg(checked=("checked", ", ".join)).reset_index()
        )

    def table(self) -> str:
        """The headline, the checks per column and kind of test, then every failure."""
        overview = self.overview()
        width = int(overview.column.str.len().max()) if len(overview) else 0
        lines = [self.headline(), ""]
        for table, part in overview.groupby("table", sort=False):
            lines.append(f"  {table}")
            lines += [f"    {c:<{width}}  {k}" for c, k in zip(part.column, part.checked, strict=True)]
        if not self.passed:
            lines += ["", "Failures:", *self.failure_lines()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The same as :meth:`table`, for tools (``sim check --json``)."""
        counts = self.counts()
        failures = self.failures.replace({math.nan: None})
        return {
            "folder": self.name,
            "agrees_with_theory": self.passed,
            "alpha": self.alpha,
            "statistical_tests": self.statistical,
            "z_crit": self.z_crit,
            "largest_abs_z": None if math.isnan(self.largest_z) else self.largest_z,
            "tests": len(self.tests),
            "counts": counts.to_dict("records"),
            "failures": json.loads(failures.to_json(orient="records")),
        }


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "empty"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


__all__ = ["ALPHA", "CheckReport", "equivalent_z", "record"]
