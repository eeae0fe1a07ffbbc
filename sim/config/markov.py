"""Validation of Markov cases: ``p: {markov: {transition: [[…], …], initial: stationary | […]}}`` against q,
a chain on the same states or a categorical (i.i.d.) model, and what they ask of the experiment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import distributions as dist
from .. import registry
from ..markov import MAX_STATES, Chain, MarkovPair, unigram
from ..markov.chain import reachable
from .checker import _Checker
from .model import PER_SAMPLE_MAX_N, Case, KeyPath

_KEYS = ("transition", "initial")
STATIONARY = "stationary"
#: The longest Markov path (as for sampler: per-sample, whose cost is also linear in n).
MAX_N = PER_SAMPLE_MAX_N


class ReadChain(NamedTuple):
    """A chain as read: its resolved form (for the resolved config) and the chain."""

    written: Any
    distribution: Chain


def is_markov(value: Any) -> bool:
    """Whether a p or q as written is a Markov chain (``{markov: {…}}``)."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) == "markov"


def read_markov(value: dict, path: KeyPath, checker: _Checker) -> ReadChain | None:
    """The chain ``{markov: {transition, initial}}`` describes, or None after an error."""
    mpath = path + ("markov",)
    spec = checker.mapping(value["markov"], mpath, _KEYS, "transition (a square matrix) and initial")
    if spec is None:
        return None
    if "transition" not in spec:
        checker.error(mpath, "missing key 'transition' (a list of rows, each summing to 1)")
        return None
    matrix = _transition(spec["transition"], mpath + ("transition",), checker)
    if matrix is None:
        return None
    initial = spec.get("initial", STATIONARY)
    start = (
        None if initial == STATIONARY else _probabilities(initial, mpath + ("initial",), len(matrix), checker)
    )
    if initial != STATIONARY and start is None:
        return None
    chain = Chain(np.array(matrix), None if start is None else np.array(start))
    if initial == STATIONARY and not chain.irreducible and path[-1] == "p":
        why = "its KL rate does not exist; every state must be reachable from every other"
        _not_irreducible(chain, mpath + ("transition",), why, checker)
        return None
    # a reducible q cannot cover an irreducible p's transitions: the coverage check says where
    written = {"markov": {"transition": matrix, "initial": initial if start is None else start}}
    return ReadChain(written, chain)


def _transition(value: Any, path: KeyPath, checker: _Checker) -> list[list[float]] | None:
    """A square matrix of probabilities whose rows sum to 1 (renormalised, with a note, when nearly)."""
    if not isinstance(value, list) or not value or not all(isinstance(row, list) for row in value):
        checker.error(path, "must be a list of rows, each a list of probabilities")
        return None
    k = len(value)
    if k > MAX_STATES:
        checker.error(path, f"more than {MAX_STATES} states (its exact moments power 5K × 5K matrices)")
        return None
    ragged = [i for i, row in enumerate(value) if len(row) != k]
    if ragged:
        i = ragged[0]
        checker.error(
            path, f"must be square: {k} rows of {k} probabilities, but row {i} holds {len(value[i])}"
        )
        return None
    rows = [_probabilities(row, path + (i,), k, checker) for i, row in enumerate(value)]
    return None if any(row is None for row in rows) else rows


def _probabilities(value: Any, path: KeyPath, k: int, checker: _Checker) -> list[float] | None:
    """A list of k probabilities summing to 1 within the tolerance, divided by its sum."""
    if not isinstance(value, list):
        checker.error(path, f"must be a list of {k} probabilities or '{STATIONARY}', got {value!r}")
        return None
    if len(value) != k:
        checker.error(path, f"must hold one probability per state ({k}), got {len(value)}")
        return None
    probs = checker.probabilities(value, path)
    return None if probs is None else [float(v) for v in dist.categorical(probs).probs]


def _not_irreducible(chain: Chain, path: KeyPath, why: str, checker: _Checker) -> None:
    i, j = _unreachable(chain.transition > 0.0)
    checker.error(
        path,
        f"the chain is not irreducible (state {j} cannot be reached from state {i}), so {why}",
    )


