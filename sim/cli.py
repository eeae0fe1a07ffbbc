"""The ``sim`` command line: a thin adapter over the library.

Each command parses its options, calls one library function and turns the
library's exceptions into exit statuses: 2 for bad input (configs, options,
unusable folders), 1 for failures while running, 130 when interrupted.
Heavy modules (numpy, pandas, matplotlib) are imported inside the commands
so that ``sim --help`` answers at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__

if TYPE_CHECKING:  # annotations only: the commands import the library when they run (start-up time)
    from collections.abc import Callable

    from .config import Experiment, FitExperiment
    from .runner import Execution


class BadInput(click.ClickException):
    """Bad input from the user: exit status 2."""

    exit_code = 2


#: The one line printed on Ctrl-C (or SIGTERM), by command.
INTERRUPTED = {
    "run": "Interrupted: earlier results are untouched; finished tasks are kept, "
    "and `sim run CONFIG --resume` continues the run.",
}


def _fail_on_library_errors(func):
    """Run ``func``, mapping sim's exceptions to click's exit statuses."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .errors import ConfigError, OutputError, ResultsError, SimError

        try:
            return func(*args, **kwargs)
        except (ConfigError, OutputError, ResultsError) as exc:
            raise BadInput(str(exc)) from None
        except SimError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo(
                INTERRUPTED.get(func.__name__, "Interrupted: earlier results are untouched."), err=True
            )
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sim")
def main() -> None:
    """Monte Carlo experiments on the likelihood ratio, KL divergence and cross-entropy.

    Samples drawn from p; the log-likelihood ratio of p against q, divided by
    the sample size N, converges to KL(p‖q).  Write an experiment in YAML,
    run it, and read tidy CSV tables checked against exact theory.

    \b
    Example:
      sim run configs/coin.yaml --set replicates=500
    """


