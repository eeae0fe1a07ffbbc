"""Validation of ``kind: fit`` experiments: inputs, truth, models and trajectory."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .cases import _distribution
from .checker import _Checker, _describe
from .model import (
    _FIT_CASE_KEYS,
    MAX_CELLS,
    MAX_N,
    MAX_PARAMETERS,
    SUM_TOLERANCE,
    FitCase,
    FitExperiment,
    KeyPath,
)


def _fit_experiment(top: dict, checker: _Checker, common: dict, grid, estimators) -> FitExperiment | None:
    from .. import fitting

    smoothing = checker.real(top.get("smoothing", 0.0), ("smoothing",), 0.0, 1e6)
    if top.get("save_replicates", True) is False:  # e.g. --set save_replicates=false for every config
        checker.notes.append(
            "save_replicates: false does not apply to a fit experiment: its replicates "
            "(one value per model and fit) are always kept"
        )
    truth = _truth(top.get("inputs"), top.get("truth"), checker) if "truth" in top else None
    cases = _fit_cases(top["cases"], checker) if "cases" in top else None
    trajectory = None
    if grid is not None and common["replicates"] is not None:
        spec = top.get("trajectory", {})
        spec = checker.mapping(spec, ("trajectory",), ("replicate", "n"), "replicate and n")
        if spec is not None:
            rep = checker.integer(
                spec.get("replicate", 0), ("trajectory", "replicate"), 0, common["replicates"] - 1
            )
            n = checker.integer(spec.get("n", grid[1][-1]), ("trajectory", "n"), 1, MAX_N)
            if n is not None and n not in grid[1]:
                checker.error(("trajectory", "n"), f"{n:,} is not one of the sample sizes n")
            trajectory = {"replicate": rep, "n": n}
    if truth is not None and cases is not None:
        built = truth[2]
        for i, c in enumerate(cases):
            d = fitting.parameters(c.model, built)
            if d > MAX_PARAMETERS:
                checker.error(
                    ("cases", i, "model"), f"{d} parameters; at most {MAX_PARAMETERS} are supported"
                )
    if checker.issues:
        return None
    common["description"] = common["description"].strip()
    return FitExperiment(
        cases=cases,
        n=grid[0],
        checkpoints=grid[1],
        truth=truth[2],
        inputs=truth[0],
        truth_spec=truth[1],
        smoothing=smoothing,
        trajectory=trajectory,
        estimators=estimators,
        notes=tuple(checker.notes),
        source=checker.source,
        **common,
    )


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


def _truth(inputs: Any, truth: Any, checker: _Checker):
    """Read ``inputs`` and ``truth`` into (inputs as resolved, truth as written, Truth)."""
    from .. import fitting

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
        rows = ispec["features"]
        if not isinstance(rows, list) or not rows:
            checker.error(("inputs", "features"), "must be a list of feature vectors, one per input")
            return None
        first = len(rows[0]) if isinstance(rows[0], list) else None
        features = [
            _numbers(r, ("inputs", "features", i), checker, -1e6, 1e6, first) for i, r in enumerate(rows)
        ]
        if any(f is None for f in features):
            return None
    if "table" in spec:
        rows = spec["table"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
            checker.error(("truth", "table"), "must be a list of probability lists, one per input")
            return None
        table = [_distribution(r, ("truth", "table", i), checker) for i, r in enumerate(rows)]
        if any(t is None for t in table):
            return None
        if len({t[1].k for t in table}) != 1:
            checker.error(("truth", "table"), "every input must have the same number of classes")
            return None
        matrix = np.array([t[1].probs for t in table])
        raw_truth = {"table": [t[0] for t in table]}
    else:
        f = len(features[0]) if features else 0
        rows = spec["weights"]
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
        raw_truth = {"weights": weights}
    x, k = matrix.shape
    if features is not None and len(features) != x:
        checker.error(("inputs", "features"), f"has {len(features)} rows but the truth has {x} inputs")
        return None
    if k < 2 or x * k > MAX_CELLS:
        checker.error(
            ("truth",), f"needs 2 or more classes and at most {MAX_CELLS:,} cells (inputs × classes)"
        )
        return None
    if "probs" in ispec:
        probs = _numbers(ispec["probs"], ("inputs", "probs"), checker, 0.0, 1.0, x)
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
    else:
        probs = [1.0 / x] * x
    pi = np.array(probs) / math.fsum(probs)
    phi = np.array(features) if features is not None else np.zeros((x, 0))
    resolved_inputs = {"probs": probs} | ({"features": features} if features is not None else {})
    return resolved_inputs, raw_truth, fitting.Truth(pi, matrix, phi, linear="weights" in spec)


def _fit_cases(value: Any, checker: _Checker) -> tuple[FitCase, ...] | None:
    from ..fitting import FAMILIES

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
