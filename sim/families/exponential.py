"""The exponential family (rate λ, on x > 0): its statistic is each sample's total, Gamma(m, λ) per m.

With ρ = λ_q/λ_p: KL(p‖q) = ρ − 1 − log ρ; the llr is log(λ_p/λ_q) − (λ_p − λ_q)·x̄, whose sd per
observation is |ρ − 1|.  The plug-in, with λ̂ = n/S, is KL = (ρ/n)·V − log V − log(ρ/n) − 1 for
V = λ_p·S ~ Gamma(n): its mean is KL + 1/n − e(n), e(n) = ψ(n + 1) − log n, and its cumulants are
:func:`sim.families.special.gamma_log_cumulants` with k = n and y = ρ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..distributions import digamma_excess
from .base import NODES, Family, State
from .special import gamma_log_cumulants, ratio_excess


@dataclass(frozen=True)
class Exponential(Family):
    """Exponential(rate): density rate·e^(−rate·x) on x > 0."""

    rate: float

    name: ClassVar[str] = "exponential"
    discrete: ClassVar[bool] = False
    support: ClassVar[str] = "x > 0"
    within: ClassVar[tuple[str, ...]] = ("x > 0", "the real line")

    @property
    def params(self) -> dict[str, float]:
        return {"rate": self.rate}

    @property
    def mean(self) -> float:
        return 1.0 / self.rate

    @property
    def variance(self) -> float:
        return 1.0 / (self.rate * self.rate)

    @property
    def entropy(self) -> float:
        return 1.0 - math.log(self.rate)

    def log_density(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.where(x > 0, math.log(self.rate) - self.rate * x, -np.inf)

    def draw(self, size, rng: np.random.Generator) -> np.ndarray:
        return rng.exponential(1.0 / self.rate, size)

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        t, w = np.polynomial.laguerre.laggauss(NODES)
        return t / self.rate, w

    def _rho_minus_1(self, other: Exponential) -> float:
        return (other.rate - self.rate) / self.rate

    def kl(self, other: Exponential) -> float:
        return float(ratio_excess(other.rate, self.rate))

    def log_ratio_sd(self, other: Exponential) -> float:
        return abs(self._rho_minus_1(other))

    def minus_log_sd(self, other: Exponential) -> float:
        return other.rate / self.rate

    # -- statistics --------------------------------------------------------
    def empty(self, rows: int) -> State:
        return {"total": np.zeros(rows)}

    def grow(self, state: State, before: int, m: int, rng: np.random.Generator) -> None:
        state["total"] += rng.standard_gamma(float(m), state["total"].size) / self.rate

    def observe(self, state: State, before: int, x: np.ndarray) -> None:
        state["total"] += x.sum(axis=1)

    def mean_log_density(self, state: State, n: int) -> np.ndarray:
        return math.log(self.rate) - self.rate * (state["total"] / n)

    def llr(self, other: Exponential, state: State, n: int) -> np.ndarray:
        return math.log(self.rate / other.rate) - (self.rate - other.rate) * (state["total"] / n)

    def fitted_kl(self, state: State, n: int, other: Exponential) -> np.ndarray:
        return ratio_excess(other.rate * state["total"], float(n))

    def fitted_kl_law(self, other: Exponential, n: int) -> tuple[float, float, float, float]:
        bias = 1.0 / n - float(digamma_excess(np.array([float(n)]))[0])
        k2, k3, k4 = gamma_log_cumulants(float(n), self._rho_minus_1(other))
        return self.kl(other) + bias, k2, k3, k4 + 3.0 * k2 * k2
