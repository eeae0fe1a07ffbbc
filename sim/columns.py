"""What every column of a results folder's tables means, in what unit, and how ``sim check`` tests it.

One place for it: the README's "Output files" tables and the ``README.md`` each results folder
gets (:func:`folder_readme`) are both made from :data:`COLUMNS`; ``tests/test_columns.py`` fails
when the README's tables differ from what :func:`readme_tables` makes
(``python -m sim.columns --readme README.md`` rewrites them).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

#: Units of a column (the value columns are in the experiment's units, ``nats`` or ``bits``).
VALUE, COUNT, TEXT, RATIO = "nats or bits (the config's units)", "a count", "text", "a fraction (0 to 1)"
_EXACT = "recomputed from `config.yaml`: numbers within 10⁻¹² relative, text and integers exactly"
_REPLICATES = "recomputed from `replicates.csv.gz` (within the rounding of its sums) where it is kept"


class Column(NamedTuple):
    """One column: its name(s), what it means, its unit, and how ``sim check`` tests it."""

    name: str
    meaning: str
    unit: str
    check: str


ANALYTIC = [
    Column("case", "case name", TEXT, "one row per case, none missing, duplicated or extra"),
    Column(
        "family",
        "`coin` when p and q are both coins, `categorical` for other categorical cases, the family "
        "(`normal`, `poisson/geometric`, …) for parametric ones, `markov` for Markov sources",
        TEXT,
        _EXACT,
    ),
    Column("k", "number of categories K", COUNT, _EXACT),
    Column("k_support", "categories with p_k > 0 (K′)", COUNT, _EXACT),
    Column("units", "`nats` or `bits`", TEXT, _EXACT),
    Column("kl_pq", "KL(p‖q)", VALUE, _EXACT),
    Column("kl_qp", "KL(q‖p); `inf` where q has mass on categories p lacks", VALUE, _EXACT),
    Column("entropy_p", "H(p)", VALUE, _EXACT),
    Column("cross_entropy_pq", "H(p, q)", VALUE, _EXACT),
    Column("llr_sigma", "σ = sd of log p(X)/q(X) under p; sd(llr at N) = σ/√N", VALUE, _EXACT),
    Column("cross_entropy_sigma", "sd of −log q(X) under p", VALUE, _EXACT),
    Column("entropy_sigma", "sd of −log p(X) under p", VALUE, _EXACT),
    Column(
        "chernoff",
        "the Chernoff information C(p, q) = −min_s log Σ p^(1−s) q^s, the error exponent of the "
        "likelihood-ratio test",
        VALUE,
        _EXACT,
    ),
    Column(
        "kl_stationary",
        "only when the experiment has a Markov case (empty for the others): KL(π_p‖π_q) between the "
        'two stationary marginals; for Markov cases the other columns are rates (see "Sequences")',
        VALUE,
        _EXACT,
    ),
]

SUMMARY = [
    Column("case", "case name", TEXT, "one row per case × n × estimator, none missing, duplicated or extra"),
    Column("n", "the sample size", COUNT, "as above"),
    Column("estimator", "the estimator", TEXT, "as above"),
    Column("units", "`nats` or `bits`", TEXT, _EXACT),
    Column(
        "target",
        "the estimator's limit: KL(p‖q), H(p, q) or H(p) (0 for `p_wrong`, whose values are probabilities)",
        VALUE,
        _EXACT,
    ),
    Column(
        "mean",
        "mean over replicates; for `p_wrong_tilted`, empty (with `mcse`, `bias`, `rmse` and `z`) where "
        "no replicate saw the event",
        VALUE,
        _REPLICATES + "; against the exact law statistically (an exact Binomial test, a z-test or "
        "Bernstein's inequality; one Bonferroni correction per folder)",
    ),
    Column(
        "sd",
        "standard deviation over replicates (ddof = 1)",
        VALUE,
        _REPLICATES + "; against the exact sd exactly for two-valued estimators, else statistically",
    ),
    Column(
        "mcse", "Monte Carlo standard error of the mean, sd/√replicates", VALUE, "consistent with sd and R"
    ),
    Column("bias", "mean − target", VALUE, "consistent with mean and target"),
    Column(
        "rmse", "√mean((x − target)²) over replicates", VALUE, _REPLICATES + "; rmse² = bias² + sd²(R − 1)/R"
    ),
    Column(
        "q05",
        "5 % quantile over replicates (linear interpolation); `q50`, `q95` likewise",
        VALUE,
        _REPLICATES + "; ordered, and within the values the estimator can take",
    ),
    Column("q50", "median over replicates", VALUE, "as q05"),
    Column("q95", "95 % quantile over replicates", VALUE, "as q05"),
    Column(
        "replicates",
        "number of replicates R (with `replicates: {mcse, max}`, the count the case reached)",
        COUNT,
        "recomputed from the config; with a target precision, by replaying its rule on `replicates.csv.gz`",
    ),
    Column(
        "exact_mean",
        "the estimator's exact expectation at this n (for `plugin_kl`: KL plus its exact bias); empty "
        "where not known exactly",
        VALUE,
        _EXACT + "; empty where it must be",
    ),
    Column(
        "exact_sd",
        "its exact standard deviation at this n (σ_e/√n for the means; for `plugin_kl` known for coins "
        'and wherever its double sums fit their budget, see "Exact plug-in KL"); empty where not '
        "known, never a bound",
        VALUE,
        _EXACT + "; empty where it must be",
    ),
    Column(
        "z",
        "(mean − exact_mean)/(exact_sd/√R); empty where exact_sd is empty or 0",
        "standard errors",
        "consistent with the row",
    ),
    Column(
        "coverage95",
        "`llr` rows only: fraction of replicates with |llr − KL| ≤ 1.96 σ/√n",
        RATIO,
        _REPLICATES + "; for coins an exact Binomial test against coverage95_exact",
    ),
    Column(
        "coverage95_mcse", "its Monte Carlo standard error √(c(1 − c)/R)", RATIO, "consistent with the row"
    ),
    Column(
        "coverage95_exact",
        "its exact value for coins (a Binomial probability); empty otherwise",
        RATIO,
        _EXACT,
    ),
    Column(
        "quantile_error",
        "only with `save_replicates: false`: an upper bound on the distance of the quantiles from the "
        "exact ones",
        VALUE,
        "a finite bound ≥ 0",
    ),
    Column(
        "infinite_fraction",
        "fit experiments: the fraction of replicates whose fitted KL is infinite",
        RATIO,
        _REPLICATES,
    ),
]

#: The tables documented column by column, by file name.
COLUMNS = {"analytic.csv": ANALYTIC, "summary.csv": SUMMARY}
#: The others, in a sentence or two each.
OTHER = {
    "replicates.csv.gz": "One row per case × replicate × n, one column per estimator (in the config's "
    "units); the rows of one replicate are one nested sample path. `sim check`: every value within its "
    "estimator's possible values, cross_entropy − entropy = llr and plug-in KL ≥ llr in every row, and "
    "for coins every replicate a nested path of whole head counts. ",
    "trajectory.csv": "A fit's optimisation path, step by step. `sim check`: gap = H(p), the empirical "
    "cross-entropy = KL(p̂‖q) + H(p̂) and equal gradient norms at every step, within 10⁻¹² of the terms. ",
}


def table(columns: list[Column], present: list[str] | None = None) -> str:
    """A Markdown table of ``columns`` (those in ``present``, when given, in its order)."""
    by_name = {c.name: c for c in columns}
    chosen = columns if present is None else [by_name[name] for name in present if name in by_name]
    lines = ["| column | meaning | unit | how `sim check` tests it |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {_cell(c.meaning)} | {c.unit} | {_cell(c.check)} |" for c in chosen]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bare pipe would end the cell


def readme_tables() -> dict[str, str]:
    """The README's table per file, by file name."""
    return {name: table(columns) for name, columns in COLUMNS.items()}


