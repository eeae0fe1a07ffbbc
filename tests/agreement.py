"""What "the same results on another CPU" means, as a test can check it.

numpy evaluates log and exp with different SIMD kernels on different CPUs
(AVX-512 or not, arm64) and libm and BLAS differ too, so the last bits of a
run's numbers depend on the machine.  The README promises, for the same
numpy version on another machine:

* ``config.yaml``, every text and integer value, and every random draw
  identical;
* every other number within :data:`REL` of its scale: of the number itself
  (relative) in ``analytic.csv`` and for probabilities (``p_wrong``,
  ``p_wrong_tilted``, the coverage columns); elsewhere (llr, entropies,
  cross-entropies, KL estimates and their summaries, a fit's trajectory) of
  the largest magnitude the same estimator takes in the same case, because
  such a number is a sum of terms of that size (an llr near 0 is a
  difference of log-ratios) and carries their rounding; ``z``, a difference
  of means in standard errors, at the scale of its mean in standard errors.

:func:`disagreements` checks that promise between two results folders;
:func:`another_cpu` emulates another machine's libm on this one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from sim import registry
from sim import results as res

PROBABILITIES = [e.name for e in registry.ALL if e.probability]

#: The promised bound: |a − b| ≤ REL · scale.
REL = 1e-10

#: summary.csv columns compared relative to themselves, whatever the estimator.
RELATIVE_COLUMNS = {"coverage95", "coverage95_mcse", "coverage95_exact"}


def _compare(a: np.ndarray, b: np.ndarray, scale: np.ndarray | float, where: str, rel: float) -> list[str]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return [f"{where}: empty in one folder only"]
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(a[~finite & ~np.isnan(a)], b[~finite & ~np.isnan(b)]):
        return [f"{where}: infinite values differ"]
    scale = np.broadcast_to(np.asarray(scale, dtype=float), a.shape)
    gap = np.abs(np.subtract(a, b, where=finite, out=np.zeros(a.shape)))
    bad = np.flatnonzero(gap > rel * scale)
    if bad.size == 0:
        return []
    i = bad[np.argmax(gap[bad] / np.where(scale[bad] > 0, scale[bad], np.inf))]
    return [
        f"{where}: {bad.size} values differ beyond {rel:g} of their scale, e.g. {a[i]!r} against {b[i]!r}"
    ]


def _relative(a, b) -> np.ndarray:
    return np.maximum(np.abs(np.asarray(a, dtype=float)), np.abs(np.asarray(b, dtype=float)))


def _groupwise(frame: pd.DataFrame, other: pd.DataFrame, keys: list[str], columns: list[str]) -> np.ndarray:
    """Per row, the largest |value| of ``columns`` in either frame over the row's group ``keys``."""
    size = np.maximum(frame[columns].abs().max(axis=1), other[columns].abs().max(axis=1))
    size = size.where(np.isfinite(size), np.nan)
    if not keys:
        return np.full(len(frame), float(size.max()) if len(frame) else 0.0)
    return size.groupby([frame[k] for k in keys]).transform("max").fillna(0.0).to_numpy()


