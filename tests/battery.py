"""A seeded battery of random valid small experiments, each run and checked.

Issue 13 point 6 asks that ``sim check`` hold its promised false-alarm rate
on experiments nobody tuned it for: at family-wise α = 0.001 per folder, a
correct simulation fails a folder with probability at most 0.001, so a
battery of 200 folders should see at most one failing (two or more happen
with probability below 1 − 0.999²⁰⁰ − 200·0.001·0.999¹⁹⁹ ≈ 0.018, less
since Bonferroni is conservative).

:func:`random_config` draws one valid config as YAML text from a numpy
generator: coins at extreme, near-equal and equal probabilities, categorical
cases from 3 to 3,000 categories (explicit lists with tiny and zero entries,
``uniform``, ``zipf`` and ``dirichlet``), both units, kept and streamed
replicates, the optional ``p_wrong`` and ``p_wrong_tilted`` estimators, both
samplers, and ``kind: fit`` experiments with every model family.  Sizes are
kept small (each config runs in a fraction of a second without figures).

:func:`run_battery` runs ``count`` of them, config i drawn from
``numpy.random.default_rng((seed, i))`` so that any one config can be
regenerated alone, and checks each results folder with
:func:`sim.check.check_results`.

From the command line (from the repository's root)::

    python -m tests.battery --count 200 --seed 1 --out /tmp/battery
    python -m tests.battery --seed 1 --only 17 --show --out /tmp/battery   # one config, with its YAML

It prints one line per config (time, verdict, what its cases are), then each
failing folder's YAML and check table, a list of the failing rows and the
total time.  On the 2-core VM this was written on, 200 configs take about
30 s of CPU (≈ 0.15 s a config, fits included; wall time grows when the
machine is shared).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sim.check import CheckReport, check_results
from sim.check.report import COLUMNS
from sim.config import Experiment, FitExperiment, parse_config
from sim.runner import Execution, run_experiment

#: Coin probabilities at and near the edges, as the issue lists them.
EXTREME = (1e-10, 1e-6, 0.001, 0.5, 0.999, 1 - 1e-9)
#: Entries that explicit categorical lists sprinkle in.
TINY = (1e-12, 1e-9, 1e-6)
#: The per-sample sampler draws every observation: small N only.
PER_SAMPLE_MAX_N = 2000
#: Largest number of categories of a categorical case.
MAX_K = 3000
#: Explicit lists are written out up to this many categories (longer: generators).
EXPLICIT_MAX_K = 40
#: Work budget of one categorical case: distinct p values × replicates × checkpoints.
CATEGORICAL_WORK = 1.5e6


# --------------------------------------------------------------------------
# Numbers as YAML text


def _num(x: float) -> str:
    """A float as YAML text that reads back to the same double."""
    if x == 0:
        return "0.0"
    if x == 1:
        return "1.0"
    return repr(float(x))


def _flow(values: Sequence[float]) -> str:
    return "[" + ", ".join(_num(v) for v in values) + "]"


def _choice(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


# --------------------------------------------------------------------------
# Coins


def _coin_pair(rng: np.random.Generator) -> tuple[str, str, str]:
    """(p, q, kind) of a coin case, as YAML scalars."""
    mode = _choice(rng, ("extreme", "extreme", "random", "near", "equal", "degenerate"))
    if mode == "extreme":
        p, q = _choice(rng, EXTREME), _choice(rng, EXTREME)
    elif mode == "random":
        p = _choice(rng, EXTREME) if rng.random() < 0.5 else round(float(rng.uniform(0.01, 0.99)), 3)
        q = round(float(rng.uniform(0.01, 0.99)), 3)
        if rng.random() < 0.5:
            p, q = q, p
    elif mode == "near":  # q within a relative 1e-9 … 1e-4 of p (0.3 against 0.300000001)
        p = _choice(rng, (0.3, 0.5, 0.001, 1e-6, 0.9, round(float(rng.uniform(0.05, 0.95)), 2)))
        q = p * (1 + _choice(rng, (1, -1)) * float(_choice(rng, (1e-9, 1e-7, 1e-4))))
        q = float(f"{q:.12g}")
    elif mode == "equal":
        p = q = _choice(rng, (*EXTREME, round(float(rng.uniform(0.01, 0.99)), 3)))
    else:  # p = 0 or 1: every flip alike, KL finite as long as q is inside (0, 1)
        p = _choice(rng, (0.0, 1.0))
        q = _choice(rng, (0.5, 0.001, 0.999, 0.2))
    return _num(p), _num(q), f"coin {mode}"


# --------------------------------------------------------------------------
# Categorical cases


def _explicit(rng: np.random.Generator, k: int, zeros: np.ndarray | None, tiny: bool) -> list[float]:
    """K probabilities from a Dirichlet draw, with tiny entries and zeros where asked.

    Written in full precision (the largest entry absorbs the remainder, so
    they sum to 1 within rounding) or, half the time, to 4–6 significant
    digits, which the loader accepts within 1e-5 and renormalises.
    """
    w = rng.dirichlet(np.full(k, _choice(rng, (0.3, 1.0, 3.0))))
    if tiny:
        picks = rng.choice(k, size=max(1, k // 5), replace=False)
        w[picks] = [_choice(rng, TINY) for _ in picks]
    if zeros is not None:
        w[zeros] = 0.0
    if rng.random() < 0.5:
        digits = int(rng.integers(4, 7))
        w = w / w.sum()
        out = [float(f"{v:.{digits}g}") for v in w]
        if abs(math.fsum(out) - 1) <= 1e-5 and (zeros is None or all(out[i] == 0 for i in zeros)):
            return out
    w = w / w.sum()
    out = [float(v) for v in w]
    top = int(np.argmax(w))
    out[top] = 0.0
    out[top] = 1.0 - math.fsum(out)
    return out


def _generator(rng: np.random.Generator, k: int) -> str:
    kind = _choice(rng, ("uniform", "zipf", "dirichlet"))
    if kind == "uniform":
        return f"{{uniform: {k}}}"
    if kind == "zipf":
        s = _choice(rng, (0.0, 0.5, 1.0, 1.07, 2.0, 3.5))
        return f"{{zipf: {{k: {k}, s: {_num(s)}}}}}"
    alpha = _choice(rng, (0.1, 0.3, 1.0, 3.0))
    return f"{{dirichlet: {{k: {k}, alpha: {_num(alpha)}, seed: {int(rng.integers(1000))}}}}}"


def _categorical_pair(rng: np.random.Generator) -> tuple[str, str, str, int]:
    """(p, q, kind, K) of a categorical case; q > 0 wherever p > 0."""
    # K log-uniform on [3, 3000], weighted towards small K
    k = round(math.exp(rng.uniform(math.log(3), math.log(MAX_K)) * rng.uniform(0.4, 1.0) ** 0.5))
    k = min(max(k, 3), MAX_K)
    mode = _choice(rng, ("explicit", "explicit", "generators", "mixed", "near", "equal"))
    if k > EXPLICIT_MAX_K and mode in ("explicit", "near"):
        mode = "generators"
    if mode == "explicit":
        zeros = (
            rng.choice(k, size=int(rng.integers(0, k // 2)), replace=False) if rng.random() < 0.5 else None
        )
        p = _explicit(rng, k, zeros, tiny=rng.random() < 0.5)
        q_zeros = None
        if zeros is not None and zeros.size and rng.random() < 0.5:  # q may lack what p lacks
            q_zeros = zeros[: max(1, zeros.size // 2)]
        q = _explicit(rng, k, q_zeros, tiny=rng.random() < 0.5)
        return _flow(p), _flow(q), "categorical explicit", k
    if mode == "generators":
        return _generator(rng, k), _generator(rng, k), "categorical generators", k
    if mode == "mixed":  # an explicit list (small K) or a generator, against a generator
        if k > EXPLICIT_MAX_K:
            return _generator(rng, k), _generator(rng, k), "categorical mixed", k
        if rng.random() < 0.3:  # the explicit list as q: no zeros
            q = _flow(_explicit(rng, k, None, tiny=rng.random() < 0.5))
            return _generator(rng, k), q, "categorical mixed", k
        zeros = rng.choice(k, size=int(rng.integers(1, max(2, k // 2))), replace=False)
        p = _flow(_explicit(rng, k, zeros, tiny=rng.random() < 0.5))
        return p, _generator(rng, k), "categorical mixed", k
    if mode == "near":  # q = p moved by a relative 1e-9 … 1e-5 on each entry, renormalised
        p = _explicit(rng, k, None, tiny=rng.random() < 0.3)
        eps = float(_choice(rng, (1e-9, 1e-7, 1e-5)))
        q = np.array(p) * (1 + eps * rng.choice((-1.0, 1.0), size=k))
        q = [float(v) for v in q / math.fsum(q)]
        return _flow(p), _flow(q), "categorical near-equal", k
    # p = q
    text = (
        _flow(_explicit(rng, k, None, tiny=rng.random() < 0.5)) if k <= EXPLICIT_MAX_K else _generator(rng, k)
    )
    return text, text, "categorical equal", k


def _distinct_values(text: str) -> int:
    """Rough count of p's distinct values (what the exact plug-in bias costs)."""
    if text.startswith("{uniform"):
        return 1
    if text.startswith("{"):
        return int(text.split("k: ")[1].split(",")[0].split("}")[0])
    return text.count(",") + 1


