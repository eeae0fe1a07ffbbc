"""Validation of ``kind: fit`` experiments: inputs, truth, models and trajectory.

:mod:`sim.fitting` is imported inside the functions that need it, not here:
it imports :mod:`scipy.stats` (through :mod:`sim.exact`), which would add
over a second to ``import sim.config`` and so to ``sim validate``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .cases import Grid, _distribution
from .checker import _Checker, _describe
from .common import _build
from .model import (
    _FIT_CASE_KEYS,
    FIT_MAX_N,
    MAX_CELLS,
    MAX_N,
    MAX_PARAMETERS,
    SUM_TOLERANCE,
    FitCase,
    FitExperiment,
    KeyPath,
)

if TYPE_CHECKING:
    from ..fitting import Truth


class _FitTruth(NamedTuple):
    """The ``inputs`` and ``truth`` keys read, named as the :class:`FitExperiment` fields.

    Attributes
    ----------
    inputs : dict
        ``inputs`` as resolved: ``probs`` filled in, ``features`` if given.
    truth_spec : dict
        ``truth`` as written: its ``table`` or its ``weights``.
    truth : sim.fitting.Truth
        The built data-generating process.
    """

    inputs: dict[str, Any]
    truth_spec: dict[str, Any]
    truth: Truth


class _Conditional(NamedTuple):
    """p(y|x) as read from ``truth``: one row per input, and the key as written."""

    table: np.ndarray
    written: dict[str, Any]


def _fit_experiment(
    top: dict,
    checker: _Checker,
    common: dict[str, Any],
    grid: Grid | None,
    estimators: tuple[str, ...] | None,
) -> FitExperiment | None:
    """Read what a fit experiment adds to the common keys, and build it."""
    if grid is not None and grid.checkpoints[-1] > FIT_MAX_N:
        checker.error(
            ("n",),
            f"a fit experiment goes up to N = {FIT_MAX_N:,}, not {grid.checkpoints[-1]:,} (see sim.fitting)",
        )
    smoothing = checker.real(top.get("smoothing", 0.0), ("smoothing",), 0.0, 1e6)
    if isinstance(top.get("replicates"), dict):
        checker.error(("replicates",), "a target precision ({mcse, max}) applies to convergence experiments")
    if top.get("save_replicates", True) is False:  # e.g. --set save_replicates=false for every config
        checker.notes.append(
            "save_replicates: false does not apply to a fit experiment: its replicates "
            "(one value per model and fit) are always kept"
        )
    truth = _truth(top.get("inputs"), top.get("truth"), checker) if "truth" in top else None
    cases = _fit_cases(top["cases"], checker) if "cases" in top else None
    trajectory = None
    if grid is not None and common["replicates"] is not None:
        trajectory = _trajectory(top.get("trajectory", {}), grid, common["replicates"], checker)
    if truth is not None and cases is not None:
        _check_parameters(cases, truth.truth, checker)
    return _build(
        FitExperiment,
        checker,
        common,
        grid,
        cases=cases,
        smoothing=smoothing,
        trajectory=trajectory,
        estimators=estimators,
        **(truth._asdict() if truth is not None else dict.fromkeys(_FitTruth._fields)),
    )


def _trajectory(value: Any, grid: Grid, replicates: int, checker: _Checker) -> dict[str, int] | None:
    """Read ``trajectory``: which replicate's fit path to record, and at which N."""
    spec = checker.mapping(value, ("trajectory",), ("replicate", "n"), "replicate and n")
    if spec is None:
        return None
    rep = checker.integer(spec.get("replicate", 0), ("trajectory", "replicate"), 0, replicates - 1)
    n = checker.integer(spec.get("n", grid.checkpoints[-1]), ("trajectory", "n"), 1, MAX_N)
    if n is not None and n not in grid.checkpoints:
        checker.error(("trajectory", "n"), f"{n:,} is not one of the sample sizes n")
    return {"replicate": rep, "n": n}


def _check_parameters(cases: tuple[FitCase, ...], truth: Truth, checker: _Checker) -> None:
    """Refuse a model family with more parameters than the optimiser supports."""
    from .. import fitting  # not at the top: see the module docstring

    for i, c in enumerate(cases):
        d = fitting.parameters(c.model, truth)
        if d > MAX_PARAMETERS:
            checker.error(("cases", i, "model"), f"{d} parameters; at most {MAX_PARAMETERS} are supported")


def _numbers(
    value: Any, path: KeyPath, checker: _Checker, lo: float, hi: float, length: int | None = None
) -> list | None:
    if not isinstance(value, list) or not value:
        checker.error(path, f"must be a non-empty list of numbers, got {_describe(value)}")
        return None
    if length is not None and len(value) != length:
        checker.error(path, f"must have {length} entries, got {len(value)}")
        return None
    out = [checker.real(v, (*path, i), lo, hi) for i, v in enumerate(value)]
    return None if any(v is None for v in out) else out


