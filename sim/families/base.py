"""What a parametric family is: the interface every family module implements.

A :class:`Family` member is one distribution (a normal with its mean and sd,
a Poisson with its rate, …).  It knows its density, how to draw observations,
its entropy and its KL to another member of its family in closed form, and
the *statistics* its estimators need: a sample of n observations is kept as
its sufficient statistics (``State``), whose growth by m further
observations is drawn exactly in one step, so a path to N = 10¹² costs what
a path to 10³ does.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

#: The sufficient statistics of each replicate's sample, by name (arrays of one value per replicate).
State = dict[str, np.ndarray]

#: Gauss quadrature nodes for continuous members: exact for polynomials up to degree 2·NODES − 1.
NODES = 24


class NotSufficient(ValueError):
    """An estimator needs more of the sample than the family's sufficient statistics keep."""


@dataclass(frozen=True)
class Family(abc.ABC):
    """One member of a parametric family (see the module notes)."""

    #: The family's key in configs (``normal``, ``poisson``, …).
    name: ClassVar[str]
    #: Whether observations are whole numbers (a pmf) rather than reals (a density).
    discrete: ClassVar[bool]
    #: The support, in words (``the real line``, ``x > 0``, ``x = 0, 1, 2, …``).
    support: ClassVar[str]
    #: The supports this family's support lies within (its own included): a q must contain p's.
    within: ClassVar[tuple[str, ...]]
    #: Whether log p(x) = η·T(x) − A with no base measure h(x): then −log p of a sample is a
    #: function of its sufficient statistics (false for the Poisson's 1/x!).
    constant_base: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # parameters are floats, whatever the caller passed
            object.__setattr__(self, f.name, float(getattr(self, f.name)))

    # -- the distribution ------------------------------------------------
    @property
    @abc.abstractmethod
    def params(self) -> dict[str, float]:
        """Its parameters as a config writes them."""

    @property
    @abc.abstractmethod
    def mean(self) -> float:
        """E[X]."""

    @property
    @abc.abstractmethod
    def variance(self) -> float:
        """Var[X]."""

    @property
    @abc.abstractmethod
    def entropy(self) -> float:
        """H = −E[log p(X)] in nats (differential entropy for a density: it can be negative)."""

    @abc.abstractmethod
    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log p(x) (pmf or density), −inf off the support."""

    @abc.abstractmethod
    def draw(self, size, rng: np.random.Generator) -> np.ndarray:
        """Independent observations, as floats."""

    @abc.abstractmethod
    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Points and weights with E[g(X)] = Σ w·g(x): Gauss quadrature (exact for polynomials up to
        degree 47) for a density, every point of the support where the pmf exceeds e^(−745) for a pmf."""

    def mass_outside(self, lo: float, hi: float) -> float:
        """P(X < lo) + P(X > hi), for a pmf (the tails :meth:`nodes` leaves out of a window)."""
        raise NotImplementedError(f"{self.name} is not a pmf")

    def kl(self, other: Family) -> float:
        """KL(self‖other) in closed form, for a member of the same family, precise when they are close."""
        raise NotImplementedError

    def log_ratio_sd(self, other: Family) -> float:
        """sd under self of log self(X)/other(X), for a member of the same family."""
        raise NotImplementedError

    def minus_log_sd(self, other: Family) -> float:
        """sd under self of −log other(X) (other may be self), for a member of the same family."""
        raise NotImplementedError

    @property
    def written(self) -> dict[str, dict[str, float]]:
        """As a config writes it: ``{normal: {mean: 0.0, sd: 1.0}}``."""
        return {self.name: dict(self.params)}

    def describe(self) -> str:
        """``Normal(mean=0, sd=1)``."""
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.name.capitalize()}({args})"

    # -- a sample kept as its sufficient statistics ----------------------
    @abc.abstractmethod
    def empty(self, rows: int) -> State:
        """The statistics of ``rows`` empty samples."""

    @abc.abstractmethod
    def grow(self, state: State, before: int, m: int, rng: np.random.Generator) -> None:
        """Add m observations drawn from self to samples of ``before``, in place, in one exact draw each."""

    @abc.abstractmethod
    def observe(self, state: State, before: int, x: np.ndarray) -> None:
        """Add the observations ``x`` (rows × m) to samples of ``before``, in place."""

    @abc.abstractmethod
    def mean_log_density(self, state: State, n: int) -> np.ndarray:
        """(1/n) Σ log self(x_i) of each sample (a sample of any member of the family).

        Raises
        ------
        NotSufficient
            If the family's base measure makes it depend on more than the statistics.
        """

    @abc.abstractmethod
    def llr(self, other: Family, state: State, n: int) -> np.ndarray:
        """(1/n) Σ log self(x_i)/other(x_i) of each sample, other of the same family."""

    @abc.abstractmethod
    def fitted_kl(self, state: State, n: int, other: Family) -> np.ndarray:
        """KL(p_θ̂‖other) of each sample, θ̂ the maximum-likelihood fit of the family to it."""

    @abc.abstractmethod
    def fitted_kl_law(self, other: Family, n: int) -> tuple[float, float, float, float]:
        """Mean and central moments 2–4 of :meth:`fitted_kl` on samples of n drawn from self (exact)."""

    def fitted_kl_minimum_n(self) -> int:
        """The smallest n at which the fitted KL is finite."""
        return 1