# --------------------------------------------------------------------------
# Checkpoints


def _grid(rng: np.random.Generator, n_max: int, points: int) -> str:
    """An n grid with ``points`` sizes up to about ``n_max``: a mapping or a list."""
    lo = 1 if rng.random() < 0.7 else int(_choice(rng, (2, 3, 10)))
    hi = max(lo + points - 1, round(10 ** rng.uniform(math.log10(max(lo, 1)), math.log10(n_max))))
    if rng.random() < 0.5:
        return f"{{min: {lo}, max: {hi}, points: {points}}}"
    sizes = {lo, hi}
    while len(sizes) < points:
        sizes.add(round(10 ** rng.uniform(math.log10(lo), math.log10(hi))))
    return "[" + ", ".join(str(v) for v in sorted(sizes)) + "]"


# --------------------------------------------------------------------------
# Whole configs


def _convergence(rng: np.random.Generator, name: str) -> str:
    per_sample = rng.random() < 0.2
    replicates = int(_choice(rng, (200, 300, 500, 1000, 2000)))
    points = int(rng.integers(3, 7))
    estimators = ["llr", "cross_entropy", "entropy", "plugin_kl"]
    if rng.random() < 0.25:  # a random non-empty subset of the four
        keep = rng.random(4) < 0.6
        keep[int(rng.integers(4))] = True
        estimators = [e for e, k in zip(estimators, keep, strict=True) if k]
    if rng.random() < 0.35:
        estimators.append("p_wrong")
    if rng.random() < 0.3:
        estimators.append("p_wrong_tilted")
    cases, kinds, work = [], [], []
    for i in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:
            p, q, kind = _coin_pair(rng)
            work.append(1)
        else:
            p, q, kind, k = _categorical_pair(rng)
            work.append(_distinct_values(p) + k / 20)
        cases.append(f"  - name: c{i}\n    p: {p}\n    q: {q}\n")
        kinds.append(kind)
    # keep each categorical case's work within budget
    heaviest = max(work)
    while heaviest * replicates * points > CATEGORICAL_WORK and (replicates > 200 or points > 3):
        if replicates > 200:
            replicates = max(200, replicates // 2)
        else:
            points -= 1
    save = _choice(rng, ("true", "false"))
    # replicates.csv.gz costs ~15 µs a row to write: keep it to ~12,000 rows
    while save == "true" and len(cases) * replicates * points > 12_000 and replicates > 200:
        replicates = max(200, replicates // 2)
    n_max = PER_SAMPLE_MAX_N if per_sample else (10**6 if heaviest < 100 else 10**4)
    lines = [
        f"name: {name}",
        f'description: "battery: {"; ".join(kinds)}"',
        f"seed: {int(rng.integers(2**31))}",
        f"replicates: {replicates}",
        f"units: {_choice(rng, ('nats', 'bits'))}",
        f"n: {_grid(rng, n_max, points)}",
        f"estimators: [{', '.join(estimators)}]",
        f"sampler: {'per-sample' if per_sample else 'counts'}",
        f"save_replicates: {save}",
        "cases:",
    ]
    return "\n".join(lines) + "\n" + "".join(cases)


def _fit(rng: np.random.Generator, name: str) -> str:
    inputs = int(rng.integers(1, 4))
    classes = int(rng.integers(2, 5))
    head = [
        f"name: {name}",
        'description: "battery: fit"',
        "kind: fit",
        f"seed: {int(rng.integers(2**31))}",
        "replicates: 200",
        f"units: {_choice(rng, ('nats', 'bits'))}",
    ]
    if rng.random() < 0.3:
        head.append("estimators: [" + ", ".join(_fit_estimators(rng)) + "]")
    if rng.random() < 0.15:
        head.append("sampler: per-sample")
    weights = rng.random() < 0.5  # softmax weights (else a table)
    features = rng.random() < 0.6 or (weights and inputs > 1)  # weights without features: one input
    nf = int(rng.integers(1, 3)) if features else 0
    body = []
    if rng.random() < 0.6:
        probs = _explicit(rng, inputs, None, tiny=False) if inputs > 1 else [1.0]
        probs = [max(v, 0.01) for v in probs]
        probs = [v / math.fsum(probs) for v in probs]
        body.append(f"  probs: {_flow(probs)}")
    if features:
        rows = [[round(float(v), 2) for v in rng.normal(size=nf)] for _ in range(inputs)]
        body.append("  features: [" + ", ".join(_flow(r) for r in rows) + "]")
    body = ["inputs:", *body] if body else []
    body.append("truth:")
    if weights:  # one row per class: (intercept, features…)
        body.append("  weights:")
        for _ in range(classes):
            body.append(f"    - {_flow([round(float(v), 2) for v in rng.normal(0, 1.5, size=1 + nf)])}")
    else:  # a table, one probability row per input, sometimes with zeros
        body.append("  table:")
        for _ in range(inputs):
            zeros = rng.choice(classes, size=1, replace=False) if rng.random() < 0.2 else None
            body.append(f"    - {_flow(_explicit(rng, classes, zeros, tiny=rng.random() < 0.2))}")
    # Maximum likelihood (smoothing 0) only where every cell is seen at the smallest n
    # (else the fit is at infinity: Newton runs to its step limit and reports inf,
    # which costs seconds and tests nothing).
    probe = parse_config("\n".join([*head, "n: [10]", *body, "cases: [{name: m, model: saturated}]"]))
    joint = probe.truth.joint
    smoothing, lowest = float(_choice(rng, (0.1, 0.5, 1.0, 2.0))), 10
    if rng.random() < 0.3 and joint.min() > 0 and 30 / joint.min() <= 3000:
        smoothing, lowest = 0.0, math.ceil(30 / joint.min())
    points = int(rng.integers(3, 5))
    top = max(4.3, math.log10(lowest) + 1)
    grid = {lowest}
    while len(grid) < points:
        grid.add(round(10 ** rng.uniform(math.log10(lowest), top)))
    grid = sorted(grid)
    lines = [*head, f"n: [{', '.join(map(str, grid))}]", f"smoothing: {_num(smoothing)}", *body]
    if rng.random() < 0.5:
        lines.append(f"trajectory: {{replicate: {int(rng.integers(0, 200))}, n: {_choice(rng, grid)}}}")
    models = [m for m in ("saturated", "linear", "constant", "ordinal") if rng.random() < 0.4] or [
        "saturated"
    ]
    lines.append("cases:")
    lines += [f"  - {{name: {m}, model: {m}}}" for m in models]
    return "\n".join(lines) + "\n"


def _fit_estimators(rng: np.random.Generator) -> list[str]:
    names = ["kl_fitted", "train_cross_entropy", "test_cross_entropy"]
    keep = [e for e in names if rng.random() < 0.6]
    return keep or [_choice(rng, names)]


def random_config(rng: np.random.Generator, index: int) -> str:
    """One random valid small experiment as YAML text, named ``battery-<index>``.

    A convergence experiment (1–3 coin or categorical cases) or, one time in
    eight, a ``kind: fit`` experiment.  The text is validated before it is
    returned (an AssertionError names the config otherwise).
    """
    return random_experiment(rng, index)[0]


def random_experiment(rng: np.random.Generator, index: int) -> tuple[str, Experiment | FitExperiment]:
    """:func:`random_config`'s text and the experiment it validates into."""
    name = f"battery-{index:03d}"
    text = _fit(rng, name) if rng.random() < 1 / 8 else _convergence(rng, name)
    try:
        experiment = parse_config(text, source=name)
    except Exception as exc:  # the generator must only make valid configs
        raise AssertionError(f"generated config {name} is invalid:\n{text}\n{exc}") from exc
    return text, experiment


def config_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of config ``index`` of the battery with ``seed``."""
    return np.random.default_rng((seed, index))


# --------------------------------------------------------------------------
# Running


class Crash:
    """Stands in for a :class:`~sim.check.CheckReport` when running or checking raised.

    A valid config that cannot be run is a failure too; it has ``passed``
    False, no failing rows, and its traceback as ``table()``.
    """

    passed = False

    def __init__(self, error: BaseException):
        self.error = error
        self.traceback = "".join(traceback.format_exception(error))
        self.failures = pd.DataFrame(columns=COLUMNS)
        self.z_crit = math.nan

    def headline(self) -> str:
        return f"crashed: {type(self.error).__name__}: {self.error}"

    def table(self) -> str:
        return self.traceback


def run_one(index: int, seed: int, out_dir: str | Path) -> tuple[str, CheckReport | Crash, float]:
    """Generate, run (without figures) and check config ``index``: (yaml, report, seconds)."""
    text = random_config(config_rng(seed, index), index)
    t0 = time.perf_counter()
    try:
        folder = run_experiment(
            parse_config(text, source=f"battery-{index:03d}"),
            out_dir,
            command=["tests.battery", f"--seed={seed}", f"--only={index}"],
            execution=Execution(workers=1, quiet=True),
        ).path
        report = check_results(folder)
    except Exception as exc:  # a valid config must run: report it as a failing folder
        report = Crash(exc)
    return text, report, time.perf_counter() - t0


def run_battery(
    count: int,
    seed: int,
    out_dir: str | Path,
    *,
    indices: Sequence[int] | None = None,
    verbose: bool = False,
    workers: int = 1,
) -> list[tuple[int, str, CheckReport | Crash]]:
    """Run and check configs 0 … count − 1 (or ``indices``) into ``out_dir``.

    Returns one ``(index, yaml, report)`` per config; each results folder is
    ``out_dir/battery-<index>``.  ``report`` is the folder's
    :class:`~sim.check.CheckReport`, or a :class:`Crash` if the run or the
    check raised.  With ``verbose``, prints one line per config.  With
    ``workers`` > 1 the configs run in that many processes (each config's
    draws depend only on (seed, index), so the outcome is the same).
    """
    chosen = list(range(count) if indices is None else indices)
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(run_one, chosen, [seed] * len(chosen), [out_dir] * len(chosen)))
    else:
        done = None
    out = []
    for position, index in enumerate(chosen):
        text, report, seconds = done[position] if done is not None else run_one(index, seed, out_dir)
        out.append((index, text, report))
        if verbose:
            kinds = text.split("\n")[1].removeprefix('description: "battery: ').rstrip('"')
            verdict = (
                "ok"
                if report.passed
                else ("CRASH" if isinstance(report, Crash) else f"FAIL ({len(report.failures)} rows)")
            )
            print(f"{index:4d}  {seconds:5.2f} s  {verdict:16s} {kinds}", flush=True)
    return out


def failure_rows(report: CheckReport) -> str:
    """The failing tests of a report, one per line (as `sim check` prints them)."""
    if not hasattr(report, "failure_lines"):
        return ""
    return "\n".join(report.failure_lines())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.battery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="number of configs (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="the battery's seed (default 1)")
    parser.add_argument("--out", required=True, help="folder for the results folders")
    parser.add_argument("--only", type=int, action="append", help="run only this index (repeatable)")
    parser.add_argument("--show", action="store_true", help="print each config's YAML")
    parser.add_argument("--workers", type=int, default=1, help="processes to run configs in (default 1)")
    args = parser.parse_args(argv)
    t0, cpu0 = time.perf_counter(), time.process_time()
    results = []
    if args.workers > 1 and not args.show:
        results = run_battery(
            0, args.seed, args.out, indices=args.only or range(args.count), verbose=True, workers=args.workers
        )
    else:
        for index in args.only or range(args.count):
            if args.show:
                print(random_config(config_rng(args.seed, index), index))
            results += run_battery(0, args.seed, args.out, indices=[index], verbose=True)
    total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    failed = [(i, text, rep) for i, text, rep in results if not rep.passed]
    for i, text, rep in failed:
        print(f"\n=== battery-{i:03d} (seed {args.seed}) fails: {rep.headline()}\n{text}")
        print(rep.table())
    if failed:
        print("\nFailing rows:")
        for i, _, rep in failed:
            print(f"battery-{i:03d}: {rep.headline()}" if isinstance(rep, Crash) else f"battery-{i:03d}:")
            if not isinstance(rep, Crash):
                print(failure_rows(rep))
    print(
        f"\n{len(failed)} of {len(results)} folders fail (seed {args.seed}; "
        f"α = 0.001 per folder allows at most 1 in 200); {total:.1f} s in all ({cpu:.1f} s of CPU)"
    )
    return 1 if len(failed) > max(1, len(results) // 200) else 0


if __name__ == "__main__":
    sys.exit(main())
