"""Benchmarks of sim, measured in one process and one run; prints a table and writes a CSV.

Usage::

    python benchmarks/benchmark.py                # about five minutes on 2 cores
    python benchmarks/benchmark.py --quick        # smaller sizes, under a minute
    python benchmarks/benchmark.py --csv out.csv

Every comparison is a ratio of two timings taken here, one after the other, so
the machine's speed cancels out.  Targets (issue 7):

- the marginal cost of a replicate is at most 3× numpy drawing its increments;
- N_max = 10^12 costs at most 1.2× what N_max = 10^3 costs;
- a 50,000-token Zipf run is at least 2× faster than plain Multinomial increments;
- two local workers give at least 1.7× on a sampling-bound run;
- 10^7 coin replicates × 10 checkpoints × 4 estimators stay under 1 GiB (streaming);
- ``sim --help`` answers in under 0.3 s.

and (issue 15) ``replicates.csv.gz`` written at least 8× faster than pandas'
``to_csv`` + gzip level 6, the figures of ``results/coin`` in at most 1.5 s,
K = 50,000 at most 1.5× K = 500 at equal draws, and ``sim run`` of the shipped
configs in at most 15 s and 300 MB.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.allocator import keep_freed_memory  # noqa: E402
from sim.config import ESTIMATORS, parse_config  # noqa: E402
from sim.pipelines.convergence import run_task  # noqa: E402
from sim.results import write_csv  # noqa: E402
from sim.runner import Execution, run_experiment  # noqa: E402
from sim.tasks import block_size, plan  # noqa: E402


def best(fn, repeat: int = 3) -> float:
    """Best of ``repeat`` wall-clock timings of ``fn()`` (seconds)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def coin(replicates: int, n_max: int, points: int = 10, save: bool = True) -> str:
    return (
        f"name: bench\nseed: 1\nreplicates: {replicates}\nsave_replicates: {str(save).lower()}\n"
        f"n: {{min: 1, max: {n_max}, points: {points}}}\ncases: [{{name: coin, p: 0.7, q: 0.5}}]\n"
    )


def simulate_all(experiment) -> None:
    for task in plan(experiment):
        run_task(experiment, task)


def letters_config(replicates: int, n_max: int):
    """The shipped 27-symbol letters chain (configs/markov.yaml) alone, to ``n_max`` tokens."""
    import yaml

    shipped = yaml.safe_load((ROOT / "configs" / "markov.yaml").read_text(encoding="utf-8"))
    case = next(c for c in shipped["cases"] if c["name"] == "letters")
    text = yaml.safe_dump(
        {
            "name": "m",
            "seed": 1,
            "replicates": replicates,
            "n": [2, n_max],
            "estimators": ["llr"],
            "cases": [case],
        }
    )
    return parse_config(text)


def plain_markov_loop(transition: np.ndarray, replicates: int, steps: int) -> None:
    """A plain numpy loop over steps: every replicate's next state by inverse CDF of its row (K-wide)."""
    rng = np.random.default_rng(0)
    cdf = np.cumsum(transition, axis=1)
    state = np.zeros(replicates, dtype=np.int64)
    total = np.zeros(replicates)
    log_p = np.log(np.where(transition > 0, transition, 1.0))
    for _ in range(steps):
        u = rng.random(replicates)
        nxt = np.minimum((u[:, None] >= cdf[state]).sum(axis=1), transition.shape[0] - 1)
        total += log_p[state, nxt]
        state = nxt


def markov_rows(record, quick: bool) -> None:
    """Issue 18: transitions per second of a Markov case (K = 27), and against a plain numpy loop."""
    replicates, n_max = (1000, 2000) if quick else (2000, 20_000)
    experiment = letters_config(replicates, n_max)
    t_ours = best(lambda: simulate_all(experiment), 3)
    rate = replicates * (n_max - 1) / t_ours
    record(
        "Markov: transitions per second",
        rate,
        "/s",
        "≥ 2e7",
        rate >= 2e7,
        f"K = 27 (the shipped letters chain), {replicates:,} replicates to N = {n_max:,}, one core",
    )
    transition = experiment.cases[0].pair.p.transition
    t_plain = best(lambda: plain_markov_loop(transition, replicates, n_max - 1), 3)
    record(
        "Markov: plain numpy loop / ours",
        t_plain / t_ours,
        "×",
        "",
        None,
        "the same paths' cost by inverse CDF of each row, one step at a time",
    )