def _marker(name: str) -> tuple[str, str]:
    return f"<!-- columns: {name} -->", f"<!-- /columns: {name} -->"


def readme_block(text: str, name: str) -> str | None:
    """The table between the README's markers for ``name`` (None if the markers are missing)."""
    start, end = _marker(name)
    match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, flags=re.S)
    return match.group(1) if match else None


def rewrite_readme(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for name, made in readme_tables().items():
        start, end = _marker(name)
        text = re.sub(
            re.escape(start) + r"\n.*?\n" + re.escape(end), f"{start}\n{made}\n{end}", text, flags=re.S
        )
    path.write_text(text, encoding="utf-8")


def folder_readme(experiment, tables: dict, *, notes: Sequence[str] = ()) -> str:
    """The ``README.md`` of a results folder: the experiment, its cases, files, notes and columns."""
    lines = [f"# {experiment.name}", ""]
    if experiment.description:
        lines += [experiment.description, ""]
    lines += [
        'Written by `sim run` (see the sim README: "Output files", "Checking against exact theory"). '
        f"Values are in {experiment.units}. Check this folder with `sim check .`, redraw its figures with "
        "`sim plot .`, and rerun it with `sim run config.yaml`.",
        "",
        _replicates_line(experiment),
        "",
        "## Cases",
        "",
        *case_lines(experiment),
        "",
        "## Files",
        "",
    ]
    lines += [f"- `{name}`: {len(frame):,} rows" for name, frame in tables.items()]
    lines += [
        "- `config.yaml`: the resolved config",
        "- `run.json`: provenance, timings, the check's verdict",
    ]
    lines += [
        "- `figures/`: the figures, when drawn (`sim run` draws them unless `--no-figures`; `sim plot .` redraws them)"
    ]
    lines += [""] + (["## Notes", "", *(f"- {note}" for note in notes), ""] if notes else [])
    for name, columns in COLUMNS.items():
        if name in tables:
            lines += [f"## {name}", "", table(columns, list(tables[name].columns)), ""]
    for name in (n for n in tables if n not in COLUMNS):
        listed = ", ".join(f"`{c}`" for c in tables[name].columns)
        lines += [f"## {name}", "", f"{OTHER.get(name, '')}Columns: {listed}.", ""]
    return "\n".join(lines)


def case_lines(experiment) -> list[str]:
    """One Markdown line per case: its name, p and q (or model), and its description."""
    from .figures.style import case_titles

    titles = case_titles(experiment.to_dict()) if hasattr(experiment.cases[0], "pair") else {}
    lines = []
    for c in experiment.cases:
        title = titles.get(c.name) or _fit_title(c)
        said = c.description and c.description not in title  # a coin grid's "p = 0.5, q = 0.55" is
        lines.append(f"- {title}" + (f" ({c.description})" if said else ""))
    return lines


def _replicates_line(experiment) -> str:
    precision = getattr(experiment, "precision", None)
    if precision is None:
        return f"Replicates: {experiment.replicates:,} per case."
    return (
        f"Replicates: chosen per case for an MCSE ≤ {precision.mcse:g} on the rows of "
        f"{', '.join(precision.estimators)} at every n, at most {precision.max:,} (each case's count is "
        '`summary.csv`\'s `replicates`; see the sim README, "Replicates by target precision").'
    )


def _fit_title(case) -> str:
    model = getattr(case, "model", None)
    return f"{case.name}: model {model}" if model else case.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print the README's column tables, or rewrite them in place."
    )
    parser.add_argument("--readme", type=Path, help="rewrite the tables between this README's markers")
    args = parser.parse_args(argv)
    if args.readme:
        rewrite_readme(args.readme)
    else:
        sys.stdout.write("\n\n".join(readme_tables().values()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