def _truth(inputs: Any, truth: Any, checker: _Checker) -> _FitTruth | None:
    """Read ``inputs`` and ``truth`` into the resolved inputs, the truth as written and its Truth."""
    from .. import fitting  # not at the top: see the module docstring

    spec = checker.mapping(truth, ("truth",), ("table", "weights"), "table or weights")
    ispec = checker.mapping(
        inputs if inputs is not None else {}, ("inputs",), ("probs", "features"), "probs and features"
    )
    if spec is None or ispec is None:
        return None
    if ("table" in spec) == ("weights" in spec):
        checker.error(
            ("truth",), "give exactly one of 'table' (p(y|x) per input) or 'weights' (softmax weights)"
        )
        return None
    features = None
    if "features" in ispec:
        features = _features(ispec["features"], checker)
        if features is None:
            return None
    if "table" in spec:
        conditional = _table(spec["table"], checker)
    else:
        conditional = _weights(spec["weights"], features, checker)
    if conditional is None:
        return None
    x, k = conditional.table.shape
    if features is not None and len(features) != x:
        checker.error(("inputs", "features"), f"has {len(features)} rows but the truth has {x} inputs")
        return None
    if k < 2 or x * k > MAX_CELLS:
        checker.error(
            ("truth",), f"needs 2 or more classes and at most {MAX_CELLS:,} cells (inputs × classes)"
        )
        return None
    probs = _input_probs(ispec["probs"], x, checker) if "probs" in ispec else [1.0 / x] * x
    if probs is None:
        return None
    pi = np.array(probs) / math.fsum(probs)
    phi = np.array(features) if features is not None else np.zeros((x, 0))
    resolved_inputs = {"probs": probs} | ({"features": features} if features is not None else {})
    built = fitting.Truth(pi, conditional.table, phi, linear="weights" in spec)
    return _FitTruth(resolved_inputs, conditional.written, built)


def _features(rows: Any, checker: _Checker) -> list[list[float]] | None:
    """Read ``inputs.features``: one feature vector per input, all of one length."""
    if not isinstance(rows, list) or not rows:
        checker.error(("inputs", "features"), "must be a list of feature vectors, one per input")
        return None
    first = len(rows[0]) if isinstance(rows[0], list) else None
    features = [_numbers(r, ("inputs", "features", i), checker, -1e6, 1e6, first) for i, r in enumerate(rows)]
    return None if any(f is None for f in features) else features


def _table(rows: Any, checker: _Checker) -> _Conditional | None:
    """Read ``truth.table``: p(y|x) written out, one distribution per input."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        checker.error(("truth", "table"), "must be a list of probability lists, one per input")
        return None
    table = [_distribution(r, ("truth", "table", i), checker) for i, r in enumerate(rows)]
    if any(t is None for t in table):
        return None
    if len({t.distribution.k for t in table}) != 1:
        checker.error(("truth", "table"), "every input must have the same number of classes")
        return None
    matrix = np.array([t.distribution.probs for t in table])
    return _Conditional(matrix, {"table": [t.written for t in table]})


def _weights(rows: Any, features: list[list[float]] | None, checker: _Checker) -> _Conditional | None:
    """Read ``truth.weights``: p(y|x) = softmax(W (1, φ(x))), one weight row per class."""
    from .. import fitting  # not at the top: see the module docstring

    f = len(features[0]) if features else 0
    if not isinstance(rows, list) or len(rows) < 2:
        checker.error(("truth", "weights"), "must be a list of K ≥ 2 weight rows, one per class")
        return None
    weights = [
        _numbers(r, ("truth", "weights", i), checker, -100.0, 100.0, 1 + f) for i, r in enumerate(rows)
    ]
    if any(w is None for w in weights):
        return None
    phi = np.hstack([np.ones((len(features) if features else 1, 1)), np.array(features or [[]] * 1)])
    matrix = np.exp(fitting.log_softmax(phi @ np.array(weights).T))
    return _Conditional(matrix, {"weights": weights})


def _input_probs(value: Any, inputs: int, checker: _Checker) -> list[float] | None:
    """Read ``inputs.probs``: π(x), renormalised (with a note) when it misses 1 slightly."""
    probs = _numbers(value, ("inputs", "probs"), checker, 0.0, 1.0, inputs)
    if probs is None:
        return None
    if min(probs) <= 0 or abs(math.fsum(probs) - 1.0) > SUM_TOLERANCE:
        checker.error(
            ("inputs", "probs"),
            f"input probabilities must be positive and sum to 1 (tolerance {SUM_TOLERANCE:g})",
        )
        return None
    if abs(math.fsum(probs) - 1.0) > 1e-12:
        checker.notes.append(
            f"inputs.probs: probabilities summed to {math.fsum(probs)!r}; divided by that sum"
        )
    return probs


def _fit_cases(value: Any, checker: _Checker) -> tuple[FitCase, ...] | None:
    from ..fitting import FAMILIES  # not at the top: see the module docstring

    if not isinstance(value, list) or not value:
        checker.error(("cases",), f"must be a non-empty list of models, got {_describe(value)}")
        return None
    out, seen = [], {}
    for i, v in enumerate(value):
        path = ("cases", i)
        spec = checker.mapping(v, path, _FIT_CASE_KEYS, "name and model")
        if spec is None:
            out.append(None)
            continue
        for key in ("name", "model"):
            if key not in spec:
                checker.error(path, f"missing key '{key}'")
        name = checker.name(spec["name"], (*path, "name")) if "name" in spec else None
        model = checker.choice(spec["model"], (*path, "model"), FAMILIES) if "model" in spec else None
        desc = checker.text(spec["description"], (*path, "description")) if "description" in spec else None
        if name in seen:
            checker.error((*path, "name"), f"case name '{name}' is already used by cases[{seen[name]}]")
        if name is not None:
            seen.setdefault(name, i)
        out.append(FitCase(name, model, desc) if name and model else None)
    return None if any(c is None for c in out) else tuple(out)
