"""What every kind of experiment shares: its common keys, and the one builder of the object."""

from __future__ import annotations

from typing import Any, TypeVar

from .cases import Grid
from .checker import _Checker
from .model import MAX_REPLICATES, PER_SAMPLE_MAX_N, SAMPLERS, UNITS, Experiment, FitExperiment

_E = TypeVar("_E", Experiment, FitExperiment)


def _common_keys(top: dict, checker: _Checker) -> dict[str, Any]:
    """Read the keys every kind of experiment has: name, description, seed, replicates, units, sampler.

    Returns a mapping from those names to their values, None where a value
    was refused (the issue is in ``checker``).
    """
    common = {
        "name": checker.name(top["name"], ("name",)) if "name" in top else None,
        "description": checker.text(top.get("description", ""), ("description",)),
        "seed": checker.integer(top.get("seed", 0), ("seed",), 0, 2**63 - 1),
        "replicates": checker.integer(top.get("replicates", 1000), ("replicates",), 2, MAX_REPLICATES),
        "units": checker.choice(top.get("units", "nats"), ("units",), UNITS),
        "sampler": checker.choice(top.get("sampler", "counts"), ("sampler",), SAMPLERS),
    }
    if common["description"] is not None and "\n" in common["description"].strip():
        checker.error(("description",), "must be one line")
    return common


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
    if checker.issues or grid is None or any(v is None for v in (*common.values(), *fields.values())):
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
