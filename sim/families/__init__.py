"""Parametric families: normal, Poisson, exponential and geometric sources with exact sufficient-statistic paths.

Each family is one module implementing :class:`sim.families.base.Family`; :data:`FAMILIES` lists them
by their config key, with the parameters each takes.  :class:`sim.families.pair.FamilyPair` is a
case's (p, q); :mod:`sim.families.paths` simulates its replicates.
"""

from __future__ import annotations

from .base import Family, NotSufficient
from .exponential import Exponential
from .geometric import Geometric
from .normal import Normal
from .pair import FamilyPair
from .poisson import Poisson

#: Each family by its config key: its class and its parameters (config key → constructor argument).
FAMILIES: dict[str, tuple[type[Family], dict[str, str]]] = {
    "normal": (Normal, {"mean": "mu", "sd": "sd"}),
    "poisson": (Poisson, {"rate": "rate"}),
    "exponential": (Exponential, {"rate": "rate"}),
    "geometric": (Geometric, {"p": "theta"}),
}

__all__ = [
    "FAMILIES",
    "Exponential",
    "Family",
    "FamilyPair",
    "Geometric",
    "Normal",
    "NotSufficient",
    "Poisson",
]