@main.command()
@click.argument("configs", nargs=-1, type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--out",
    default="results",
    show_default=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Parent folder; each experiment writes to OUT/<name>/.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (dotted path, value parsed as YAML); repeatable.",
)
@click.option("--no-figures", is_flag=True, help="Write the tables only, no figures.")
@click.option(
    "--no-overwrite",
    is_flag=True,
    help="Refuse (before running anything) if a results folder of the same name exists.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local worker processes (default: 1 for small runs, every core otherwise).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local processes, or a Dask cluster (needs the [dask] extra).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Dask scheduler address, e.g. tcp://scheduler-host:8786 (default: a LocalCluster).",
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run of the same config where it stopped."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_fail_on_library_errors
def run(
    configs: tuple[str, ...],
    out: str,
    overrides: tuple[str, ...],
    no_figures: bool,
    no_overwrite: bool,
    workers: int | None,
    executor: str,
    scheduler: str | None,
    resume: bool,
    quiet: bool,
) -> None:
    """Run experiments: every CONFIG, or all configs/*.yaml when none is given.

    Every config is validated before anything runs or is written.  Results go
    to OUT/<name>/: config.yaml (resolved), analytic.csv, summary.csv,
    replicates.csv.gz (unless save_replicates: false), trajectory.csv (fit
    experiments), run.json and figures/.  The run ends by checking every row
    against exact theory.  A results folder is replaced only when its run
    completes; a figure that fails is named in one line, and the tables are
    still published (exit status 1).  Blocks of replicates run on local processes
    (--workers) or a Dask cluster (--executor dask) with byte-identical
    results; an interrupted run continues with --resume.  Several small
    experiments run side by side, one per core (unless --workers or --executor
    is given), and their lines are printed in order.

    \b
    Examples:
      sim run                                  # all shipped experiments
      sim run configs/coin.yaml --set replicates=500 --set n.max=1000
      sim run my.yaml --out /tmp/results --set seed=3
      sim run big.yaml --workers 2 --resume
      sim run big.yaml --executor dask --scheduler tcp://127.0.0.1:8786
    """

    from .allocator import keep_freed_memory
    from .runner import Execution

    experiments = _experiments_to_run(configs, overrides, out, no_overwrite)
    if scheduler and executor != "dask":
        raise click.UsageError("--scheduler goes with --executor dask")
    execution = Execution(executor, workers, scheduler, resume, quiet)
    keep_freed_memory()
    with _sigterm_interrupts():
        failed = _run_all(experiments, out, execution, figures=not no_figures, overwrite=not no_overwrite)
    if failed:
        sys.exit(1)


def _run_all(experiments, out: str, execution: Execution, *, figures: bool, overwrite: bool) -> bool:
    """Run every experiment, side by side when they are several and small; True if a figure failed."""
    from .runner import heaviest_first, side_by_side_width
    from .sidebyside import side_by_side

    width = side_by_side_width(experiments, execution)
    # side by side, every core already runs an experiment: each draws its figures itself
    draw = functools.partial(_draw_figures, processes=1 if width > 1 else None) if figures else None
    jobs = [
        functools.partial(_run_one, e, out, execution, draw=draw, overwrite=overwrite) for e in experiments
    ]
    if figures:  # loaded once here, before the runs (side by side) and their figure processes fork
        from .figures import warm_up

        warm_up()
    if width > 1:
        runs = side_by_side(jobs, workers=width, start=heaviest_first(experiments))
    else:
        runs = (job() for job in jobs)
    return any([figures_failed for figures_failed in runs])  # a list: every run, not up to the first


def _experiments_to_run(
    configs: tuple[str, ...], overrides: tuple[str, ...], out: str, no_overwrite: bool
) -> list[Experiment | FitExperiment]:
    """Every config loaded and validated; with ``no_overwrite``, none may have a results folder yet."""
    from .config import load_all, resolve_paths
    from .errors import OutputError

    experiments = load_all(resolve_paths(configs), overrides)
    existing = [os.path.join(out, e.name) for e in experiments if os.path.exists(os.path.join(out, e.name))]
    if no_overwrite and existing:
        raise OutputError(f"{', '.join(existing)}: exists, and overwriting was refused (--no-overwrite)")
    return experiments


def _run_one(
    experiment: Experiment | FitExperiment,
    out: str,
    execution: Execution,
    *,
    draw: Callable[[Any, Path], dict] | None,
    overwrite: bool,
) -> bool:
    """Run one experiment and print its summary lines and notes; True if a figure failed."""
    from .runner import replicates_note, run_experiment

    note = replicates_note(experiment)
    if note is not None:
        click.echo(f"{experiment.name}: note: {note}", err=True)
    t0 = time.perf_counter()
    report = run_experiment(
        experiment,
        out,
        command=[os.path.basename(sys.argv[0]), *sys.argv[1:]],
        after=draw,
        overwrite=overwrite,
        execution=execution,
    )
    click.echo(
        f"{experiment.name}: {len(experiment.cases)} case(s) × {len(experiment.checkpoints)} sizes × "
        f"{_replicates_made(experiment, report.summary)} → {report.path} ({time.perf_counter() - t0:.1f} s)"
    )
    click.echo(f"  {report.check.headline()}", err=not report.check.passed)
    for note in experiment.notes:  # what the config asked for but was adjusted (also in config.yaml)
        click.echo(f"  note: {note}")
    for note in report.notes:  # what the results hold that needs saying (also in run.json)
        click.echo(f"  note: {note}")
    return _report_figures(str(report.path), report.figures)


def _alpha_option(what: str):
    """``--alpha``: a family-wise false-alarm rate (shared by check and compare)."""
    return click.option(
        "--alpha",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=1e-3,
        show_default=True,
        help=f"Family-wise false-alarm rate of {what} (Bonferroni-corrected).",
    )


def _json_option(what: str):
    """``--json``: print a machine-readable report instead of the table (shared by check and compare)."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@_alpha_option("each folder's statistical tests")
@_json_option("the reports (one object per folder)")
@_fail_on_library_errors
def check(results: tuple[str, ...], alpha: float, as_json: bool) -> None:
    """Test RESULTS folders against exact theory; exit 1 if any test fails.

    Every column of analytic.csv and summary.csv is checked, each by the
    strongest test available: recomputed from config.yaml (exact values),
    recomputed from replicates.csv.gz (means, sds, quantiles, coverage),
    checked for consistency within its row (mcse, bias, rmse, z), and tested
    statistically against exact theory (exact Binomial tests, z-tests where
    the normal approximation holds, Bernstein bounds elsewhere; one
    Bonferroni correction per folder).  Missing, duplicated or unexpected
    rows fail.  Exit status: 0 all agree, 1 any test fails, 2 a folder is not
    a results folder.

    \b
    Examples:
      sim check results/*
      sim check results/coin --alpha 0.01
      sim check results/coin --json
    """
    from .check import check_results

    reports = [check_results(folder, alpha=alpha) for folder in results]
    if as_json:
        import json

        click.echo(json.dumps([r.to_dict() for r in reports], indent=2, ensure_ascii=False))
    else:
        for i, report in enumerate(reports):
            if i:
                click.echo()
            click.echo(report.table())
    if not all(r.passed for r in reports):
        sys.exit(1)


@main.command()
@click.argument("a", type=click.Path(file_okay=False, path_type=str))
@click.argument("b", type=click.Path(file_okay=False, path_type=str))
@_alpha_option("the row-by-row tests")
@_json_option("the comparison, every row")
@_fail_on_library_errors
def compare(a: str, b: str, alpha: float, as_json: bool) -> None:
    """Compare two results folders' means row by row; exit 1 if they disagree.

    Each summary.csv row (case, n, estimator) of A and B estimates the same
    expectation: z = (mean_A − mean_B) / √(mcse_A² + mcse_B²), tested against
    the two-sided Bonferroni critical value over the rows (exact rows, with
    both MCSEs 0, must agree to rounding).  Exit status: 0 they agree, 1 a
    row disagrees (each is named), 2 they are not comparable (other cases,
    sample sizes or units; estimators only one has are left out, with a
    note) or a folder is not a results folder.

    \b
    Examples:
      sim compare results/coin other/coin
      sim compare results/coin rerun/coin --json
    """
    from .compare import compare_results

    result = compare_results(a, b, alpha=alpha)
    if as_json:
        import json

        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(result.table())
    if not result.comparable:
        sys.exit(2)
    if not result.agree:
        sys.exit(1)


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="The HTML file to write (replaced atomically).",
)
@_alpha_option("each folder's sim check")
@_fail_on_library_errors
def report(results: tuple[str, ...], output: str, alpha: float) -> None:
    """Write one self-contained HTML page for RESULTS folders.

    Per experiment: description, sim check verdict (failures highlighted),
    every figure embedded, the analytic table, the summary table with each
    mean to its MCSE, and config.yaml.  No script, no network: it reads
    offline.  Built from the folders' files only; every folder is read and
    checked before the page is written.  Exit status: 0 written (whatever
    the checks say: the page shows them), 2 a folder is not a results folder.

    \b
    Examples:
      sim report results/*
      sim report results/coin results/markov -o coin-and-markov.html
    """
    from .report import write_report

    read = write_report(results, output, alpha=alpha)
    failing = [f.name for f in read if not f.check.passed]
    note = f"; sim check fails for {', '.join(failing)}" if failing else ""
    click.echo(f"{output}: {len(read)} experiment(s), {sum(len(f.figures) for f in read)} figures{note}")


def _template_options(func):
    """``--coin``, ``--categorical``, … : the kind of template ``sim init`` writes (one of them)."""
    from .config.templates import DEFAULT, TEMPLATES

    for kind in reversed(list(TEMPLATES)):
        default = " (the default)" if kind == DEFAULT else ""
        func = click.option(f"--{kind}", f"kind_{kind}", is_flag=True, help=TEMPLATES[kind][0] + default)(
            func
        )
    return func


def _one_kind(flags: dict[str, bool]) -> str:
    """The one template kind asked for (the default if none); two are a usage error (exit 2)."""
    from .config.templates import DEFAULT

    kinds = [name.removeprefix("kind_") for name, on in flags.items() if on]
    if len(kinds) > 1:
        raise click.UsageError(f"choose one kind of template, not {' and '.join('--' + k for k in kinds)}")
    return kinds[0] if kinds else DEFAULT


@main.command()
@click.argument("name")
@_template_options
@click.option(
    "--out",
    "out",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Folder to write NAME.yaml into.",
)
@_fail_on_library_errors
def init(name: str, out: str, **flags: bool) -> None:
    """Write a commented config template NAME.yaml that validates as written.

    One kind of experiment per flag (a coin by default).  An existing file
    is never replaced (exit 2).

    \b
    Examples:
      sim init my-coin
      sim init my-grid --grid --out configs
    """
    from .config import parse_config
    from .config.templates import template
    from .errors import OutputError

    kind = _one_kind(flags)
    text = template(kind, name)
    path = Path(out) / f"{name}.yaml"
    parse_config(text, source=str(path))  # a bad name is a config error (exit 2), before writing
    if path.exists():
        raise OutputError(f"{path}: already exists; sim init never replaces a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written: {exc.strerror or exc}") from None
    click.echo(f"{path}: a {kind} experiment; run it with: sim run {path}")


def _replicates_made(experiment, summary) -> str:
    """``1,000 replicates``, or for replicates chosen by precision the range the cases reached."""
    precision = getattr(experiment, "precision", None)
    if precision is None:
        return f"{experiment.replicates:,} replicates"
    if summary is None or not len(summary):
        return f"replicates for an MCSE ≤ {precision.mcse:g} (at most {precision.max:,})"
    low, high = int(summary.replicates.min()), int(summary.replicates.max())
    made = f"{low:,}" if low == high else f"{low:,}–{high:,}"
    return f"{made} replicates (for an MCSE ≤ {precision.mcse:g}, at most {precision.max:,})"


def _interrupt(signum, frame) -> None:
    """SIGTERM ends a run as Ctrl-C does: cleanly, keeping the previous results."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts():
    """While a run lasts, SIGTERM interrupts it as Ctrl-C does; then the previous handler is back.

    Restored, because ``sim run`` may be invoked inside a longer-lived
    process (a test runner, a notebook) whose own processes must still die
    on SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _draw_figures(report, folder, *, processes: int | None = None) -> dict:
    """Draw a staged results folder's figures; what was skipped or failed, for run.json."""
    from .figures import draw_figures

    return draw_figures(folder, processes=processes).to_dict()


def _report_figures(folder: str, figures: dict | None) -> bool:
    """Print one line per figure skipped, drawn incompletely or failed; True if any failed."""
    if not figures:
        return False
    for kind, why in figures.get("skipped", {}).items():
        click.echo(f"{folder}: {kind} figure skipped: {why}")
    for kind, why in figures.get("partial", {}).items():
        click.echo(f"{folder}: {kind} figure {why}")
    for kind, why in figures.get("failed", {}).items():
        what = "figures" if kind == "figures" else f"figure '{kind}'"
        click.echo(f"Error: {folder}: {what} failed: {why}", err=True)
    return bool(figures.get("failed"))


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "svg", "pdf"]),
    default="png",
    show_default=True,
    help="Image format (PNG at 200 dpi); figure files of other formats are kept.",
)
@_fail_on_library_errors
def plot(results: tuple[str, ...], fmt: str) -> None:
    """Redraw the figures of RESULTS folders from their CSVs and config.yaml alone.

    Never re-simulates: reads summary.csv, analytic.csv, replicates.csv.gz
    (absent after save_replicates: false: figures that need it are skipped,
    with a note) and config.yaml.  Each figure of the chosen format in
    RESULTS/figures/ is replaced atomically; files of other formats are
    kept.  Holds the folder's lock, so that a sim run writing it is not
    raced.  A figure that fails is named in one line, the others are still
    drawn, and the exit status is 1.

    \b
    Examples:
      sim plot results/*
      sim plot results/coin --format svg
    """
    from . import results as res
    from .errors import SimError, one_line
    from .figures import draw_figures, load_tables

    for folder in results:
        load_tables(folder)  # every folder readable before any is redrawn
    failed = False
    for folder in results:
        path = Path(folder).resolve()
        with res.exclusive(path.parent, path.name):
            try:
                drawn = draw_figures(folder, fmt=fmt).to_dict()
            except SimError:
                raise
            except Exception as exc:  # one folder's figures never stop the others
                drawn = {"written": [], "failed": {"figures": one_line(exc)}}
        click.echo(f"{folder}: {len(drawn['written'])} figures → {os.path.join(folder, 'figures')}")
        failed |= _report_figures(folder, drawn)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("configs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, as for run."
)
@_fail_on_library_errors
def validate(configs: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Check CONFIG files without running them; exit 2 listing every problem.

    \b
    Example:
      sim validate configs/*.yaml
    """
    from .config import FitExperiment, load_all

    for e in load_all(configs, overrides):
        ns = e.checkpoints
        sizes = f"N = {ns[0]:,}…{ns[-1]:,} ({len(ns)} sizes), {_replicates_made(e, None)}"
        if isinstance(e, FitExperiment):
            models = ", ".join(c.model for c in e.cases)
            click.echo(
                f"{e.source}: ok: '{e.name}', fit of {len(e.cases)} model(s) ({models}) to "
                f"{e.truth.inputs} input(s) × {e.truth.classes} classes, {sizes}, "
                f"smoothing {e.smoothing:g}, {e.units}"
            )
        else:
            click.echo(
                f"{e.source}: ok: '{e.name}', {len(e.cases)} case(s), {sizes}, {e.units}, sampler {e.sampler}"
            )


@main.command()
@click.argument("sequence", nargs=-1, required=True)
@click.option(
    "--p", "p", required=True, type=click.FloatRange(0, 1), help="P(heads) of coin p, the true coin."
)
@click.option(
    "--q", "q", required=True, type=click.FloatRange(0, 1), help="P(heads) of coin q, the model coin."
)
@click.option("--units", type=click.Choice(["nats", "bits"]), default="nats", show_default=True)
def llr(sequence: tuple[str, ...], p: float, q: float, units: str) -> None:
    """Work the source's coin example through for a SEQUENCE of flips (H/T).

    Counts heads and tails, evaluates the likelihood of the sequence under
    each coin, their ratio, its N-th root and the log of that: the
    normalised log-likelihood ratio, beside KL(p‖q), its limit as N grows
    when the flips come from p.

    \b
    Example:
      sim llr --p 0.5 --q 0.8 HTHHTTH
    """
    import math

    from .distributions import unit_size
    from .sequence import coin_sequence

    try:
        r = coin_sequence(" ".join(sequence), p, q)
    except ValueError as exc:
        raise BadInput(f"SEQUENCE: {exc}") from None
    scale = 1.0 / unit_size(units)
    log = "ln" if units == "nats" else "log2"

    def num(x: float) -> str:
        return f"{x * scale:.4f}" if math.isfinite(x) else ("-inf" if x < 0 else "inf")

    def power(x: float) -> str:
        if not math.isfinite(x):
            return "0" if x < 0 else "inf"
        return f"{math.exp(x):.6g}" if abs(x) < 700 else f"e^{x:.4f}"

    lines = [
        ("flips", f"{r.n} ({_counted(r.heads, 'head')}, {_counted(r.tails, 'tail')})"),
        ("L_p = p^H (1−p)^T", f"{power(r.loglik_p)}   {log} L_p = {num(r.loglik_p)}"),
        ("L_q = q^H (1−q)^T", f"{power(r.loglik_q)}   {log} L_q = {num(r.loglik_q)}"),
        (
            "likelihood ratio L_p/L_q",
            power(r.log_ratio) if not math.isnan(r.log_ratio) else "undefined (0/0)",
        ),
        ("its N-th root", power(r.llr) if not math.isnan(r.llr) else "undefined"),
        (f"{log} of that (normalised llr)", num(r.llr) if not math.isnan(r.llr) else "undefined"),
        ("KL(p‖q), its limit as N → ∞", num(r.kl_pq)),
    ]
    width = max(len(k) for k, _ in lines)
    click.echo(f"p = {p:g}, q = {q:g}, units: {units}")
    for key, value in lines:
        click.echo(f"  {key:<{width}}  {value}")


def _counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is 1: "1 head", "3 tails".

    Parameters
    ----------
    count : int
        How many.
    noun : str
        The singular noun.

    Returns
    -------
    str
        The count and the noun, e.g. ``"1 tail"`` or ``"0 heads"``.
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
