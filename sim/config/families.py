"""Validation of parametric cases: ``{normal: {mean, sd}}``, ``{poisson: {rate}}``, ``{exponential: {rate}}``,
``{geometric: {p}}`` for p and q, and what they ask of the rest of the experiment (sampler, estimators)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import families as fam
from .. import registry
from .checker import _Checker
from .model import Case, KeyPath

#: Each parameter's range: (low, high, low excluded, high excluded, what it is).
_RANGES: dict[str, tuple[float, float, bool, bool, str]] = {
    "mean": (-1e100, 1e100, False, False, "the mean"),
    "sd": (1e-100, 1e100, False, False, "the standard deviation (> 0)"),
    "rate": (0.0, 1e100, True, False, "the rate (> 0)"),
    "p": (1e-4, 1.0, False, True, "the success probability (0 < p < 1)"),
}
#: Per family, a tighter upper bound on a parameter and why.
_LIMITS: dict[tuple[str, str], tuple[float, str]] = {
    ("poisson", "rate"): (fam.poisson.MAX_RATE, "its exact sums run over about 80·√rate values"),
}
#: The largest total a sample's statistic may reach (exact whole numbers in double precision).
MAX_TOTAL = 2.0**52


def is_family(value: Any) -> bool:
    """Whether a p or q as written names a parametric family (``{normal: {…}}``)."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in fam.FAMILIES


def read_family(value: dict, path: KeyPath, checker: _Checker) -> fam.Family | None:
    """The member a ``{family: {parameter: value}}`` mapping describes, or None after an error."""
    name, args = next(iter(value.items()))
    cls, params = fam.FAMILIES[name]
    fpath = path + (name,)
    spec = checker.mapping(args, fpath, tuple(params), ", ".join(params))
    if spec is None:
        return None
    read = {}
    for key, field in params.items():
        if key not in spec:
            checker.error(fpath, f"missing key '{key}' ({_RANGES[key][4]})")
            continue
        read[field] = _parameter(name, key, spec[key], fpath + (key,), checker)
    if len(read) != len(params) or any(v is None for v in read.values()):
        return None
    return cls(**read)


def _parameter(family: str, key: str, value: Any, path: KeyPath, checker: _Checker) -> float | None:
    lo, hi, open_lo, open_hi, what = _RANGES[key]
    number = checker.real(value, path, lo, hi, open_lo=open_lo)
    if number is None:
        return None
    limit, why = _LIMITS.get((family, key), (hi, ""))
    if number > limit:
        checker.error(path, f"must be at most {limit:g} ({why}), got {number!r}")
        return None
    if open_hi and number == hi:
        checker.error(path, f"must be below {hi:g} ({what})")
        return None
    return number


def family_case(name: str, p: Any, q: Any, path: KeyPath, checker: _Checker) -> fam.FamilyPair | None:
    """The pair of a case whose p or q names a family: both must, and q's support must contain p's."""
    if not (isinstance(p, fam.Family) and isinstance(q, fam.Family)):
        checker.error(
            path + ("q",),
            "p and q must both be parametric families ({normal: …}, {poisson: …}, {exponential: …}, "
            "{geometric: …}) or both categorical: KL between a pmf on categories and another law is undefined",
        )
        return None
    try:
        return fam.FamilyPair(p, q)
    except ValueError:
        checker.error(
            path + ("q",),
            f"q = {q.describe()} lives on {q.support} but p = {p.describe()} on {p.support}: "
            "q gives probability 0 where p does not, so KL(p‖q) is infinite",
        )
        return None


def check_family_cases(
    top: dict,
    cases: Sequence[Case],
    estimators: dict[int, str],
    sampler: str | None,
    checkpoints,
    checker: _Checker,
) -> None:
    """What parametric cases ask of the experiment: the sampler, the estimators, the sample sizes."""
    parametric = [(i, c) for i, c in enumerate(cases) if isinstance(c.pair, fam.FamilyPair)]
    if not parametric or sampler is None:
        return
    if top.get("save_replicates", True) is False:
        checker.error(
            ("save_replicates",),
            "parametric cases keep their replicates (their values have no a-priori range to stream into)",
        )
    for i, case in parametric:
        _check_case(i, case, sampler, checkpoints, checker)
    if "estimators" not in top:
        return
    for e, label in estimators.items():
        spec = registry.get(label)
        for _, case in parametric:
            why = why_not(case, spec, sampler, checkpoints)
            if why is not None:
                checker.error(("estimators", e), f"{label} is not available for case '{case.name}': {why}")


def why_not(case: Case, spec: registry.Estimator, sampler: str, checkpoints) -> str | None:
    """Why ``spec`` cannot be asked of this parametric case with ``sampler`` (or None)."""
    why = case.pair.unavailable(spec, sampler)
    if why is None and spec.form is registry.Form.PLUGIN:
        why = _too_small(case, checkpoints)
    return why


def _too_small(case: Case, checkpoints) -> str | None:
    smallest = case.pair.p.fitted_kl_minimum_n()
    if case.pair.same_family and checkpoints and checkpoints[0] < smallest:
        return (
            f"the fitted {case.pair.p.name} is degenerate below n = {smallest} (KL = ∞); "
            f"start n at {smallest}"
        )
    return None


def _check_case(i: int, case: Case, sampler: str, checkpoints, checker: _Checker) -> None:
    pair = case.pair
    if not pair.same_family and sampler != "per-sample":
        checker.error(
            ("cases", i, "q"),
            f"p and q are of different families ({pair.p.name}, {pair.q.name}), which share no sufficient "
            "statistic: this case needs sampler: per-sample",
        )
    if sampler == "counts" and checkpoints and pair.p.discrete:
        total = checkpoints[-1] * (pair.p.mean + 40.0 * (pair.p.variance / checkpoints[-1]) ** 0.5)
        if total > MAX_TOTAL:
            checker.error(
                ("cases", i, "p"),
                f"a sample of {checkpoints[-1]:,} would total about {total:.3g}, beyond the whole numbers "
                f"double precision keeps exactly (2⁵²): lower n.max or the mean",
            )
