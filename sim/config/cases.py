"""Validation of convergence experiments: checkpoints, distributions, cases, estimators."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import distributions as dist
from .. import registry
from ..families import Family
from ..markov import Chain
from .checker import _as_number, _Checker, _describe
from .families import family_case, is_family, read_family
from .markov import is_markov, markov_case, read_markov
from .model import (
    _CASE_KEYS,
    _GENERATORS,
    DEFAULT_POINTS,
    ESTIMATORS,
    MAX_K,
    MAX_N,
    PER_SAMPLE_MAX_N,
    Case,
    KeyPath,
    checkpoint_grid,
)


class Grid(NamedTuple):
    """The sample sizes of an experiment, named as the experiment's fields.

    Attributes
    ----------
    n : object
        The ``n`` key as it goes into the resolved config: the list, or the
        ``{min, max, points}`` mapping with its defaults filled in.
    checkpoints : tuple of int
        The sample sizes, strictly increasing.
    """

    n: Any
    checkpoints: tuple[int, ...]


def _checkpoints(value: Any, path: KeyPath, checker: _Checker) -> Grid | None:
    """Read ``n``: a list of sample sizes or ``{min, max, points}`` spaced evenly in log N."""
    if isinstance(value, list):
        if not value:
            checker.error(path, "must list at least one sample size")
            return None
        ns = [checker.integer(v, path + (i,), 1, MAX_N) for i, v in enumerate(value)]
        if any(v is None for v in ns):
            return None
        for i in range(1, len(ns)):
            if ns[i] <= ns[i - 1]:
                checker.error(
                    path + (i,), f"sample sizes must increase strictly; {ns[i]:,} follows {ns[i - 1]:,}"
                )
                return None
        return Grid(list(ns), tuple(ns))
    spec = checker.mapping(value, path, ("min", "max", "points"), "min, max and points, or a list of sizes")
    if spec is None:
        return None
    if "max" not in spec:
        checker.error(path, "missing key 'max' (the largest sample size)")
        return None
    lo = checker.integer(spec.get("min", 1), path + ("min",), 1, MAX_N)
    hi = checker.integer(spec["max"], path + ("max",), 1, MAX_N)
    points = checker.integer(spec.get("points", DEFAULT_POINTS), path + ("points",), 1, 10_000)
    if lo is None or hi is None or points is None:
        return None
    if hi < lo:
        checker.error(path + ("max",), f"max ({hi:,}) is below min ({lo:,})")
        return None
    if points == 1 and lo != hi:
        checker.error(path + ("points",), "one point cannot include both min and max; use points ≥ 2")
        return None
    if hi - lo + 1 < points:
        checker.error(
            path + ("points",), f"only {hi - lo + 1} distinct sizes lie in [{lo}, {hi}], not {points}"
        )
        return None
    return Grid({"min": lo, "max": hi, "points": points}, checkpoint_grid(lo, hi, points))


class ReadDistribution(NamedTuple):
    """A distribution ``p`` or ``q`` as read from a config.

    Attributes
    ----------
    written : object
        As it goes into the resolved config: a number, a list or a
        generator mapping with its defaults filled in.
    distribution : sim.distributions.Distribution
        The built distribution.
    """

    written: Any
    distribution: dist.Distribution


def _distribution(value: Any, path: KeyPath, checker: _Checker) -> ReadDistribution | None:
    """Read p or q: a coin, a list of probabilities or a generator mapping."""
    if isinstance(value, list):
        return _probabilities(value, path, checker)
    if is_family(value):
        member = read_family(value, path, checker)
        return None if member is None else ReadDistribution(member.written, member)
    if is_markov(value):
        return read_markov(value, path, checker)
    if isinstance(value, dict):
        return _generated(value, path, checker)
    return _coin(value, path, checker)


def _probabilities(value: list, path: KeyPath, checker: _Checker) -> ReadDistribution | None:
    """A list of probabilities, renormalised (with a note) when it misses a sum of 1 slightly."""
    if not value:
        checker.error(path, "an empty list of probabilities")
        return None
    if len(value) > MAX_K:
        checker.error(path, f"more than {MAX_K:,} categories")
        return None
    probs = checker.probabilities(value, path)
    return None if probs is None else ReadDistribution(probs, dist.categorical(probs))


def _generator(value: dict, path: KeyPath, checker: _Checker) -> str | None:
    """The one generator a mapping names (see ``_GENERATORS``), or None after an error."""
    if len(value) == 1 and next(iter(value)) in _GENERATORS:
        return next(iter(value))
    keys = ", ".join(map(str, value)) or "nothing"
    hint = difflib.get_close_matches(str(next(iter(value), "")), _GENERATORS, n=1)
    tip = f"; did you mean '{hint[0]}'?" if hint else ""
    checker.error(
        path,
        f"a generated distribution takes exactly one of {', '.join(_GENERATORS)}, got {keys}{tip}",
    )
    return None


def _generated(value: dict, path: KeyPath, checker: _Checker) -> ReadDistribution | None:
    """``{uniform: K}``, ``{uniform: {k}}``, ``{zipf: {k, s}}`` or ``{dirichlet: {k, alpha, seed}}``."""
    kind = _generator(value, path, checker)
    if kind is None:
        return None
    gpath = path + (kind,)
    bare = kind == "uniform" and not isinstance(value[kind], dict)  # {uniform: K}
    keys = _GENERATORS[kind]
    args = checker.mapping({"k": value[kind]} if bare else value[kind], gpath, keys, ", ".join(keys))
    if args is None:
        return None
    missing = [k for k in keys if k not in args]
    for k in missing:
        checker.error(gpath, f"missing key '{k}'")
    if missing:
        return None
    k = checker.integer(args["k"], gpath if bare else gpath + ("k",), 1, MAX_K)
    if kind == "uniform":
        return (
            None if k is None else ReadDistribution({kind: k} if bare else {kind: {"k": k}}, dist.uniform(k))
        )
    if kind == "zipf":
        s = checker.real(args["s"], gpath + ("s",), 0.0, 1e6)
        if k is None or s is None:
            return None
        return ReadDistribution({kind: {"k": k, "s": s}}, dist.zipf(k, s))
    alpha = checker.real(args["alpha"], gpath + ("alpha",), 0.0, 1e12, open_lo=True)
    seed = checker.integer(args["seed"], gpath + ("seed",), 0, 2**63 - 1)
    if k is None or alpha is None or seed is None:
        return None
    return ReadDistribution({kind: {"k": k, "alpha": alpha, "seed": seed}}, dist.dirichlet(k, alpha, seed))


def _coin(value: Any, path: KeyPath, checker: _Checker) -> ReadDistribution | None:
    """A single probability: a coin with that P(heads)."""
    if _as_number(value) is None:
        checker.error(
            path,
            f"must be a probability (a coin), a list of probabilities or one of "
            f"{{uniform: K}}, {{zipf: {{k, s}}}}, {{dirichlet: {{k, alpha, seed}}}}, {{normal: {{mean, sd}}}}, "
            f"{{poisson: {{rate}}}}, {{exponential: {{rate}}}}, {{geometric: {{p}}}}, "
            f"{{markov: {{transition, initial}}}}; got {_describe(value)}",
        )
        return None
    heads = checker.real(value, path, 0.0, 1.0)
    return None if heads is None else ReadDistribution(heads, dist.coin(heads))


def _case(value: Any, path: KeyPath, checker: _Checker) -> Case | None:
    spec = checker.mapping(value, path, _CASE_KEYS, "name, p and q (and optionally description, q_sample)")
    if spec is None:
        return None
    for key in ("name", "p", "q"):
        if key not in spec:
            checker.error(path, f"missing key '{key}'")
    name = checker.name(spec["name"], path + ("name",)) if "name" in spec else None
    desc = checker.text(spec["description"], path + ("description",)) if "description" in spec else None
    p = _distribution(spec["p"], path + ("p",), checker) if "p" in spec else None
    q = _distribution(spec["q"], path + ("q",), checker) if "q" in spec else None
    ratio = _q_sample(spec["q_sample"], path + ("q_sample",), checker) if "q_sample" in spec else None
    if name is None or p is None or q is None or ("description" in spec and desc is None):
        return None
    if "q_sample" in spec and ratio is None:
        return None
    (p_raw, p_dist), (q_raw, q_dist) = p, q
    if isinstance(p_dist, Chain) or isinstance(q_dist, Chain):
        if "q_sample" in spec:
            checker.error(path + ("q_sample",), "q_sample applies to i.i.d. categorical cases")
        chains = markov_case(p_dist, q_dist, path, checker)
        return None if chains is None or "q_sample" in spec else Case(name, p_raw, q_raw, chains, desc)
    if isinstance(p_dist, Family) or isinstance(q_dist, Family):
        if "q_sample" in spec:
            checker.error(
                path + ("q_sample",), "q_sample applies to categorical cases (two-sample estimators)"
            )
        pair = family_case(name, p_dist, q_dist, path, checker)
        return None if pair is None or "q_sample" in spec else Case(name, p_raw, q_raw, pair, desc)
    if p_dist.k != q_dist.k:
        checker.error(path + ("q",), f"q has {q_dist.k:,} categories but p has {p_dist.k:,}")
        return None
    bad = np.flatnonzero((p_dist.probs > 0) & (q_dist.probs <= 0))
    if bad.size:
        i = int(bad[0])
        checker.error(
            path + ("q",),
            f"q is 0 for category {i} where p = {p_dist.probs[i]:.6g} > 0, so KL(p‖q) is infinite",
        )
        return None
    q_sample = None if ratio is None else {"ratio": ratio}
    return Case(name, p_raw, q_raw, dist.Pair(p_dist, q_dist, ratio), desc, q_sample)


def _q_sample(value: Any, path: KeyPath, checker: _Checker) -> float | None:
    """``q_sample: {ratio: r}``: q is also observed through a sample of its own, of r·n draws."""
    spec = checker.mapping(value, path, ("ratio",), "ratio (q's sample size as a multiple of n)")
    if spec is None:
        return None
    if "ratio" not in spec:
        checker.error(path, "missing key 'ratio' (q's sample size as a multiple of n, e.g. {ratio: 1})")
        return None
    return checker.real(spec["ratio"], path + ("ratio",), 0.0, dist.MAX_Q_SAMPLE_RATIO, open_lo=True)


def _estimators(
    value: Any,
    checker: _Checker,
    names: Sequence[str] = ESTIMATORS,
    parameterised: Sequence[str] = (),
    parsed: dict[int, str] | None = None,
) -> tuple[str, ...] | None:
    """The estimators asked for, by their names in tables (``smoothed_kl[alpha=0.5]`` for parameters).

    ``parsed`` receives those that validated, by position, even when others did not.
    """
    path: KeyPath = ("estimators",)
    if not isinstance(value, list) or not value:
        checker.error(path, f"must be a non-empty list of {', '.join(names)}, got {_describe(value)}")
        return None
    out = []
    for i, v in enumerate(value):
        e = _estimator(v, path + (i,), checker, names, parameterised)
        if e is not None and e in out:
            checker.error(path + (i,), f"'{e}' is listed twice")
        elif e is not None:
            out.append(e)
            if parsed is not None:
                parsed[i] = e
    return tuple(out) if len(out) == len(value) else None


def _estimator(v: Any, path: KeyPath, checker: _Checker, names, parameterised) -> str | None:
    """One item of ``estimators``: a name, a label ``name[key=value]``, or ``{name: {key: value}}``."""
    if isinstance(v, dict) and len(v) == 1 and next(iter(v)) in parameterised:
        name, params = next(iter(v.items()))
        if not isinstance(params, dict):
            checker.error(
                path + (name,),
                f"must be a mapping of parameters, e.g. {{alpha: 0.5}}, got {_describe(params)}",
            )
            return None
        return _built(lambda: registry.parameterised(name, params), path + (name,), checker)
    if isinstance(v, str) and (v in parameterised or v.partition("[")[0] in parameterised):
        build = registry.get if "[" in v else (lambda label: registry.parameterised(label, {}))
        return _built(lambda: build(v), path, checker)
    if parameterised and not (isinstance(v, str) and v in names):
        forms = ", ".join(f"{{{p}: {{{registry.PARAMETERISED[p][0][0]}: …}}}}" for p in parameterised)
        hint = difflib.get_close_matches(str(v), [*names, *parameterised], n=1) if isinstance(v, str) else []
        tip = f"; did you mean '{hint[0]}'?" if hint else ""
        checker.error(path, f"must be one of {', '.join(names)} or {forms}, got {_describe(v)}{tip}")
        return None
    return checker.choice(v, path, names)


def _built(build, path: KeyPath, checker: _Checker) -> str | None:
    """The label of a parameterised estimator, or None after reporting why it cannot be built."""
    try:
        return build().name
    except ValueError as exc:
        checker.error(path, str(exc))
        return None


def _check_against_cases(estimators: dict[int, str], cases: Sequence[Case], checker: _Checker) -> None:
    """What an estimator asks of every case: q positive everywhere (add-α), a sample of q (two samples).

    Run on the estimators and cases that validated, so that it is reported
    with every other problem of the file.
    """
    if not any(registry.get(label).needs_q_sample for label in estimators.values()):
        for case in cases:
            if case.q_sample is not None:
                checker.notes.append(
                    f"case '{case.name}': q_sample is read only by a two-sample estimator "
                    "(two_sample_kl), and none is asked for"
                )
    cases = [c for c in cases if not c.pair.parametric]  # see config.families.check_family_cases
    for i, label in estimators.items():
        spec = registry.get(label)
        if spec.needs_q_sample:
            _check_q_samples(i, label, cases, checker)
        if spec.smoothing is None or spec.needs_q_sample:  # q̃ gives every category mass, whatever q
            continue
        for case in cases:
            zeros = int(np.count_nonzero(case.pair.q.probs == 0.0))
            if zeros:
                checker.error(
                    ("estimators", i),
                    f"{label} gives every category mass, so q must too, but case '{case.name}' "
                    f"has q = 0 on {zeros:,} of its {case.pair.q.k:,} categories (its value would be infinite)",
                )


def _check_q_sample_sizes(
    cases: Sequence[Case], grid: Grid | None, sampler: str | None, checker: _Checker
) -> None:
    """q's sample at the largest n must stay an exact integer count (2⁵³), and within what the
    per-sample sampler draws one by one; a q_sample nothing reads gets a note."""
    if grid is None:
        return
    largest = grid.checkpoints[-1]
    limit, what = (
        (PER_SAMPLE_MAX_N, "the per-sample sampler draws one by one")
        if sampler == "per-sample"
        else (2**53, "a count stays exact in double precision (2⁵³)")
    )
    for i, case in enumerate(cases):
        if case.pair.q_sample is not None and case.pair.q_sample_size(largest) > limit:
            checker.error(
                ("cases", i, "q_sample", "ratio"),
                f"q's sample at n = {largest:,} would hold {case.pair.q_sample_size(largest):,} draws, "
                f"more than {what}: {limit:,}",
            )


def _check_q_samples(i: int, label: str, cases: Sequence[Case], checker: _Checker) -> None:
    """A two-sample estimator compares p's sample with q's: every case must say how large q's is."""
    lacking = [case.name for case in cases if case.pair.q_sample is None]
    if lacking:
        names = ", ".join(f"'{name}'" for name in lacking)
        checker.error(
            ("estimators", i),
            f"{label} compares p's sample with a sample of q, so every case needs q_sample: {{ratio: …}} "
            f"(q's sample size as a multiple of n), but {names} {'has' if len(lacking) == 1 else 'have'} none",
        )


def _cases(value: Any, checker: _Checker, parsed: list[Case] | None = None) -> tuple[Case, ...] | None:
    """The cases; ``parsed`` receives those that validated, even when others did not."""
    if not isinstance(value, list) or not value:
        checker.error(("cases",), f"must be a non-empty list of cases, got {_describe(value)}")
        return None
    cases = [_case(v, ("cases", i), checker) for i, v in enumerate(value)]
    if parsed is not None:
        parsed.extend(c for c in cases if c is not None)
    seen: dict[str, int] = {}
    for i, v in enumerate(value):
        name = v.get("name") if isinstance(v, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            checker.error(("cases", i, "name"), f"case name '{name}' is already used by cases[{seen[name]}]")
        seen.setdefault(name, i)
    return None if any(c is None for c in cases) else tuple(cases)
