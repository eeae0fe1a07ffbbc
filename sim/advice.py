"""Which KL estimator? The README's advice table, built from a results folder's files alone.

For each alphabet size K (the case with that many categories) and each
sample size n ∈ {K/10, K, 10K}, the estimator of KL(p‖q) with the lowest
RMSE over the replicates, separately in the two settings of
:class:`sim.registry.Setting`: estimators that need only samples of p and
a known q (the plug-ins), and those that need p and q scored at every
sample (llr = k1, k2, k3).  Nothing is simulated: the table is read from
``summary.csv`` (and ``analytic.csv`` for K) of a finished run, e.g. the
shipped ``results/estimators``.

A winner is flagged when the runner-up of its setting is within Monte
Carlo error of it: when the two RMSEs differ by at most
:data:`Z` ·√(mcse₁² + mcse₂²).  The ``mcse`` column, sd/√R, stands for the
Monte Carlo standard error of an RMSE: for normally distributed values
the delta method gives sd·√(sd²/2 + bias²)/(RMSE·√R), which is at most
sd/√R.  Ignoring that two estimators computed from the same replicates
are correlated makes the flag conservative (it is raised more often).

``python -m sim.advice RESULTS [--readme README.md]`` prints the table,
or writes it into the README between :data:`BEGIN` and :data:`END`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import registry, results
from .errors import ResultsError
from .registry import Setting

#: The alphabet sizes of the table (the shipped experiment has one case of each).
ALPHABETS = (10, 1_000, 50_000)
#: A winner is "within Monte Carlo error" of the runner-up when their RMSEs differ by at most Z combined mcse.
Z = 2.0
#: The markers around the generated table in the README.
BEGIN, END = "<!-- estimator-table:begin -->", "<!-- estimator-table:end -->"
#: The plain plug-in, shown for comparison in the known-q setting.
PLUGIN = registry.PLUGIN_KL.name


@dataclass(frozen=True)
class Pick:
    """The estimator with the lowest RMSE in one setting at one case and n, and its runner-up.

    Attributes
    ----------
    estimator, rmse : str, float
        The winner and its RMSE.
    runner_up, runner_up_rmse : str or None, float
        The second lowest RMSE (None and nan when the setting had one estimator).
    close : bool
        Whether the runner-up is within Monte Carlo error of the winner (see the module notes).
    """

    estimator: str
    rmse: float
    runner_up: str | None = None
    runner_up_rmse: float = math.nan
    close: bool = False


def pick(rows: pd.DataFrame, z: float = Z) -> Pick | None:
    """The lowest RMSE among ``rows`` (one case, one n, one setting), or None if no row has one.

    Parameters
    ----------
    rows : pandas.DataFrame
        Rows of a summary, with the columns ``estimator``, ``rmse`` and
        ``mcse``; rows with an empty RMSE are left out.  Ties go to the row
        that comes first.
    z : float
        The runner-up is within Monte Carlo error when its RMSE exceeds the
        winner's by at most z·√(mcse₁² + mcse₂²).
    """
    ranked = rows[rows.rmse.notna()].sort_values("rmse", kind="stable")
    if ranked.empty:
        return None
    best = ranked.iloc[0]
    if len(ranked) == 1:
        return Pick(str(best.estimator), float(best.rmse))
    second = ranked.iloc[1]
    error = z * math.hypot(best.mcse, second.mcse)
    return Pick(
        str(best.estimator),
        float(best.rmse),
        str(second.estimator),
        float(second.rmse),
        bool(second.rmse - best.rmse <= error),
    )


def setting_of(estimators: pd.Series) -> pd.Series:
    """Each estimator's :class:`sim.registry.Setting` (None for one that does not estimate KL(p‖q))."""
    return estimators.map(lambda name: registry.get(name).setting)


