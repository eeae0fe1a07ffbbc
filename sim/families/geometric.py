"""The geometric family: the number of failures before the first success, P(x) = θ(1 − θ)^x, x = 0, 1, …

(Not the number of trials, which starts at 1: numpy's ``geometric`` counts trials, less 1 here.)
Its statistic is each sample's total, which m observations grow by a negative binomial NB(m, θ).

KL(p‖q) = KL_Bernoulli(θ_p‖θ_q)/θ_p; the llr is log(θ_p/θ_q) + x̄·log((1 − θ_p)/(1 − θ_q)).  The
plug-in fits θ̂ = 1/(1 + x̄) (θ̂ = 1 for an all-zero sample, KL = −log θ_q) and has its exact moments
by a sum over the total's negative binomial law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..distributions import kl_two, xlog1px_minus_x
from .base import Family, State
from .special import lattice_moments, negative_binomial_log_pmf

#: The pmf's window ends where it falls below e^(−760) of its mode.
_WINDOW_LOG = 760.0


@dataclass(frozen=True)
class Geometric(Family):
    """Geometric(p): failures before the first success, success probability p."""

    theta: float

    name: ClassVar[str] = "geometric"
    discrete: ClassVar[bool] = True
    support: ClassVar[str] = "x = 0, 1, 2, …"
    within: ClassVar[tuple[str, ...]] = ("x = 0, 1, 2, …",)

    @property
    def params(self) -> dict[str, float]:
        return {"p": self.theta}

    @property
    def _log_fail(self) -> float:
        return math.log1p(-self.theta)

    @property
    def mean(self) -> float:
        return (1.0 - self.theta) / self.theta

    @property
    def variance(self) -> float:
        return (1.0 - self.theta) / (self.theta * self.theta)

    @property
    def entropy(self) -> float:
        return -math.log(self.theta) - self.mean * self._log_fail

    def log_density(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return math.log(self.theta) + x * self._log_fail

    def draw(self, size, rng: np.random.Generator) -> np.ndarray:
        return (rng.geometric(self.theta, size) - 1).astype(float)

    def window_points(self) -> int:
        """How many whole numbers :meth:`nodes` sums over."""
        return math.ceil(_WINDOW_LOG / -self._log_fail) + 1

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.arange(float(self.window_points()))
        return x, np.exp(self.log_density(x))

    def mass_outside(self, lo: float, hi: float) -> float:
        below = -math.expm1(lo * self._log_fail) if lo > 0 else 0.0
        return below + math.exp((hi + 1.0) * self._log_fail)

    def _log_fail_ratio(self, other: Geometric) -> float:
        """log((1 − θ_p)/(1 − θ_q)) = log1p((θ_q − θ_p)/(1 − θ_q))."""
        return math.log1p((other.theta - self.theta) / (1.0 - other.theta))

    def kl(self, other: Geometric) -> float:
        d = np.array([self.theta - other.theta])
        return float(kl_two(d, other.theta, 1.0 - other.theta)[0]) / self.theta

    def log_ratio_sd(self, other: Geometric) -> float:
        return abs(self._log_fail_ratio(other)) * math.sqrt(self.variance)

    def minus_log_sd(self, other: Geometric) -> float:
        return abs(other._log_fail) * math.sqrt(self.variance)

    # -- statistics --------------------------------------------------------
    def empty(self, rows: int) -> State:
        return {"total": np.zeros(rows)}

    def grow(self, state: State, before: int, m: int, rng: np.random.Generator) -> None:
        state["total"] += rng.negative_binomial(m, self.theta, state["total"].size)

    def observe(self, state: State, before: int, x: np.ndarray) -> None:
        state["total"] += x.sum(axis=1)

    def mean_log_density(self, state: State, n: int) -> np.ndarray:
        return math.log(self.theta) + state["total"] / n * self._log_fail

    def llr(self, other: Geometric, state: State, n: int) -> np.ndarray:
        return math.log(self.theta / other.theta) + state["total"] / n * self._log_fail_ratio(other)

    def fitted_kl(self, state: State, n: int, other: Geometric) -> np.ndarray:
        return _fitted(state["total"], n, other.theta)

    def fitted_kl_law(self, other: Geometric, n: int) -> tuple[float, float, float, float]:
        mean, sd = n * self.mean, math.sqrt(n * self.variance)
        return lattice_moments(
            lambda s: negative_binomial_log_pmf(s, float(n), self.theta),
            mean,
            sd,
            lambda s: _fitted(s, n, other.theta),
        )


def _fitted(total: np.ndarray, n: int, theta: float) -> np.ndarray:
    """KL(Geometric(θ̂)‖Geometric(θ)), θ̂ = n/(n + total): KL_Bernoulli(θ̂‖θ)/θ̂.

    θ̂ − θ = (n(1 − θ) − θ·total)/(n + total), formed so; the Bernoulli KL is
    θ·h((θ̂ − θ)/θ) + (1 − θ)·h((θ − θ̂)/(1 − θ)).
    """
    total = np.asarray(total, dtype=float)
    fitted = n / (n + total)
    d = (n * (1.0 - theta) - theta * total) / (n + total)
    bernoulli = theta * xlog1px_minus_x(d / theta) + (1.0 - theta) * xlog1px_minus_x(-d / (1.0 - theta))
    return bernoulli / fitted
