"""Experiment configs: YAML in, validated frozen :class:`Experiment` out.

All validation lives here.  :func:`load_config` reads one YAML file,
applies ``--set`` overrides and returns an :class:`Experiment`, or raises
:class:`~sim.errors.ConfigError` listing *every* problem found, each with the
file, line and key path (``coin.yaml:7: cases[1].q: …``).

The YAML is composed with PyYAML's safe loader and converted by hand, so
that a key given twice is an error (PyYAML keeps the last silently), any tag
that would construct an object is refused, and each value keeps its line.

The keys of an experiment::

    name: coin-demo            # required; letters, digits, '.', '_', '-'
    description: …             # optional, one line
    kind: convergence          # optional; the only kind so far
    seed: 2026                 # optional, default 0
    replicates: 2000           # optional, default 1000
    units: nats                # nats (default) | bits
    n: {min: 1, max: 1000000, points: 25}   # or a list: [1, 10, 100]
    estimators: [llr, cross_entropy, entropy, plugin_kl]   # default: all
    sampler: counts            # counts (default) | per-sample
    cases:                     # required, at least one
      - name: fair-vs-biased
        p: 0.5                 # a coin: P(heads)
        q: 0.8
      - name: die
        p: [0.1, 0.2, 0.3, 0.4]
        q: {uniform: 4}        # or {zipf: {k, s}}, {dirichlet: {k, alpha, seed}}
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import distributions as dist
from .errors import ConfigError, ConfigIssue

__all__ = [
    "ESTIMATORS",
    "Case",
    "Experiment",
    "checkpoint_grid",
    "dump_config",
    "load_config",
    "parse_config",
]

ESTIMATORS = ("llr", "cross_entropy", "entropy", "plugin_kl")
UNITS = ("nats", "bits")
SAMPLERS = ("counts", "per-sample")
KINDS = ("convergence", "fit")
FIT_ESTIMATORS = ("kl_fitted", "train_cross_entropy", "test_cross_entropy")
#: Largest number of cells (inputs × classes) and of parameters of a fit experiment.
MAX_CELLS = 10_000
MAX_PARAMETERS = 400
#: Largest sample size of a fit experiment: its optimiser's error (~1e-13 in KL)
#: must stay far below the statistical error d/(2N) (see sim.fitting).
FIT_MAX_N = 10**7

#: Largest sample size: counts stay exact integers in float64 below 2**53.
MAX_N = 2**53
#: Largest number of categories a case may have.
MAX_K = 10**7
#: The per-sample sampler draws every observation; beyond this N use counts.
PER_SAMPLE_MAX_N = 10**7
#: Largest number of replicates.
MAX_REPLICATES = 10**9
#: Explicit probabilities may miss a sum of 1 by this much, as decimals like
#: 0.333333 or float32 roundings do; they are then renormalised, and the
#: resolved config says so in ``notes``.
SUM_TOLERANCE = 1e-5

DEFAULT_POINTS = 20
#: A YAML document may expand (through aliases) to at most this many values …
MAX_NODES = 2_000_000
#: … nested at most this deep.
MAX_DEPTH = 100

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_NUMBER_RE = re.compile(r"[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TOP_KEYS = (
    "name",
    "description",
    "kind",
    "seed",
    "replicates",
    "units",
    "n",
    "estimators",
    "sampler",
    "save_replicates",
    "cases",
    "notes",
)
_CASE_KEYS = ("name", "description", "p", "q")
_FIT_KEYS = (
    *(k for k in _TOP_KEYS if k not in ("cases", "notes", "save_replicates")),
    "smoothing",
    "inputs",
    "truth",
    "trajectory",
    "cases",
    "notes",
)
_FIT_CASE_KEYS = ("name", "description", "model")
_GENERATORS = {
    "uniform": ("k",),
    "zipf": ("k", "s"),
    "dirichlet": ("k", "alpha", "seed"),
}

Path_ = tuple[str | int, ...]


# --------------------------------------------------------------------------
# The validated objects


@dataclass(frozen=True, eq=False)
class Case:
    """One (p, q) pair of an experiment.

    Attributes
    ----------
    name : str
        Unique within the experiment.
    p, q : object
        The distributions as written in the config (a number, a list or a
        generator mapping), normalised to plain YAML types.
    pair : sim.distributions.Pair
        The built distributions and their analytic quantities.
    description : str or None
        Optional free text.
    """

    name: str
    p: Any
    q: Any
    pair: dist.Pair
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The case as it goes into the resolved ``config.yaml``."""
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        d["p"] = self.p
        d["q"] = self.q
        return d