def sizes(k: int) -> tuple[int, ...]:
    """The table's sample sizes for an alphabet of ``k`` categories: K/10 (when whole), K and 10K."""
    return (*((k // 10,) if k % 10 == 0 else ()), k, 10 * k)


@dataclass(frozen=True)
class Row:
    """One row of the table: a case at one n, and the winner of each setting.

    Attributes
    ----------
    case, k, n : str, int, int
        The case, its alphabet's size and the sample size.
    kl : float
        KL(p‖q), the estimators' target (in the results' units).
    known_q, scored : Pick or None
        The winners among the estimators that need samples of p and a known q,
        and among those that score p and q at the samples (None: none asked for).
    plugin_rmse : float
        The plain plug-in's RMSE, for comparison (nan if it was not asked for).
    """

    case: str
    k: int
    n: int
    kl: float
    known_q: Pick | None
    plugin_rmse: float
    scored: Pick | None


def case_of(analytic: pd.DataFrame, k: int) -> str:
    """The name of the case with ``k`` categories.

    Raises
    ------
    sim.errors.ResultsError
        If no case, or more than one, has ``k`` categories.
    """
    names = analytic.case[analytic.k == k].tolist()
    if len(names) != 1:
        found = "no case" if not names else f"{len(names)} cases ({', '.join(names)})"
        raise ResultsError(f"the table needs one case with K = {k} categories; found {found}")
    return str(names[0])


def rows(summary: pd.DataFrame, analytic: pd.DataFrame, alphabets: Sequence[int] = ALPHABETS) -> list[Row]:
    """The table's rows: per alphabet size, its case at each n of :func:`sizes` that ``summary`` has.

    Parameters
    ----------
    summary, analytic : pandas.DataFrame
        A results folder's ``summary.csv`` and ``analytic.csv``.
    alphabets : sequence of int
        The alphabet sizes K, each that of exactly one case.

    Raises
    ------
    sim.errors.ResultsError
        If an alphabet size is not that of exactly one case.
    """
    summary = summary.assign(setting=setting_of(summary.estimator))
    out = []
    for k in alphabets:
        case = case_of(analytic, k)
        of_case = summary[summary.case == case]
        out += [_row(of_case[of_case.n == n], case, k, n) for n in sizes(k) if n in set(of_case.n)]
    return out


def _row(at: pd.DataFrame, case: str, k: int, n: int) -> Row:
    """The table's row of one case at one n, from its summary rows (with their ``setting``)."""
    plugin = at.rmse[at.estimator == PLUGIN]
    return Row(
        case=case,
        k=k,
        n=n,
        kl=float(at.target[at.setting.notna()].iloc[0]),
        known_q=pick(at[at.setting == Setting.KNOWN_Q]),
        plugin_rmse=float(plugin.iloc[0]) if len(plugin) else math.nan,
        scored=pick(at[at.setting == Setting.SCORED]),
    )


def number(x: float) -> str:
    """``x`` to 3 significant digits (``2.18``, ``0.0293``, ``8.53e-05``); a dash for nan."""
    return "–" if math.isnan(x) else f"{x:.3g}"


def cell(p: Pick | None) -> str:
    """A winner as the table shows it: name and RMSE, and the runner-up when it is within Monte Carlo error."""
    if p is None:
        return "–"
    text = f"`{p.estimator}` {number(p.rmse)}"
    return f"{text} ≈ `{p.runner_up}` {number(p.runner_up_rmse)}" if p.close else text


#: The table's header: one column per setting, and the plain plug-in for comparison.
HEADER = (
    "| K (case) | n | KL(p‖q) | samples of p, q known: lowest RMSE | plain plug-in's RMSE "
    "| p and q scored at the samples: lowest RMSE |\n"
    "|---|---|---|---|---|---|"
)


def table(table_rows: Sequence[Row], *, units: str, replicates: int) -> str:
    """The table in Markdown, with a line saying what its numbers are."""
    lines = [HEADER]
    for r in table_rows:
        lines.append(
            f"| {r.k:,} ({r.case}) | {r.n:,} | {number(r.kl)} | {cell(r.known_q)} "
            f"| {number(r.plugin_rmse)} | {cell(r.scored)} |"
        )
    lines.append("")
    lines.append(
        f"RMSE over {replicates:,} replicates, in {units}. "
        f"A ≈ names the runner-up when the two RMSEs differ by at most {Z:g} Monte Carlo "
        "standard errors (√(mcse₁² + mcse₂²)): the winner is then not resolved."
    )
    return "\n".join(lines)


def read(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``summary.csv`` and ``analytic.csv`` of a results folder.

    Raises
    ------
    sim.errors.ResultsError
        If either is missing or unreadable.
    """
    folder = Path(folder)
    try:
        return pd.read_csv(folder / results.SUMMARY), pd.read_csv(folder / results.ANALYTIC)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ResultsError(f"{folder}: not a results folder ({exc})") from None


def render(folder: str | Path, alphabets: Sequence[int] = ALPHABETS) -> str:
    """The advice table of a results folder (Markdown), from its files alone."""
    summary, analytic = read(folder)
    return table(
        rows(summary, analytic, alphabets),
        units=str(summary.units.iloc[0]),
        replicates=int(summary.replicates.max()),
    )


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between :data:`BEGIN` and :data:`END` replaced by ``block``.

    Raises
    ------
    ValueError
        If the markers are missing, repeated or out of order.
    """
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"expected one {BEGIN} followed by one {END}")
    head, rest = text.split(BEGIN)
    _old, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def block_of(text: str) -> str:
    """What lies between :data:`BEGIN` and :data:`END` in ``text`` (without the newlines next to them)."""
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sim.advice RESULTS [--readme FILE]``: print the table, or write it into FILE."""
    parser = argparse.ArgumentParser(
        prog="python -m sim.advice",
        description="Which KL estimator? The lowest RMSE per setting, from a results folder's summary.csv.",
        epilog="Example: python -m sim.advice results/estimators --readme README.md",
    )
    parser.add_argument("results", help="a results folder, e.g. results/estimators")
    parser.add_argument("--readme", type=Path, help=f"write the table between {BEGIN} and {END} in this file")
    args = parser.parse_args(argv)
    try:
        block = render(args.results)
        if args.readme is None:
            print(block)
            return 0
        text = args.readme.read_text(encoding="utf-8")
        args.readme.write_text(replace_block(text, block), encoding="utf-8")
    except (ResultsError, ValueError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