def raw_draws(experiment) -> None:
    """numpy drawing the same Binomial increments, and nothing else."""
    rng = np.random.default_rng(0)
    increments = np.diff([0, *experiment.checkpoints])
    size = block_size(2)
    for _ in range(-(-experiment.replicates // size)):
        for m in increments:
            rng.binomial(int(m), 0.7, size=size)


def per_sample_numpy(replicates: int, checkpoints) -> None:
    """The straightforward way: draw every flip, accumulate the log-likelihood ratio."""
    rng = np.random.default_rng(0)
    lh, lt = np.log(0.7 / 0.5), np.log(0.3 / 0.5)
    n_max = checkpoints[-1]
    idx = np.asarray(checkpoints) - 1
    chunk = max(1, 2_000_000 // n_max)
    for start in range(0, replicates, chunk):
        rows = min(chunk, replicates - start)
        heads = rng.random((rows, n_max)) < 0.7
        llr = np.cumsum(np.where(heads, lh, lt), axis=1)[:, idx] / np.asarray(checkpoints)
        del llr


def _draw_count(count: int) -> None:
    rng = np.random.default_rng(count)
    for _ in range(count):
        rng.binomial(10**9, 0.7, size=8192)


def draws_speedup(workers: int, count: int = 3000) -> float:
    """Wall-clock speed-up of ``workers`` processes over one at numpy's draws alone (best of 5)."""
    from concurrent.futures import ProcessPoolExecutor

    serial, parallel = [], []
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_draw_count, [10] * workers))  # start the workers first
        for _ in range(5):
            t0 = time.perf_counter()
            _draw_count(count * workers)
            serial.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            list(pool.map(_draw_count, [count] * workers))
            parallel.append(time.perf_counter() - t0)
    return min(serial) / min(parallel)


def peak_memory_kb(config: str, workers: int) -> tuple[int, float]:
    """Peak RSS (VmHWM, kB) and wall time of a streaming run in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mem.yaml"
        path.write_text(config)
        code = (
            "import re, sys; from sim.cli import main\n"
            "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
            "finally:\n    print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        )
        t0 = time.perf_counter()
        args = [sys.executable, "-c", code, "run", str(path), "--out", tmp, "--no-figures", "--quiet"]
        args += ["--workers", str(workers)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
        return int(out.strip().splitlines()[-1]), time.perf_counter() - t0


def replicates_table(rows: int):
    """A coin's ``replicates.csv.gz`` table of ``rows`` rows (case, replicate, n and 4 estimators)."""
    import pandas as pd

    rng = np.random.default_rng(1)
    columns = {"case": "coin", "replicate": np.arange(rows) // 20, "n": np.arange(rows) % 20 + 1}
    return pd.DataFrame(columns | {e: rng.normal(size=rows) for e in ESTIMATORS})


def pandas_gzip(frame, path: Path) -> None:
    """The baseline: pandas' ``to_csv`` of the whole table, then gzip level 6."""
    with (
        open(path, "wb") as fh,
        gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=6) as gz,
    ):
        gz.write(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def figures_of(folder: Path, into: Path) -> None:
    """Draw every figure of a results folder (tables read from disk, as ``sim plot`` does)."""
    from sim.figures import draw_figures

    draw_figures(folder, into=into)


def _tree_memory_kb(root: int) -> tuple[int, int]:
    """Memory (kB) of ``root`` and its descendants now.

    Returns their summed PSS (shared pages split among their sharers) and
    the largest of their own peak RSS (``VmHWM``, which starts afresh at
    exec: the pages of a large parent shared before the exec are not counted,
    as they are by ``ru_maxrss``).
    """
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    total, largest = 0, 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
                total += int(re.search(r"^Pss:\s+(\d+)", fh.read(), re.M).group(1))
            with open(f"/proc/{pid}/status", encoding="ascii") as fh:
                largest = max(largest, int(re.search(r"^VmHWM:\s+(\d+)", fh.read(), re.M).group(1)))
        except (OSError, AttributeError, ValueError):
            continue
    return total, largest


class Quickstart(NamedTuple):
    """One ``sim run`` of the shipped configs: wall time and two measures of its memory."""

    seconds: float
    #: The peak of the process tree's summed PSS (kB, sampled every 20 ms): what the machine holds.
    pss_kb: int
    #: The largest peak RSS of any one process of the tree (kB, VmHWM, sampled every 20 ms).
    max_rss_kb: int


def quickstart(*extra: str) -> Quickstart:
    """``sim run`` of every shipped config into a temporary folder, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        args = [sys.executable, "-m", "sim", "run", "--out", tmp, "--quiet", *extra]
        t0 = time.perf_counter()
        child = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        pss = largest = 0
        while child.poll() is None:
            now = _tree_memory_kb(child.pid)
            pss, largest = max(pss, now[0]), max(largest, now[1])
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        if child.returncode != 0:
            raise RuntimeError(f"sim run failed with exit status {child.returncode}")
        return Quickstart(seconds, pss, largest)


def help_seconds() -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return best(
        lambda: subprocess.run(
            [sys.executable, "-m", "sim", "--help"], capture_output=True, env=env, check=True
        ),
        5,
    )


def main() -> None:
    keep_freed_memory()  # as `sim run` does (see sim.allocator)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "results.csv"))
    args = parser.parse_args()
    q = args.quick
    rows: list[dict] = []

    def record(name: str, value: float, unit: str, target: str, ok: bool | None, detail: str) -> None:
        rows.append(
            {"benchmark": name, "value": value, "unit": unit, "target": target, "met": ok, "detail": detail}
        )
        flag = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<44} {value:>10.3g} {unit:<10} {target:<10} {flag:<4} {detail}", flush=True)

    print(f"{'benchmark':<44} {'value':>10} {'unit':<10} {'target':<10} met")

    # (a) against a straightforward per-sample numpy implementation
    r_a, ckpts = (500, [10, 100, 1000, 10000]) if q else (2000, [10, 100, 1000, 10000, 20000])
    e = parse_config(
        f"name: a\nseed: 1\nreplicates: {r_a}\nn: {ckpts}\ncases: [{{name: coin, p: 0.7, q: 0.5}}]\n"
    )
    ours, naive = best(lambda: simulate_all(e)), best(lambda: per_sample_numpy(r_a, ckpts), 1)
    record(
        "speed-up over per-sample numpy",
        naive / ours,
        "×",
        "",
        None,
        f"{r_a} replicates to N = {ckpts[-1]:,}",
    )

    # (b) marginal cost of a replicate against numpy's draws alone
    r1, r2 = (50_000, 200_000) if q else (200_000, 1_000_000)
    for save in (True, False):
        e1, e2 = parse_config(coin(r1, 10**9, save=save)), parse_config(coin(r2, 10**9, save=save))
        t1, t2 = best(lambda e1=e1: simulate_all(e1), 5), best(lambda e2=e2: simulate_all(e2), 5)
        d1, d2 = best(lambda e1=e1: raw_draws(e1), 5), best(lambda e2=e2: raw_draws(e2), 5)
        ratio = (t2 - t1) / (d2 - d1)
        mode = "replicates kept" if save else "streaming"
        record(
            f"marginal cost / raw draws ({mode})",
            ratio,
            "×",
            "≤ 3",
            ratio <= 3,
            "coin, 10 checkpoints, 4 estimators",
        )

    # (c) scaling in N, replicates, K and workers
    r_c = 50_000 if q else 200_000
    small, huge = parse_config(coin(r_c, 10**3)), parse_config(coin(r_c, 10**12))
    t_small, t_huge = best(lambda: simulate_all(small)), best(lambda: simulate_all(huge))
    record(
        "time(N_max = 1e12) / time(N_max = 1e3)",
        t_huge / t_small,
        "×",
        "≤ 1.2",
        t_huge / t_small <= 1.2,
        f"{r_c:,} replicates",
    )

    def gaussian(n_max: int):
        return parse_config(
            f"name: g\nseed: 1\nreplicates: {r_c}\nn: {{min: 2, max: {n_max}, points: 10}}\n"
            "cases: [{name: g, p: {normal: {mean: 0, sd: 1}}, q: {normal: {mean: 1, sd: 2}}}]\n"
        )

    g_small, g_huge = gaussian(10**3), gaussian(10**12)
    t_g = best(lambda: simulate_all(g_huge)) / best(lambda: simulate_all(g_small))
    record(
        "Gaussian: time(N_max = 1e12) / time(1e3)",
        t_g,
        "×",
        "≤ 1.2",
        t_g <= 1.2,
        f"{r_c:,} replicates, 10 checkpoints, 4 estimators (sufficient statistics)",
    )
    markov_rows(record, q)
    more = parse_config(coin(4 * r_c, 10**3))
    t_more = best(lambda: simulate_all(more), 3)
    record("time(4× replicates) / time(1×)", t_more / t_small, "×", "≈ 4", None, "linear in replicates")
    r_small = 500 if q else 2000

    def zipf(k: int):
        return parse_config(
            f"name: k\nseed: 1\nreplicates: {r_small}\nn: {{min: 10, max: 1000, points: 5}}\n"
            f"cases: [{{name: z, p: {{zipf: {{k: {k}, s: 1.07}}}}, q: {{uniform: {k}}}}}]\n"
        )

    k_small, k_large = zipf(500), zipf(50_000)
    t_k = best(lambda: simulate_all(k_large), 3) / best(lambda: simulate_all(k_small), 3)
    record(
        "time(K = 50,000) / time(K = 500)",
        t_k,
        "×",
        "≤ 1.5",
        t_k <= 1.5,
        f"Zipf, {r_small:,} replicates, N ≤ 1000: increments below K",
    )
    r_k = 20 if q else 100
    vocab = parse_config(
        f"name: v\nseed: 1\nreplicates: {r_k}\nn: {{min: 10, max: 1000000, points: 11}}\n"
        "cases: [{name: z, p: {zipf: {k: 50000, s: 1.07}}, q: {uniform: 50000}}]\n"
    )
    import sim.blocks as blocks

    real = blocks.count_paths

    def with_sampler(sampler) -> float:
        """Best of three runs of the vocabulary with ``sampler`` in place of count_paths."""
        blocks.count_paths = sampler
        try:
            return best(lambda: simulate_all(vocab), 3)
        finally:
            blocks.count_paths = real

    t_ours = with_sampler(real)
    t_plain = with_sampler(lambda *a, **k: real(*a, **{**k, "method": "multinomial"}))
    record(
        "Zipf K=50,000: plain multinomial / ours",
        t_plain / t_ours,
        "×",
        "≥ 2",
        t_plain / t_ours >= 2,
        f"{r_k} replicates, 11 checkpoints",
    )
    # Over a heavy-tailed law numpy's multinomial reaches the last categories
    # for small increments too; in random order it certainly does (the
    # permuted counts no longer match the estimators: timing only).
    shuffled = np.random.default_rng(0).permutation(50_000)
    t_shuffled = with_sampler(
        lambda probs, *a, **k: real(np.asarray(probs)[shuffled], *a, **{**k, "method": "multinomial"})
    )
    record(
        "Zipf K=50,000: shuffled multinomial / ours",
        t_shuffled / t_ours,
        "×",
        "",
        None,
        "categories in random order",
    )
    r_w = 1_000_000 if q else 3_000_000
    cfg = coin(r_w, 10**9, save=False)
    timings = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(5):  # interleaved, best of five: a shared VM's neighbours come and go
            for w in (1, 2):
                t0 = time.perf_counter()
                run_experiment(
                    parse_config(cfg), Path(tmp) / str(w), execution=Execution(workers=w, quiet=True)
                )
                timings[w].append(time.perf_counter() - t0)
    t1, t2 = min(timings[1]), min(timings[2])
    record(
        "speed-up of 2 workers over 1",
        t1 / t2,
        "×",
        "≥ 1.7",
        t1 / t2 >= 1.7,
        f"{r_w:,} replicates, streaming",
    )
    ceiling = draws_speedup(2)
    record(
        "numpy's own draws: 2 processes over 1",
        ceiling,
        "×",
        "",
        None,
        "this machine's ceiling for the row above",
    )

    # (d) peak memory, and start-up
    r_m = 2_000_000 if q else 10_000_000
    kb, seconds = peak_memory_kb(coin(r_m, 10**9, save=False), workers=2)
    record(
        "peak RSS, streaming coin run",
        kb / 1024,
        "MiB",
        "< 1024",
        kb < 1024 * 1024,
        f"{r_m:,} replicates × 10 × 4, 2 workers, {seconds:.0f} s",
    )
    h = help_seconds()
    record("sim --help", h, "s", "< 0.3", h < 0.3, "best of 5, fresh process")

    # (e) time to results (issue 15): writes and figures
    r_t = 60_000 if q else 300_000
    table = replicates_table(r_t)
    with tempfile.TemporaryDirectory() as tmp:
        t_pandas = best(lambda: pandas_gzip(table, Path(tmp) / "p.csv.gz"), 3)
        t_ours = best(lambda: write_csv(table, Path(tmp) / "o.csv.gz"), 3)
        texts = [gzip.decompress((Path(tmp) / name).read_bytes()) for name in ("p.csv.gz", "o.csv.gz")]
        same = texts[0] == texts[1]
        sizes = [(Path(tmp) / name).stat().st_size for name in ("p.csv.gz", "o.csv.gz")]
    record(
        "replicates write: pandas + gzip 6 / ours",
        t_pandas / t_ours,
        "×",
        "≥ 8",
        t_pandas / t_ours >= 8,
        f"{r_t:,} rows × 4 floats, {'the same text' if same else 'OTHER TEXT'}, "
        f"file {sizes[1] / sizes[0] - 1:+.1%} in size",
    )
    with tempfile.TemporaryDirectory() as tmp:
        t_fig = best(lambda: figures_of(ROOT / "results" / "coin", Path(tmp)), 3)
    record("figures of results/coin", t_fig, "s", "≤ 1.5", t_fig <= 1.5, "5 figures, 200 dpi, 2 cores")

    runs = [(quickstart(), quickstart("--workers", "1")) for _ in range(1 if q else 3)]
    shipped = len(list((ROOT / "configs").glob("*.yaml")))
    together, in_turn = min(runs, key=lambda r: r[0].seconds)
    record(
        "sim run of the shipped configs",
        together.seconds,
        "s",
        "≤ 15",
        together.seconds <= 15,
        f"{shipped} experiments, figures and checks; in turn (--workers 1): {in_turn.seconds:.1f} s",
    )
    for name, kb, how in (
        ("peak memory of that run", together.pss_kb, "PSS summed over its processes, sampled every 20 ms"),
        ("its largest process", together.max_rss_kb, "peak RSS (VmHWM) of its largest process"),
    ):
        record(name, kb / 1024, "MiB", "≤ 300", kb <= 300 * 1024, how)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    print(f"\nmachine: {machine}")
    print("met: yes/NO against the target; no target: for information")
    with open(args.csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0], "machine"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "machine": machine})
    print(f"written: {args.csv}")


if __name__ == "__main__":
    main()