@dataclass(frozen=True, eq=False)
class Experiment:
    """A validated experiment; build it with :func:`load_config`.

    ``checkpoints`` are the sample sizes N (strictly increasing integers)
    derived from ``n``, the checkpoint specification as written with its
    defaults filled in.
    """

    name: str
    cases: tuple[Case, ...]
    n: Any
    checkpoints: tuple[int, ...]
    seed: int = 0
    replicates: int = 1000
    units: str = "nats"
    estimators: tuple[str, ...] = ESTIMATORS
    sampler: str = "counts"
    kind: str = "convergence"
    description: str = ""
    save_replicates: bool = True
    notes: tuple[str, ...] = ()
    source: str = field(default="<config>", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config: every key, every default filled in."""
        return (
            _common(self)
            | {
                "save_replicates": self.save_replicates,
                "cases": [c.to_dict() for c in self.cases],
            }
            | _notes(self.notes)
        )


@dataclass(frozen=True, eq=False)
class FitCase:
    """One model family fitted in a ``kind: fit`` experiment."""

    name: str
    model: str
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        d["model"] = self.model
        return d


@dataclass(frozen=True, eq=False)
class FitExperiment:
    """A validated ``kind: fit`` experiment (see :mod:`sim.fitting`).

    ``truth`` is the built data-generating process; ``inputs`` and
    ``truth_spec`` are the keys as written (defaults filled in).
    """

    name: str
    cases: tuple[FitCase, ...]
    n: Any
    checkpoints: tuple[int, ...]
    truth: Any
    inputs: dict[str, Any]
    truth_spec: dict[str, Any]
    smoothing: float
    trajectory: dict[str, int]
    seed: int = 0
    replicates: int = 1000
    units: str = "nats"
    estimators: tuple[str, ...] = FIT_ESTIMATORS
    sampler: str = "counts"
    kind: str = "fit"
    description: str = ""
    notes: tuple[str, ...] = ()
    source: str = field(default="<config>", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config: every key, every default filled in."""
        return (
            _common(self)
            | {
                "smoothing": self.smoothing,
                "inputs": self.inputs,
                "truth": self.truth_spec,
                "trajectory": self.trajectory,
                "cases": [c.to_dict() for c in self.cases],
            }
            | _notes(self.notes)
        )


def _common(experiment) -> dict[str, Any]:
    """The resolved keys every kind of experiment has, in their order."""
    return {
        "name": experiment.name,
        "description": experiment.description,
        "kind": experiment.kind,
        "seed": experiment.seed,
        "replicates": experiment.replicates,
        "units": experiment.units,
        "n": experiment.n,
        "estimators": list(experiment.estimators),
        "sampler": experiment.sampler,
    }


def _notes(notes: tuple[str, ...]) -> dict[str, Any]:
    """The ``notes`` key of a resolved config: what was accepted but adjusted.

    It is informational; a config that has it is read as if it had not (the
    notes are derived again).
    """
    return {"notes": list(notes)} if notes else {}


def dump_config(experiment: Experiment | FitExperiment) -> str:
    """The resolved config as YAML text; loading it reproduces the experiment."""
    resolved = experiment.to_dict()
    notes = resolved.pop("notes", None)
    text = yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
    if notes:
        text += yaml.safe_dump({"notes": notes}, allow_unicode=True, default_flow_style=False, width=1000)
    return text


def checkpoint_grid(lo: int, hi: int, points: int) -> tuple[int, ...]:
    """``points`` distinct integers from ``lo`` to ``hi``, spaced evenly in log N.

    Rounding a geometric grid can repeat small values (1, 1, 2, …); each
    value is raised to one above its predecessor where needed, and capped so
    that the remaining points still fit below ``hi``.  Requires
    ``hi − lo + 1 ≥ points``.
    """
    if points == 1:
        return (hi,)
    ideal = np.geomspace(lo, hi, points)
    out: list[int] = []
    for i, x in enumerate(ideal):
        v = lo if i == 0 else hi if i == points - 1 else round(float(x))
        if out:
            v = max(v, out[-1] + 1)
        out.append(min(v, hi - (points - 1 - i)))
    return tuple(out)


# --------------------------------------------------------------------------
# YAML → plain data with line numbers


_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("null", "bool", "int", "float", "str")}


def _tag(tag: str) -> str:
    return "!!" + tag[len(_STD) :] if tag.startswith(_STD) else tag


