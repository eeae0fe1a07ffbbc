"""The validated experiment objects, their resolved form and the config limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from .. import distributions as dist
from .. import registry
from ..precision import Precision

#: A convergence experiment's estimators by default (see :mod:`sim.registry`).
ESTIMATORS = registry.names(registry.CONVERGENCE)
#: Estimators a convergence experiment may ask for beyond the default ones.
OPTIONAL_ESTIMATORS = registry.names(registry.OPTIONAL)
#: Estimators taking parameters (``{smoothed_kl: {alpha: 0.5}}``), a convergence experiment's option too.
PARAMETERISED_ESTIMATORS = tuple(registry.PARAMETERISED)
UNITS = ("nats", "bits")
SAMPLERS = ("counts", "per-sample")
KINDS = ("convergence", "fit")
FIT_ESTIMATORS = registry.names(registry.FIT)
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
    "grid",
    "sweep",
    "notes",
)
_CASE_KEYS = ("name", "description", "p", "q", "q_sample")
_FIT_KEYS = (
    *(
        k for k in _TOP_KEYS if k not in ("cases", "grid", "sweep", "notes")
    ),  # save_replicates: accepted, not applied
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

#: Where a value sits in a config: ``("cases", 1, "q")`` is ``cases[1].q``.
KeyPath = tuple[str | int, ...]


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
    q_sample : dict or None
        ``{"ratio": r}`` when q is also observed through a sample of its
        own (r·n draws beside p's n; see :meth:`sim.distributions.Pair.q_sample_size`).
    """

    name: str
    p: Any
    q: Any
    pair: dist.Pair
    description: str | None = None
    q_sample: dict[str, float] | None = None
    #: Expanded from a ``grid:`` entry (the resolved config keeps the grid, not the case).
    from_grid: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The case as it goes into the resolved ``config.yaml``."""
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        d["p"] = self.p
        d["q"] = self.q
        if self.q_sample is not None:
            d["q_sample"] = self.q_sample
        return d


@dataclass(frozen=True, eq=False, kw_only=True)
class BaseExperiment:
    """What every kind of experiment has: its name, sample sizes, seed and outputs.

    ``checkpoints`` are the sample sizes N (strictly increasing integers)
    derived from ``n``, the checkpoint specification as written with its
    defaults filled in.
    """

    name: str
    n: Any
    checkpoints: tuple[int, ...]
    seed: int = 0
    replicates: int = 1000
    units: str = "nats"
    sampler: str = "counts"
    description: str = ""
    notes: tuple[str, ...] = ()
    source: str = field(default="<config>", compare=False)


@dataclass(frozen=True, eq=False, kw_only=True)
class Experiment(BaseExperiment):
    """A validated convergence experiment; build it with :func:`load_config`."""

    cases: tuple[Case, ...]
    estimators: tuple[str, ...] = ESTIMATORS
    kind: str = "convergence"
    save_replicates: bool = True
    #: The ``grid:`` entries as written (see :mod:`sim.config.grids`); their cases are in ``cases``.
    grids: tuple[dict[str, Any], ...] = ()
    #: ``replicates: {mcse, max, estimators}``: replicates chosen by target precision (see
    #: :mod:`sim.precision`); ``replicates`` is then the most a case may have.
    precision: Precision | None = None
    #: ``sweep: {x, n, estimator, y}``: what the sweep figure of a grid shows (see
    #: :func:`sim.config.grids.read_sweep`), every default filled in; None without a grid.
    sweep: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config: every key, every default filled in (a grid as written)."""
        written = [c.to_dict() for c in self.cases if not c.from_grid]
        return (
            _common(self)
            | {"save_replicates": self.save_replicates}
            | ({"cases": written} if written or not self.grids else {})
            | ({"grid": list(self.grids) if len(self.grids) > 1 else self.grids[0]} if self.grids else {})
            | ({"sweep": self.sweep} if self.sweep else {})
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


@dataclass(frozen=True, eq=False, kw_only=True)
class FitExperiment(BaseExperiment):
    """A validated ``kind: fit`` experiment (see :mod:`sim.fitting`).

    ``truth`` is the built data-generating process; ``inputs`` and
    ``truth_spec`` are the keys as written (defaults filled in).
    """

    cases: tuple[FitCase, ...]
    truth: Any
    inputs: dict[str, Any]
    truth_spec: dict[str, Any]
    smoothing: float
    trajectory: dict[str, int]
    estimators: tuple[str, ...] = FIT_ESTIMATORS
    kind: str = "fit"

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


#: The experiment class of each kind.
_CLASSES = dict(zip(KINDS, (Experiment, FitExperiment), strict=True))


def experiment_type(resolved: dict[str, Any]) -> type[Experiment] | type[FitExperiment]:
    """The experiment class a resolved config (a results folder's ``config.yaml``, read as a dict) describes.

    Raises
    ------
    ValueError
        If its ``kind`` is none of :data:`KINDS`.
    """
    kind = resolved.get("kind", KINDS[0])
    if kind not in _CLASSES:
        raise ValueError(f"unknown kind of experiment {kind!r} (known: {', '.join(KINDS)})")
    return _CLASSES[kind]


def _common(experiment) -> dict[str, Any]:
    """The resolved keys every kind of experiment has, in their order."""
    return {
        "name": experiment.name,
        "description": experiment.description,
        "kind": experiment.kind,
        "seed": experiment.seed,
        "replicates": experiment.precision.to_dict()
        if getattr(experiment, "precision", None)
        else experiment.replicates,
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