def _compare_table(name: str, a: pd.DataFrame, b: pd.DataFrame, rel: float) -> list[str]:
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return [f"{name}: columns or rows differ"]
    floats = [c for c in a.columns if a[c].dtype.kind == "f" or b[c].dtype.kind == "f"]
    problems = [f"{name}: column {c} differs" for c in a.columns if c not in floats and not a[c].equals(b[c])]
    if name == res.ANALYTIC:
        for c in floats:
            problems += _compare(a[c], b[c], _relative(a[c], b[c]), f"{name}:{c}", rel)
    elif name == res.SUMMARY:
        probability = a["estimator"].isin(PROBABILITIES).to_numpy()
        values = [c for c in floats if c != "z" and c not in RELATIVE_COLUMNS]
        group = _groupwise(a, b, ["case", "estimator"], values)
        own_mean = _relative(a["mean"], b["mean"])
        # z = (mean − exact_mean)/(exact_sd/√R): an error in the mean, in standard errors
        with np.errstate(divide="ignore", invalid="ignore"):
            per_se = np.sqrt(a["replicates"].to_numpy(dtype=float)) / a["exact_sd"].to_numpy(dtype=float)
        z_scale = np.where(
            probability, np.maximum(own_mean, _relative(a["exact_mean"], b["exact_mean"])), group
        )
        z_scale = z_scale * np.where(np.isfinite(per_se), per_se, 0.0)
        for c in floats:
            own = _relative(a[c], b[c])
            if c in RELATIVE_COLUMNS:
                scale = own
            elif c == "z":
                scale = z_scale
            else:
                scale = np.where(probability, own, group)
            problems += _compare(a[c], b[c], scale, f"{name}:{c}", rel)
    else:  # replicates, trajectory: one scale per case and column
        keys = ["case"] if "case" in a.columns else []
        for c in floats:
            scale = _relative(a[c], b[c]) if c in PROBABILITIES else _groupwise(a, b, keys, [c])
            problems += _compare(a[c], b[c], scale, f"{name}:{c}", rel)
    return problems


def disagreements(a: Path, b: Path, rel: float = REL) -> list[str]:
    """Every way results folder ``b`` breaks the cross-machine promise against ``a`` (empty if none)."""
    problems = []
    if (a / res.CONFIG).read_bytes() != (b / res.CONFIG).read_bytes():
        problems.append(f"{res.CONFIG} differs")
    for name in (res.ANALYTIC, res.SUMMARY, res.REPLICATES, res.TRAJECTORY):
        if (a / name).exists() != (b / name).exists():
            problems.append(f"{name}: present in one folder only")
        elif (a / name).exists():
            problems += _compare_table(name, res.read_csv(a / name), res.read_csv(b / name), rel)
    return problems


# --------------------------------------------------------------------------
# Another CPU, emulated


def _nudge(x, y):
    """y moved by one ulp up or down, or kept, as a fixed function of the input x.

    Like another CPU's kernel, it gives the same output for the same input
    every time (so equal logs stay equal), but differs from this machine's
    in the last bit for about half of all inputs.
    """
    arr = np.asarray(y)
    if arr.dtype != np.float64:
        return y
    key = np.broadcast_to(np.asarray(x, dtype=np.float64), arr.shape).reshape(-1).view(np.uint64)
    pick = (key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(62)  # 0: up, 1: down, 2 or 3: kept
    flat = arr.reshape(-1)
    step = (pick == 0).view(np.int8) - (pick == 1).view(np.int8)
    step[~np.isfinite(flat) | (flat == 0)] = 0
    # One ulp up or down the float line: on the bits, +1 is away from zero for a
    # positive value and towards zero for a negative one.
    step = np.where(flat < 0, -step, step).astype(np.int64)
    moved = (flat.view(np.int64) + step).view(np.float64).reshape(arr.shape)
    return moved if isinstance(y, np.ndarray) else type(y)(moved[()])


def _ufunc(f):
    def g(x, *args, **kwargs):
        out = kwargs.get("out")
        y = f(x, *args, **kwargs)
        moved = _nudge(x, y)
        if out is not None:
            target = out[0] if isinstance(out, tuple) else out
            target[...] = moved
            return target
        return moved

    return g


def _scalar(f):
    def g(x):
        return float(_nudge(np.float64(x), np.float64(f(x))))

    return g


@contextlib.contextmanager
def another_cpu(monkeypatch) -> Iterator[None]:
    """Within the block, numpy's and math's log, exp, log1p and expm1 round differently.

    Emulates a machine whose libm or SIMD kernels disagree with this one's
    in the last bit (as AVX-512 and AVX2 kernels do) for code that calls
    them through ``np.`` or ``math.``; compiled code (scipy's special
    functions, numpy's random generators) is not affected.
    """
    for name in ("log", "exp", "log1p", "expm1"):
        monkeypatch.setattr(np, name, _ufunc(getattr(np, name)))
        monkeypatch.setattr(math, name, _scalar(getattr(math, name)))
    try:
        yield
    finally:
        monkeypatch.undo()
