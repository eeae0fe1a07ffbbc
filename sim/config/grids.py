"""Grids of cases: ``grid:`` expands the product of parameter lists into cases.

A grid entry is written like a case whose values may be lists::

    grid:
      p: 0.5
      q: [0.55, 0.6, 0.7]                       # three coins

    grid:
      name: zipf                                # a prefix of the case names (optional)
      p: {zipf: {k: [100, 10000], s: [0.8, 1.07, 1.3]}}
      q: {uniform: same}                        # as many categories as p

A list sweeps where it stands: at ``p`` or ``q`` itself (a list of coins, of probability lists,
of generator or family mappings), at a parameter of a generator or family (``k``, ``s``, ``mean``,
``rate`` …, or ``{uniform: [10, 100]}``), and at ``q_sample``'s ``ratio``.  Inside a Markov chain's
mapping lists are its matrices, not sweeps (sweep whole chains at ``p`` or ``q``).  ``same``, as
q's number of categories, is p's in each combination.

Each combination is one case, in the order of :func:`itertools.product` over the swept lists as
they appear (p's, then q's, then q_sample's).  Its name is the prefix, if any, then
``<label><value>`` per swept parameter, joined by ``_``: the label is the key that holds the list
(``q``, ``k``, ``uniform``), written ``p.k``/``q.k`` when both sweep a key of that name; the values
of a list of numbers are written as Python writes them (``0.55``, ``1e-06``; ``1e2`` as ``100``),
those of any other list by their position in it from 1 (``p1``, ``p2``).  ``p: 0.5, q: [0.55, 0.6]``
gives ``q0.55`` and ``q0.6``.  A probability list that stays fixed is a list of one at p or q
(``q: [[0.2, 0.8]]``).

Only this module knows the layout; the loader validates each expanded case as it validates
written ones, and the sweep figure asks :func:`expand` which values each case was given.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from .. import registry
from .cases import _case
from .checker import _as_number, _Checker, _describe
from .model import Case, KeyPath

#: The keys of a grid entry: a case's, with ``name`` a prefix of the generated names.
GRID_KEYS = ("name", "description", "p", "q", "q_sample")
#: The keys whose values may hold lists that sweep.
SWEEPING = ("p", "q", "q_sample")
#: Mappings of p or q whose lists are values, not sweeps.
OPAQUE = ("markov",)
#: q's number of categories written as p's.
SAME = "same"
#: The most cases one grid entry may expand to.
MAX_GRID_CASES = 10_000


class Swept(NamedTuple):
    """One swept parameter of a grid entry.

    Attributes
    ----------
    label : str
        Its name in case names and in the sweep figure (``q``, ``k``, ``p.k``).
    path : tuple
        Where its list stands inside the entry (``("p", "zipf", "s")``).
    values : list
        The values it takes, in order.
    """

    label: str
    path: KeyPath
    values: list


class GridCase(NamedTuple):
    """One case of a grid: its name, the swept values it was given, the case as written, and where
    each of those values stands in the entry (the swept path and the value's position)."""

    name: str
    values: dict[str, Any]
    case: dict[str, Any]
    positions: dict[KeyPath, int]


def entries(value: Any) -> list[Any]:
    """The grid entries of a ``grid:`` value (one mapping, or a list of them), as written."""
    return value if isinstance(value, list) else [value]


def sweeps(entry: dict) -> list[Swept]:
    """Every swept parameter of a grid entry, in the order they appear (see the module notes).

    Numbers written as text (``1e2``, which YAML 1.1 reads as a string) are numbers here."""
    found: list[tuple[KeyPath, list]] = []
    for key in SWEEPING:
        if key in entry:
            _find(entry[key], (key,), found)
    keys = [path[-1] for path, _ in found]
    return [
        Swept(
            f"{path[0]}.{path[-1]}" if keys.count(path[-1]) > 1 else str(path[-1]),
            path,
            [_number(v) for v in values],
        )
        for path, values in found
    ]


def _number(value: Any) -> Any:
    """A number written as text as the number (a whole one as an int); anything else as it is."""
    if not isinstance(value, str) or not is_number(value):
        return value
    number = _as_number(value)
    return (
        int(number) if isinstance(number, float) and number.is_integer() and abs(number) < 2**53 else number
    )


def _find(value: Any, path: KeyPath, found: list) -> None:
    if isinstance(value, list):
        if len(path) <= 3:  # p or q itself, or a parameter of its generator or family
            found.append((path, value))
        return
    if isinstance(value, dict) and not (len(path) == 1 and any(k in OPAQUE for k in value)):
        for key, inner in value.items():
            _find(inner, path + (key,), found)


def size(entry: dict) -> int:
    """How many cases a grid entry expands to."""
    total = 1
    for swept in sweeps(entry):
        total *= len(swept.values)
    return total


def expand(entry: dict) -> list[GridCase]:
    """The cases of one grid entry (valid or not: the loader validates each)."""
    swept = sweeps(entry)
    prefix = entry.get("name")
    out = []
    for picks in itertools.product(*(range(len(s.values)) for s in swept)):
        case = {key: _copy(entry[key]) for key in SWEEPING if key in entry}
        values, parts, positions = {}, [], {}
        for s, j in zip(swept, picks, strict=True):
            value = s.values[j]
            _put(case, s.path, value)
            by_value = all(is_number(v) for v in s.values)  # else every value by its position
            values[s.label] = value if by_value else j + 1
            parts.append(f"{s.label}{_written(value) if by_value else j + 1}")
            positions[s.path] = j
        _resolve_same(case)
        name = "_".join(([str(prefix)] if prefix is not None else []) + parts)
        described = ", ".join(f"{label} = {_written(v)}" for label, v in values.items())
        text = entry.get("description")
        case = {"name": name, "description": f"{text}: {described}" if text else described} | case
        out.append(GridCase(name, values, case, positions))
    return out


def located(path: KeyPath, positions: dict[KeyPath, int]) -> KeyPath:
    """A path inside an expanded case, as the path of the value in the grid entry that set it."""
    for swept, j in positions.items():
        if path[: len(swept)] == swept:
            return swept + (j,) + path[len(swept) :]
    return path


def duplicate_values(entry: dict) -> list[tuple[KeyPath, str]]:
    """(path, message) for each value a swept list repeats."""
    out = []
    for swept in sweeps(entry):
        seen: list[Any] = []
        for j, value in enumerate(swept.values):
            if value in seen:
                out.append((swept.path + (j,), f"repeats {_written(value)} (a grid lists each value once)"))
            seen.append(value)
    return out


def _put(case: dict, path: KeyPath, value: Any) -> None:
    target = case
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _resolve_same(case: dict) -> None:
    """q's ``same`` categories: p's, where p has a number of them (left as written otherwise)."""
    k = categories(case.get("p"))
    q = case.get("q")
    if k is None or not isinstance(q, dict) or len(q) != 1:
        return
    kind, args = next(iter(q.items()))
    if args == SAME:
        q[kind] = k
    elif isinstance(args, dict) and args.get("k") == SAME:
        args["k"] = k


_NO_SAME = "`same` is p's number of categories, but p here has none (a coin or a family): write q's own"


def unresolved_same(case: dict) -> KeyPath | None:
    """Where q still says ``same`` after expansion (p had no number of categories), if anywhere."""
    q = case.get("q")
    if not isinstance(q, dict) or len(q) != 1:
        return None
    kind, args = next(iter(q.items()))
    if args == SAME:
        return ("q", kind)
    if isinstance(args, dict) and args.get("k") == SAME:
        return ("q", kind, "k")
    return None


def categories(p: Any) -> int | None:
    """The number of categories a p as written has, if it says so (a list, or a generator's k)."""
    if isinstance(p, list):
        return len(p)
    if isinstance(p, dict) and len(p) == 1:
        args = next(iter(p.values()))
        k = _number(args.get("k") if isinstance(args, dict) else args)
        return k if isinstance(k, int) and not isinstance(k, bool) else None
    return None


def is_number(value: Any) -> bool:
    """Whether a value as written is a number (``1e6`` included, which YAML 1.1 reads as text)."""
    return not isinstance(value, bool) and _as_number(value) is not None


def _written(value: Any) -> str:
    """A value as it goes into a case name: a number as Python writes it (without '+')."""
    return repr(_as_number(value)).replace("+", "") if is_number(value) else str(value)


# --------------------------------------------------------------------------
# Validation (the loader's part)


def read_grid(value: Any, checker: _Checker, taken: Sequence[str]) -> tuple[Case, ...] | None:
    """The cases of ``grid:``, each validated as a written case is.

    An error inside an expanded case is reported once, at the line of the value that caused it,
    naming the first case it spoils.  ``taken``: the written cases' names, which no generated name
    may repeat.
    """
    listed = entries(value)
    if not listed or not all(isinstance(e, dict) for e in listed):
        checker.error(("grid",), f"must be a grid (a mapping) or a list of grids, got {_describe(value)}")
        return None
    path = (lambda i: ("grid",)) if not isinstance(value, list) else (lambda i: ("grid", i))
    out: list[Case | None] = []
    names = {name: "cases" for name in taken}
    seen: set = set()
    for i, entry in enumerate(listed):
        if not _entry_is_valid(entry, path(i), checker):
            out.append(None)
            continue
        for made in expand(entry):
            if made.name in names:
                checker.error(
                    path(i), f"makes a case named '{made.name}', which {names[made.name]} already has"
                )
            names.setdefault(made.name, path_text(path(i)))
            where = unresolved_same(made.case)
            if where is not None:
                checker.error(path(i) + where, _NO_SAME)
                out.append(None)
                continue
            case = _case(made.case, path(i), _InCase(checker, path(i), made, seen))
            out.append(None if case is None else dataclasses.replace(case, from_grid=True))
    checker.notes[:] = list(dict.fromkeys(checker.notes))  # one note per value, not per case
    return None if any(c is None for c in out) else tuple(out)


def path_text(path: KeyPath) -> str:
    return "grid" if len(path) == 1 else f"grid[{path[1]}]"


def _entry_is_valid(entry: dict, path: KeyPath, checker: _Checker) -> bool:
    """The entry's own errors: its keys, its name prefix, empty or repeating lists, its size."""
    before = len(checker.issues)
    checker.mapping(entry, path, GRID_KEYS, "name, description, p, q and q_sample, some of them lists")
    for key in ("p", "q"):
        if key not in entry:
            checker.error(path, f"missing key '{key}'")
    if "name" in entry:
        checker.name(entry["name"], path + ("name",))
    swept = sweeps(entry)
    if not swept:
        checker.error(path, "sweeps nothing: give a parameter a list of values (e.g. q: [0.6, 0.7])")
    for s in swept:
        if not s.values:
            checker.error(path + s.path, "lists no values (a grid needs one or more per swept parameter)")
    for where, message in duplicate_values(entry):
        checker.error(path + where, message)
    if swept and size(entry) > MAX_GRID_CASES:
        checker.error(path, f"expands to {size(entry):,} cases, more than {MAX_GRID_CASES:,}")
    return len(checker.issues) == before


class _InCase(_Checker):
    """The checker for one expanded case: errors at the grid value that set them, each once."""

    def __init__(self, parent: _Checker, entry: KeyPath, made: GridCase, seen: set):
        self.__dict__.update(parent.__dict__)  # the same issues and notes lists
        self._entry, self._made, self._seen = entry, made, seen

    def error(self, path: KeyPath, message: str) -> None:
        where = self._entry + located(path[len(self._entry) :], self._made.positions)
        if (where, message) in self._seen:
            return
        self._seen.add((where, message))
        super().error(where, f"in grid case '{self._made.name}': {message}")


def written_cases(config: dict) -> list[dict]:
    """Every case of a resolved config as written: its ``cases``, then each grid's, in order."""
    grid = config.get("grid")
    made = [c.case for entry in entries(grid) for c in expand(entry)] if grid else []
    return list(config.get("cases") or []) + made


#: What the sweep figure can show of an estimator at each n.
SWEEP_Y = ("mean", "bias", "rmse")
#: The sweep figure shows at most this many sample sizes (one panel each).
SWEEP_PANELS = 4


def numeric_sweeps(entry: dict) -> list[Swept]:
    """The swept parameters of a grid entry that can be an axis: numbers, two values or more."""
    return [s for s in sweeps(entry) if len(s.values) > 1 and all(is_number(v) for v in s.values)]


def read_sweep(top: dict, estimators, checkpoints, checker: _Checker) -> dict | None:
    """``sweep: {x, n, estimator, y}`` with its defaults: the sweep figure's axis (the numeric swept
    parameter with the most values), sample sizes (the smallest, a middle and the largest), estimator
    (llr, else the first) and quantity (mean); None when there is no grid to sweep."""
    if "grid" not in top or checker.issues or not estimators or not checkpoints:
        if "sweep" in top and "grid" not in top:
            checker.error(("sweep",), "sweep applies to a grid of cases (grid:)")
        return None
    numeric = [s for entry in entries(top["grid"]) if isinstance(entry, dict) for s in numeric_sweeps(entry)]
    axes = [s.label for s in numeric]
    spec = top.get("sweep", {})
    if checker.mapping(spec, ("sweep",), ("x", "n", "estimator", "y"), "x, n, estimator, y") is None:
        return None
    if not axes:
        if "sweep" in top:
            checker.error(("sweep",), "no swept parameter is a list of two numbers or more to draw against")
        return None
    ns = sorted(set(checkpoints))
    default_n = ns if len(ns) <= 3 else [ns[0], ns[len(ns) // 2], ns[-1]]
    lead = registry.LLR.name if registry.LLR.name in estimators else estimators[0]
    out = {
        "x": spec.get("x", max(reversed(numeric), key=lambda s: len(s.values)).label),  # most values
        "n": spec.get("n", default_n),
        "estimator": spec.get("estimator", lead),
        "y": spec.get("y", "mean"),
    }
    _check_sweep(out, axes, estimators, ns, checker)
    return None if checker.issues else out


def _check_sweep(out: dict, axes: list[str], estimators, ns: list[int], checker: _Checker) -> None:
    if out["x"] not in axes:
        checker.error(
            ("sweep", "x"),
            f"must be a numeric swept parameter of the grid ({', '.join(dict.fromkeys(axes))})",
        )
    if not isinstance(out["n"], list) or not out["n"] or len(out["n"]) > SWEEP_PANELS:
        checker.error(("sweep", "n"), f"must list 1 to {SWEEP_PANELS} of the experiment's sample sizes")
    else:
        for i, n in enumerate(out["n"]):
            if n not in ns:
                checker.error(("sweep", "n", i), f"{n!r} is not one of the experiment's sample sizes")
            elif n in out["n"][:i]:
                checker.error(("sweep", "n", i), f"repeats {n!r} (one panel per sample size)")
    if out["estimator"] not in estimators:
        checker.error(
            ("sweep", "estimator"), f"must be one of the experiment's estimators ({', '.join(estimators)})"
        )
    checker.choice(out["y"], ("sweep", "y"), SWEEP_Y)
