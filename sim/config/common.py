"""What every kind of experiment shares: its common keys, and the one builder of the object."""

from __future__ import annotations

from typing import Any, TypeVar

from .. import registry
from ..precision import Precision
from .cases import Grid
from .checker import _as_number, _Checker
from .model import MAX_REPLICATES, PER_SAMPLE_MAX_N, SAMPLERS, UNITS, Experiment, FitExperiment

_E = TypeVar("_E", Experiment, FitExperiment)
#: Fields an experiment may leave None (everything else None means a value was refused).
_OPTIONAL_FIELDS = ("precision", "sweep")


def _common_keys(top: dict, checker: _Checker) -> dict[str, Any]:
    """Read the keys every kind of experiment has: name, description, seed, replicates, units, sampler.

    Returns a mapping from those names to their values, None where a value
    was refused (the issue is in ``checker``).
    """
    common = {
        "name": checker.name(top["name"], ("name",)) if "name" in top else None,
        "description": checker.text(top.get("description", ""), ("description",)),
        "seed": checker.integer(top.get("seed", 0), ("seed",), 0, 2**63 - 1),
        "replicates": _replicates(top.get("replicates", 1000), checker),
        "units": checker.choice(top.get("units", "nats"), ("units",), UNITS),
        "sampler": checker.choice(top.get("sampler", "counts"), ("sampler",), SAMPLERS),
    }
    if common["description"] is not None and "\n" in common["description"].strip():
        checker.error(("description",), "must be one line")
    return common


#: What each key of ``replicates: {mcse, max}`` is, for the message when it is missing.
_PRECISION_KEYS = {
    "mcse": "the target Monte Carlo standard error",
    "max": "the most replicates a case may have",
}


def _replicates(value: Any, checker: _Checker) -> int | None:
    """A number of replicates, or the ``max`` of ``{mcse, max, estimators}`` (its ``mcse`` and
    ``estimators`` are read by :func:`read_precision` once the estimators are known)."""
    if isinstance(value, dict):
        spec = checker.mapping(value, ("replicates",), ("mcse", "max", "estimators"), "mcse, max, estimators")
        if spec is None:
            return None
        for key, what in _PRECISION_KEYS.items():
            if key not in spec:
                checker.error(("replicates",), f"missing key '{key}' ({what})")
        if "mcse" in spec:
            checker.real(spec["mcse"], ("replicates", "mcse"), 0.0, 1e12, open_lo=True)
        if "max" not in spec:
            return None
        return checker.integer(spec["max"], ("replicates", "max"), 2, MAX_REPLICATES)
    return checker.integer(value, ("replicates",), 2, MAX_REPLICATES)


def read_precision(
    top: dict, estimators: tuple[str, ...] | None, maximum: int | None, checker: _Checker
) -> Precision | None:
    """``replicates: {mcse, max, estimators}`` as a :class:`sim.precision.Precision`, ``maximum``
    being its ``max`` as read (None if a number of replicates is given, or after an error)."""
    spec = top.get("replicates")
    if not isinstance(spec, dict) or "mcse" not in spec or maximum is None or estimators is None:
        return None
    default = [registry.LLR.name] if registry.LLR.name in estimators else list(estimators)
    asked = spec.get("estimators", default)
    if not isinstance(asked, list) or not asked:
        checker.error(("replicates", "estimators"), "must be a non-empty list of the experiment's estimators")
        return None
    for i, name in enumerate(asked):
        if name not in estimators:
            checker.error(
                ("replicates", "estimators", i),
                f"{name!r} is not one of the experiment's estimators ({', '.join(estimators)})",
            )
    if len(set(asked)) != len(asked):
        checker.error(("replicates", "estimators"), "lists an estimator twice")
    if checker.issues:
        return None
    return Precision(float(_as_number(spec["mcse"])), tuple(asked), maximum)


def _check_sampler(sampler: str | None, grid: Grid | None, checker: _Checker) -> None:
    """Refuse the per-sample sampler beyond the sample sizes it can draw one by one."""
    if sampler == "per-sample" and grid is not None and grid.checkpoints[-1] > PER_SAMPLE_MAX_N:
        checker.error(
            ("sampler",),
            f"per-sample draws every observation; N up to {grid.checkpoints[-1]:,} exceeds its limit of "
            f"{PER_SAMPLE_MAX_N:,}: use sampler: counts",
        )


def _build(
    cls: type[_E], checker: _Checker, common: dict[str, Any], grid: Grid | None, **fields: Any
) -> _E | None:
    """The experiment of class ``cls``, or None if any value was refused.

    Parameters
    ----------
    cls : type
        :class:`~sim.config.model.Experiment` or :class:`~sim.config.model.FitExperiment`.
    checker : _Checker
        Its issues (none, or no experiment), notes and source name.
    common : dict
        The keys every kind has, as read by :func:`_common_keys`.
    grid : Grid or None
        The sample sizes.
    **fields
        What this kind of experiment adds (cases, estimators, …).
    """
    required = [v for k, v in fields.items() if k not in _OPTIONAL_FIELDS]
    if checker.issues or grid is None or any(v is None for v in (*common.values(), *required)):
        # A value was refused (None): here, or while reading the YAML (a tag, a key
        # given twice), which the caller reports once, and checker not again.
        return None
    return cls(
        **(common | {"description": common["description"].strip()}),
        n=grid.n,
        checkpoints=grid.checkpoints,
        notes=tuple(checker.notes),
        source=checker.source,
        **fields,
    )