def _compose(text: str, source: str) -> tuple[Any, dict[Path_, int], list[ConfigIssue]]:
    """Parse YAML text into plain data, a map key-path → line, and issues."""
    issues: list[ConfigIssue] = []
    lines: dict[Path_, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        issues.append(ConfigIssue(source, None, "", "invalid YAML: nested too deeply"))
        return None, lines, issues
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        issues.append(ConfigIssue(source, line, "", f"invalid YAML: {problem}"))
        return None, lines, issues
    except yaml.YAMLError as exc:  # reader errors: bad bytes, control characters
        issues.append(ConfigIssue(source, None, "", f"invalid YAML: {exc}"))
        return None, lines, issues
    if node is None:
        return None, lines, issues
    constructor = yaml.constructor.SafeConstructor()
    budget = [MAX_NODES]

    class TooLarge(Exception):
        pass

    def issue(n: yaml.Node, path: Path_, msg: str) -> None:
        issues.append(ConfigIssue(source, n.start_mark.line + 1, format_path(path), msg))

    def convert(n: yaml.Node, path: Path_) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or len(path) > MAX_DEPTH:
            raise TooLarge(n)
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            if n.tag != _STD + "map":
                issue(n, path, f"the tag {_tag(n.tag)} is not allowed")
                return None
            out: dict[str, Any] = {}
            first: dict[str, int] = {}
            for k, v in n.value:
                if k.tag == _STD + "merge":
                    issue(k, path, "merge keys (<<) are not supported; write the keys out")
                    continue
                if not isinstance(k, yaml.ScalarNode) or k.tag != _STD + "str":
                    issue(k, path, f"keys must be names, not {k.value!r}")
                    continue
                key = k.value
                line = k.start_mark.line + 1
                if key in first:
                    issue(k, path + (key,), f"key given twice (first on line {first[key]})")
                    continue
                first[key] = line
                lines[path + (key,)] = line
                out[key] = convert(v, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            if n.tag != _STD + "seq":
                issue(n, path, f"the tag {_tag(n.tag)} is not allowed")
                return None
            return [convert(v, path + (i,)) for i, v in enumerate(n.value)]
        if n.tag not in _SCALAR_TAGS:
            what = "dates are" if n.tag == _STD + "timestamp" else f"the tag {_tag(n.tag)} is"
            issue(n, path, f"{what} not allowed here; quote the value if it is text")
            return None
        try:
            return constructor.construct_object(n)
        except (yaml.YAMLError, ValueError) as exc:
            issue(n, path, f"cannot read {n.value!r}: {exc}")
            return None

    try:
        return convert(node, ()), lines, issues
    except TooLarge as exc:
        at = exc.args[0].start_mark.line + 1
        what = f"more than {MAX_NODES:,} values (aliases expand)" if budget[0] < 0 else "nested too deeply"
        return (
            None,
            lines,
            [ConfigIssue(source, at, "", f"the document holds {what}; a config is far smaller")],
        )


def format_path(path: Iterable[str | int]) -> str:
    """``("cases", 1, "q")`` → ``"cases[1].q"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _parse_key(key: str) -> Path_ | None:
    """``"cases[1].q"`` or ``"cases.1.q"`` → ``("cases", 1, "q")``."""
    parts: list[str | int] = []
    for token in re.sub(r"\[(\d+)\]", r".\1", key).split("."):
        if not token:
            return None
        parts.append(int(token) if token.isdigit() else token)
    return tuple(parts) if parts and isinstance(parts[0], str) else None


# --------------------------------------------------------------------------
# Validation


class _Checker:
    """Collects issues, locating each key path in the file or an override."""

    def __init__(
        self,
        source: str,
        lines: dict[Path_, int],
        overrides: dict[Path_, str],
        skip: set[Path_] = frozenset(),
    ):
        self.source = source
        self.lines = lines
        self.overrides = overrides
        self.skip = skip  # paths already reported while reading the YAML
        self.issues: list[ConfigIssue] = []
        self.notes: list[str] = []  # what was accepted but adjusted, for the resolved config

    def error(self, path: Path_, message: str) -> None:
        if any(path[:i] in self.skip for i in range(1, len(path) + 1)):
            return
        for i in range(len(path), -1, -1):
            if path[:i] in self.overrides:
                self.issues.append(ConfigIssue(self.overrides[path[:i]], None, format_path(path), message))
                return
        line = next((self.lines[path[:i]] for i in range(len(path), -1, -1) if path[:i] in self.lines), None)
        self.issues.append(ConfigIssue(self.source, line, format_path(path), message))

    # ---- scalar readers: return None after reporting an error

    def mapping(self, value: Any, path: Path_, allowed: Sequence[str], what: str) -> dict | None:
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of {what}, got {_describe(value)}")
            return None
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                tip = f"; did you mean '{hint[0]}'?" if hint else f" (allowed: {', '.join(allowed)})"
                self.error(path + (key,), f"unknown key{tip}")
        return value

    def integer(self, value: Any, path: Path_, lo: int, hi: int) -> int | None:
        number = _as_number(value)
        if number is None or isinstance(value, bool):
            self.error(path, f"must be a whole number, got {_describe(value)}")
            return None
        if isinstance(number, float):
            if not (math.isfinite(number) and number.is_integer()):
                self.error(path, f"must be a whole number, got {value!r}")
                return None
            number = int(number)
        if not lo <= number <= hi:
            self.error(path, f"must be between {lo:,} and {hi:,}, got {number:,}")
            return None
        return number

    def real(self, value: Any, path: Path_, lo: float, hi: float, *, open_lo: bool = False) -> float | None:
        number = _as_number(value)
        if number is None or isinstance(value, bool):
            self.error(path, f"must be a number, got {_describe(value)}")
            return None
        number = float(number)
        if not math.isfinite(number):
            self.error(path, f"must be a finite number, got {value!r}")
            return None
        if number < lo or number > hi or (open_lo and number == lo):
            bracket = "(" if open_lo else "["
            self.error(path, f"must be in {bracket}{lo:g}, {hi:g}], got {number!r}")
            return None
        return number

    def choice(self, value: Any, path: Path_, options: Sequence[str]) -> str | None:
        if isinstance(value, str) and value in options:
            return value
        hint = difflib.get_close_matches(str(value), options, n=1) if isinstance(value, str) else []
        tip = f"; did you mean '{hint[0]}'?" if hint else ""
        self.error(path, f"must be one of {', '.join(options)}, got {_describe(value)}{tip}")
        return None

    def name(self, value: Any, path: Path_) -> str | None:
        if not isinstance(value, str):
            self.error(path, f"must be a name (text), got {_describe(value)}; quote it")
            return None
        if not _NAME_RE.fullmatch(value) or value.startswith(".") or len(value) > 100:
            self.error(
                path,
                f"{value!r} is not a usable name: use 1-100 letters, digits, '.', '_' "
                "or '-', not starting with '.'",
            )
            return None
        return value

    def text(self, value: Any, path: Path_) -> str | None:
        if not isinstance(value, str):
            self.error(path, f"must be text, got {_describe(value)}")
            return None
        return value


def _as_number(value: Any) -> int | float | None:
    """A YAML number, or a string YAML 1.1 did not read as one (``1e6``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        text = value.strip().replace("_", "")
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()} (YAML reads yes/no/on/off/true/false as booleans)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value)


def _checkpoints(value: Any, path: Path_, ck: _Checker) -> tuple[Any, tuple[int, ...]] | None:
    if isinstance(value, list):
        if not value:
            ck.error(path, "must list at least one sample size")
            return None
        ns = [ck.integer(v, path + (i,), 1, MAX_N) for i, v in enumerate(value)]
        if any(v is None for v in ns):
            return None
        for i in range(1, len(ns)):
            if ns[i] <= ns[i - 1]:
                ck.error(path + (i,), f"sample sizes must increase strictly; {ns[i]:,} follows {ns[i - 1]:,}")
                return None
        return list(ns), tuple(ns)
    spec = ck.mapping(value, path, ("min", "max", "points"), "min, max and points, or a list of sizes")
    if spec is None:
        return None
    if "max" not in spec:
        ck.error(path, "missing key 'max' (the largest sample size)")
        return None
    lo = ck.integer(spec.get("min", 1), path + ("min",), 1, MAX_N)
    hi = ck.integer(spec["max"], path + ("max",), 1, MAX_N)
    points = ck.integer(spec.get("points", DEFAULT_POINTS), path + ("points",), 1, 10_000)
    if lo is None or hi is None or points is None:
        return None
    if hi < lo:
        ck.error(path + ("max",), f"max ({hi:,}) is below min ({lo:,})")
        return None
    if points == 1 and lo != hi:
        ck.error(path + ("points",), "one point cannot include both min and max; use points ≥ 2")
        return None
    if hi - lo + 1 < points:
        ck.error(path + ("points",), f"only {hi - lo + 1} distinct sizes lie in [{lo}, {hi}], not {points}")
        return None
    return {"min": lo, "max": hi, "points": points}, checkpoint_grid(lo, hi, points)


def _distribution(value: Any, path: Path_, ck: _Checker) -> tuple[Any, dist.Distribution] | None:
    """Read p or q: a coin, a list of probabilities or a generator mapping."""
    if isinstance(value, list):
        if not value:
            ck.error(path, "an empty list of probabilities")
            return None
        if len(value) > MAX_K:
            ck.error(path, f"more than {MAX_K:,} categories")
            return None
        probs = [ck.real(v, path + (i,), 0.0, 1.0) for i, v in enumerate(value)]
        if any(v is None for v in probs):
            return None
        total = math.fsum(probs)
        if abs(total - 1.0) > SUM_TOLERANCE:
            ck.error(path, f"probabilities sum to {total:.12g}, not 1 (tolerance {SUM_TOLERANCE:g})")
            return None
        if abs(total - 1.0) > 1e-12:
            ck.notes.append(f"{format_path(path)}: probabilities summed to {total:.15g}; divided by that sum")
        return probs, dist.categorical(probs)
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in _GENERATORS:
            keys = ", ".join(map(str, value)) or "nothing"
            hint = difflib.get_close_matches(str(next(iter(value), "")), _GENERATORS, n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else ""
            ck.error(
                path,
                f"a generated distribution takes exactly one of {', '.join(_GENERATORS)}, got {keys}{tip}",
            )
            return None
        kind, args = next(iter(value.items()))
        gpath = path + (kind,)
        if kind == "uniform" and not isinstance(args, dict):
            args = {"k": args}
            bare = True
        else:
            bare = False
        args = ck.mapping(args, gpath, _GENERATORS[kind], ", ".join(_GENERATORS[kind]))
        if args is None:
            return None
        missing = [k for k in _GENERATORS[kind] if k not in args]
        for k in missing:
            ck.error(gpath, f"missing key '{k}'")
        if missing:
            return None
        kpath = gpath if bare else gpath + ("k",)
        k = ck.integer(args["k"], kpath, 1, MAX_K)
        if kind == "uniform":
            return None if k is None else ({kind: k} if bare else {kind: {"k": k}}, dist.uniform(k))
        if kind == "zipf":
            s = ck.real(args["s"], gpath + ("s",), 0.0, 1e6)
            if k is None or s is None:
                return None
            return {kind: {"k": k, "s": s}}, dist.zipf(k, s)
        alpha = ck.real(args["alpha"], gpath + ("alpha",), 0.0, 1e12, open_lo=True)
        seed = ck.integer(args["seed"], gpath + ("seed",), 0, 2**63 - 1)
        if k is None or alpha is None or seed is None:
            return None
        return {kind: {"k": k, "alpha": alpha, "seed": seed}}, dist.dirichlet(k, alpha, seed)
    heads = ck.real(value, path, 0.0, 1.0) if _as_number(value) is not None else None
    if heads is None:
        if _as_number(value) is None:
            ck.error(
                path,
                f"must be a probability (a coin), a list of probabilities or one of "
                f"{{uniform: K}}, {{zipf: {{k, s}}}}, {{dirichlet: {{k, alpha, seed}}}}; got {_describe(value)}",
            )
        return None
    return heads, dist.coin(heads)


def _case(value: Any, path: Path_, ck: _Checker) -> Case | None:
    spec = ck.mapping(value, path, _CASE_KEYS, "name, p and q")
    if spec is None:
        return None
    for key in ("name", "p", "q"):
        if key not in spec:
            ck.error(path, f"missing key '{key}'")
    name = ck.name(spec["name"], path + ("name",)) if "name" in spec else None
    desc = ck.text(spec["description"], path + ("description",)) if "description" in spec else None
    p = _distribution(spec["p"], path + ("p",), ck) if "p" in spec else None
    q = _distribution(spec["q"], path + ("q",), ck) if "q" in spec else None
    if name is None or p is None or q is None or ("description" in spec and desc is None):
        return None
    (p_raw, p_dist), (q_raw, q_dist) = p, q
    if p_dist.k != q_dist.k:
        ck.error(path + ("q",), f"q has {q_dist.k:,} categories but p has {p_dist.k:,}")
        return None
    bad = np.flatnonzero((p_dist.probs > 0) & (q_dist.probs <= 0))
    if bad.size:
        i = int(bad[0])
        ck.error(
            path + ("q",),
            f"q is 0 for category {i} where p = {p_dist.probs[i]:.6g} > 0, so KL(p‖q) is infinite",
        )
        return None
    return Case(name, p_raw, q_raw, dist.Pair(p_dist, q_dist), desc)


def _experiment(data: Any, ck: _Checker) -> Experiment | FitExperiment | None:
    if data is None:
        ck.error((), "the config is empty; it needs at least 'name', 'n' and 'cases'")
        return None
    kind = ck.choice(
        data.get("kind", "convergence") if isinstance(data, dict) else "convergence", ("kind",), KINDS
    )
    fit = kind == "fit"
    top = ck.mapping(data, (), _FIT_KEYS if fit else _TOP_KEYS, "experiment keys")
    if top is None:
        return None
    for key in ("name", "n", "cases") + (("truth",) if fit else ()):
        if key not in top:
            ck.error((), f"missing key '{key}'")
    common = {
        "name": ck.name(top["name"], ("name",)) if "name" in top else None,
        "description": ck.text(top.get("description", ""), ("description",)),
        "seed": ck.integer(top.get("seed", 0), ("seed",), 0, 2**63 - 1),
        "replicates": ck.integer(top.get("replicates", 1000), ("replicates",), 2, MAX_REPLICATES),
        "units": ck.choice(top.get("units", "nats"), ("units",), UNITS),
        "sampler": ck.choice(top.get("sampler", "counts"), ("sampler",), SAMPLERS),
    }
    if common["description"] is not None and "\n" in common["description"].strip():
        ck.error(("description",), "must be one line")
    grid = _checkpoints(top["n"], ("n",), ck) if "n" in top else None
    names = FIT_ESTIMATORS if fit else ESTIMATORS
    estimators = _estimators(top.get("estimators", list(names)), ck, names)
    if common["sampler"] == "per-sample" and grid is not None and grid[1][-1] > PER_SAMPLE_MAX_N:
        ck.error(
            ("sampler",),
            f"per-sample draws every observation; N up to {grid[1][-1]:,} exceeds its limit of "
            f"{PER_SAMPLE_MAX_N:,}: use sampler: counts",
        )
    if fit:
        if grid is not None and grid[1][-1] > FIT_MAX_N:
            ck.error(
                ("n",),
                f"a fit experiment goes up to N = {FIT_MAX_N:,}, not {grid[1][-1]:,} (see sim.fitting)",
            )
        return _fit_experiment(top, ck, common, grid, estimators)
    cases = _cases(top["cases"], ck) if "cases" in top else None
    save = top.get("save_replicates", True)
    if not isinstance(save, bool):
        ck.error(("save_replicates",), f"must be true or false, got {_describe(save)}")
    if ck.issues:
        return None
    common["description"] = common["description"].strip()
    return Experiment(
        save_replicates=save,
        cases=cases,
        n=grid[0],
        checkpoints=grid[1],
        estimators=estimators,
        kind=kind,
        notes=tuple(ck.notes),
        source=ck.source,
        **common,
    )


def _fit_experiment(top: dict, ck: _Checker, common: dict, grid, estimators) -> FitExperiment | None:
    from . import fitting

    smoothing = ck.real(top.get("smoothing", 0.0), ("smoothing",), 0.0, 1e6)
    truth = _truth(top.get("inputs"), top.get("truth"), ck) if "truth" in top else None
    cases = _fit_cases(top["cases"], ck) if "cases" in top else None
    trajectory = None
    if grid is not None and common["replicates"] is not None:
        spec = top.get("trajectory", {})
        spec = ck.mapping(spec, ("trajectory",), ("replicate", "n"), "replicate and n")
        if spec is not None:
            rep = ck.integer(
                spec.get("replicate", 0), ("trajectory", "replicate"), 0, common["replicates"] - 1
            )
            n = ck.integer(spec.get("n", grid[1][-1]), ("trajectory", "n"), 1, MAX_N)
            if n is not None and n not in grid[1]:
                ck.error(("trajectory", "n"), f"{n:,} is not one of the sample sizes n")
            trajectory = {"replicate": rep, "n": n}
    if truth is not None and cases is not None:
        built = truth[2]
        for i, c in enumerate(cases):
            d = fitting.parameters(c.model, built)
            if d > MAX_PARAMETERS:
                ck.error(("cases", i, "model"), f"{d} parameters; at most {MAX_PARAMETERS} are supported")
    if ck.issues:
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
        notes=tuple(ck.notes),
        source=ck.source,
        **common,
    )


def _numbers(
    value: Any, path: Path_, ck: _Checker, lo: float, hi: float, length: int | None = None
) -> list | None:
    if not isinstance(value, list) or not value:
        ck.error(path, f"must be a non-empty list of numbers, got {_describe(value)}")
        return None
    if length is not None and len(value) != length:
        ck.error(path, f"must have {length} entries, got {len(value)}")
        return None
    out = [ck.real(v, (*path, i), lo, hi) for i, v in enumerate(value)]
    return None if any(v is None for v in out) else out


def _truth(inputs: Any, truth: Any, ck: _Checker):
    """Read ``inputs`` and ``truth`` into (inputs as resolved, truth as written, Truth)."""
    from . import fitting

    spec = ck.mapping(truth, ("truth",), ("table", "weights"), "table or weights")
    ispec = ck.mapping(
        inputs if inputs is not None else {}, ("inputs",), ("probs", "features"), "probs and features"
    )
    if spec is None or ispec is None:
        return None
    if len(spec) != 1:
        ck.error(("truth",), "give exactly one of 'table' (p(y|x) per input) or 'weights' (softmax weights)")
        return None
    features = None
    if "features" in ispec:
        rows = ispec["features"]
        if not isinstance(rows, list) or not rows:
            ck.error(("inputs", "features"), "must be a list of feature vectors, one per input")
            return None
        first = len(rows[0]) if isinstance(rows[0], list) else None
        features = [_numbers(r, ("inputs", "features", i), ck, -1e6, 1e6, first) for i, r in enumerate(rows)]
        if any(f is None for f in features):
            return None
    if "table" in spec:
        rows = spec["table"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
            ck.error(("truth", "table"), "must be a list of probability lists, one per input")
            return None
        table = [_distribution(r, ("truth", "table", i), ck) for i, r in enumerate(rows)]
        if any(t is None for t in table):
            return None
        if len({t[1].k for t in table}) != 1:
            ck.error(("truth", "table"), "every input must have the same number of classes")
            return None
        matrix = np.array([t[1].probs for t in table])
        raw_truth = {"table": [t[0] for t in table]}
    else:
        f = len(features[0]) if features else 0
        rows = spec["weights"]
        if not isinstance(rows, list) or len(rows) < 2:
            ck.error(("truth", "weights"), "must be a list of K ≥ 2 weight rows, one per class")
            return None
        weights = [_numbers(r, ("truth", "weights", i), ck, -100.0, 100.0, 1 + f) for i, r in enumerate(rows)]
        if any(w is None for w in weights):
            return None
        phi = np.hstack([np.ones((len(features) if features else 1, 1)), np.array(features or [[]] * 1)])
        matrix = np.exp(fitting.log_softmax(phi @ np.array(weights).T))
        raw_truth = {"weights": weights}
    x, k = matrix.shape
    if features is not None and len(features) != x:
        ck.error(("inputs", "features"), f"has {len(features)} rows but the truth has {x} inputs")
        return None
    if k < 2 or x * k > MAX_CELLS:
        ck.error(("truth",), f"needs 2 or more classes and at most {MAX_CELLS:,} cells (inputs × classes)")
        return None
    if "probs" in ispec:
        probs = _numbers(ispec["probs"], ("inputs", "probs"), ck, 0.0, 1.0, x)
        if probs is None:
            return None
        if min(probs) <= 0 or abs(math.fsum(probs) - 1.0) > SUM_TOLERANCE:
            ck.error(
                ("inputs", "probs"),
                f"input probabilities must be positive and sum to 1 (tolerance {SUM_TOLERANCE:g})",
            )
            return None
        if abs(math.fsum(probs) - 1.0) > 1e-12:
            ck.notes.append(
                f"inputs.probs: probabilities summed to {math.fsum(probs)!r}; divided by that sum"
            )
    else:
        probs = [1.0 / x] * x
    pi = np.array(probs) / math.fsum(probs)
    phi = np.array(features) if features is not None else np.zeros((x, 0))
    resolved_inputs = {"probs": probs} | ({"features": features} if features is not None else {})
    return resolved_inputs, raw_truth, fitting.Truth(pi, matrix, phi)


def _fit_cases(value: Any, ck: _Checker) -> tuple[FitCase, ...] | None:
    from .fitting import FAMILIES

    if not isinstance(value, list) or not value:
        ck.error(("cases",), f"must be a non-empty list of models, got {_describe(value)}")
        return None
    out, seen = [], {}
    for i, v in enumerate(value):
        path = ("cases", i)
        spec = ck.mapping(v, path, _FIT_CASE_KEYS, "name and model")
        if spec is None:
            out.append(None)
            continue
        for key in ("name", "model"):
            if key not in spec:
                ck.error(path, f"missing key '{key}'")
        name = ck.name(spec["name"], (*path, "name")) if "name" in spec else None
        model = ck.choice(spec["model"], (*path, "model"), FAMILIES) if "model" in spec else None
        desc = ck.text(spec["description"], (*path, "description")) if "description" in spec else None
        if name in seen:
            ck.error((*path, "name"), f"case name '{name}' is already used by cases[{seen[name]}]")
        if name is not None:
            seen.setdefault(name, i)
        out.append(FitCase(name, model, desc) if name and model else None)
    return None if any(c is None for c in out) else tuple(out)


def _estimators(value: Any, ck: _Checker, names: Sequence[str] = ESTIMATORS) -> tuple[str, ...] | None:
    path: Path_ = ("estimators",)
    if not isinstance(value, list) or not value:
        ck.error(path, f"must be a non-empty list of {', '.join(names)}, got {_describe(value)}")
        return None
    out = []
    for i, v in enumerate(value):
        e = ck.choice(v, path + (i,), names)
        if e is not None and e in out:
            ck.error(path + (i,), f"'{e}' is listed twice")
        elif e is not None:
            out.append(e)
    return tuple(out) if len(out) == len(value) else None


def _cases(value: Any, ck: _Checker) -> tuple[Case, ...] | None:
    if not isinstance(value, list) or not value:
        ck.error(("cases",), f"must be a non-empty list of cases, got {_describe(value)}")
        return None
    cases = [_case(v, ("cases", i), ck) for i, v in enumerate(value)]
    seen: dict[str, int] = {}
    for i, v in enumerate(value):
        name = v.get("name") if isinstance(v, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            ck.error(("cases", i, "name"), f"case name '{name}' is already used by cases[{seen[name]}]")
        seen.setdefault(name, i)
    return None if any(c is None for c in cases) else tuple(cases)


# --------------------------------------------------------------------------
# Entry points


def _apply_override(data: Any, item: str, overrides: dict[Path_, str]) -> list[ConfigIssue]:
    source = f"--set {item.split('=', 1)[0]}"
    if "=" not in item:
        return [ConfigIssue(source, None, "", "must be KEY=VALUE, e.g. --set replicates=500")]
    key, text = item.split("=", 1)
    path = _parse_key(key.strip())
    if path is None:
        return [ConfigIssue(source, None, "", f"{key!r} is not a key path like n.max or cases[0].p")]
    value, _, issues = _compose(text, source)
    if issues:
        return issues
    if not isinstance(data, dict):
        return [ConfigIssue(source, None, "", "the config is not a mapping of keys")]
    target: Any = data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(target, dict) and isinstance(part, str):
            target = target.setdefault(part, [] if isinstance(nxt, int) else {})
        elif isinstance(target, list) and isinstance(part, int) and part < len(target):
            target = target[part]
        else:
            return [ConfigIssue(source, None, format_path(path[: i + 1]), "no such key to set")]
    last = path[-1]
    if isinstance(target, dict) and isinstance(last, str):
        target[last] = value
    elif isinstance(target, list) and isinstance(last, int) and last <= len(target):
        if last == len(target):
            target.append(value)
        else:
            target[last] = value
    else:
        return [ConfigIssue(source, None, format_path(path), "no such key to set")]
    overrides[path] = source
    return []


def parse_config(text: str, source: str = "<config>", overrides: Sequence[str] = ()) -> Experiment:
    """Validate YAML ``text`` (named ``source`` in messages) into an Experiment.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        The name used in error messages, normally the file's path.
    overrides : sequence of str
        ``KEY=VALUE`` items as given to ``--set``; ``KEY`` is a dotted path
        (``n.max``, ``cases[0].q``) and ``VALUE`` is parsed as YAML.

    Raises
    ------
    sim.errors.ConfigError
        Listing every problem found: in the YAML, in the overrides and in
        the values.  A value that could not be read is reported once.
    """
    data, lines, issues = _compose(text, source)
    overridden: dict[Path_, str] = {}
    for item in overrides:
        issues += _apply_override(data, item, overridden)
    if data is None and any(i.line is not None or not i.path for i in issues):
        raise ConfigError(issues)  # nothing readable to validate
    ck = _Checker(source, lines, overridden, skip={_parse_key(i.path) or () for i in issues if i.path})
    experiment = _experiment(data, ck)
    issues += ck.issues
    if issues or experiment is None:
        raise ConfigError(issues)
    return experiment


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """Read and validate the YAML experiment at ``path``.

    See :func:`parse_config`; errors name ``path`` as it was given.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(source, None, "", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(source, None, "", "is a folder, not a YAML file")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(source, None, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(source, None, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return parse_config(text, source, overrides)


def resolve_paths(configs: Iterable[str | Path], default_dir: str | Path = "configs") -> list[Path]:
    """The config files to run: those given, or every ``*.yaml`` in ``default_dir``."""
    paths = [Path(c) for c in configs]
    if paths:
        return paths
    found = sorted(Path(default_dir).glob("*.yaml"))
    if not found:
        raise ConfigError(
            [ConfigIssue(str(default_dir), None, "", "no CONFIG given and no *.yaml files here to run")]
        )
    return found


def load_all(configs: Iterable[str | Path], overrides: Sequence[str] = ()) -> list[Experiment]:
    """Load every config, collecting the problems of all of them before raising.

    Also refuses two configs that share an experiment ``name``, since they
    would write to the same results folder.
    """
    experiments: list[Experiment] = []
    issues: list[ConfigIssue] = []
    for path in configs:
        try:
            experiments.append(load_config(path, overrides))
        except ConfigError as exc:
            issues += exc.issues
    seen: dict[str, str] = {}
    for e in experiments:
        if e.name in seen:
            issues.append(
                ConfigIssue(
                    e.source,
                    None,
                    "name",
                    f"'{e.name}' is also the name of {seen[e.name]}; results would collide",
                )
            )
        seen.setdefault(e.name, e.source)
    if issues:
        raise ConfigError(issues)
    return experiments