def _unreachable(edges: np.ndarray) -> tuple[int, int]:
    """A pair (i, j) such that j cannot be reached from i (the chain is known not to be irreducible)."""
    for i in range(edges.shape[0]):
        seen = reachable(edges, i)
        if not seen.all():
            return i, int(np.flatnonzero(~seen)[0])
    return 0, 0


def markov_case(p: Any, q: Any, path: KeyPath, checker: _Checker) -> MarkovPair | None:
    """The pair of a case whose p is a chain: q a chain on the same states or a categorical model."""
    if not isinstance(p, Chain):
        checker.error(path + ("p",), "q is a Markov chain, so p must be one too ({markov: {transition: …}})")
        return None
    if isinstance(q, dist.Distribution):
        if q.k != p.k:
            checker.error(path + ("q",), f"q has {q.k:,} categories but p's chain has {p.k} states")
            return None
        q = unigram(q.probs)
    elif not isinstance(q, Chain):
        checker.error(path + ("q",), "must be a Markov chain on p's states or a categorical model")
        return None
    elif q.k != p.k:
        checker.error(path + ("q",), f"q's chain has {q.k} states but p's has {p.k}")
        return None
    if not p.irreducible:
        _not_irreducible(
            p,
            path + ("p", "markov", "transition"),
            "its KL rate does not exist; every state must be reachable from every other",
            checker,
        )
        return None
    return _covering(p, q, path, checker)


def _covering(p: Chain, q: Chain, path: KeyPath, checker: _Checker) -> MarkovPair | None:
    """The pair, or an error where q gives probability 0 to what p does (an infinite KL rate)."""
    bad = np.argwhere((p.transition > 0.0) & ~(q.transition > 0.0))
    where = path + ("q",) if q.iid else path + ("q", "markov", "transition")
    if bad.size:
        i, j = (int(v) for v in bad[0])
        checker.error(
            where,
            f"q's transition {i}→{j} has probability 0 where p's is {p.transition[i, j]:.6g} > 0, "
            "so the KL rate is infinite",
        )
        return None
    missing = np.flatnonzero((p.start > 0.0) & ~(q.start > 0.0))
    if missing.size:
        s = int(missing[0])
        checker.error(
            path + ("q",) if q.iid else path + ("q", "markov", "initial"),
            f"q's initial law gives state {s} probability 0 where p's gives {p.start[s]:.6g} > 0, "
            "so every path starting there has an infinite llr",
        )
        return None
    return MarkovPair(p, q)


def why_not(case: Case, spec: registry.Estimator, checkpoints: Sequence[int]) -> str | None:
    """Why ``spec`` cannot be asked of this Markov case (or None)."""
    why = case.pair.unavailable(spec)
    if why is None and spec.form is registry.Form.PLUGIN and checkpoints and checkpoints[0] < 2:
        why = "the empirical transition matrix needs n ≥ 2 (one transition); start n at 2"
    return why


def check_markov_cases(
    top: dict, cases: Sequence[Case], estimators: dict[int, str], checkpoints, checker: _Checker
) -> None:
    """What Markov cases ask of the experiment: replicates kept, estimators they offer."""
    chains = [c for c in cases if isinstance(c.pair, MarkovPair)]
    if not chains:
        return
    if top.get("save_replicates", True) is False:
        checker.error(
            ("save_replicates",), "Markov cases keep their replicates (streaming is not offered for them)"
        )
    if checkpoints and checkpoints[-1] > MAX_N:
        checker.error(
            ("n",),
            f"Markov paths are simulated step by step (the cost is linear in n): n may be at most {MAX_N:,}, "
            f"got {checkpoints[-1]:,}",
        )
    if "estimators" not in top:
        return
    for e, label in estimators.items():
        spec = registry.get(label)
        for case in chains:
            why = why_not(case, spec, checkpoints)
            if why is not None:
                checker.error(("estimators", e), f"{label} is not available for case '{case.name}': {why}")
