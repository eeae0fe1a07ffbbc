"""The normal family N(μ, σ²): its statistics are each sample's mean and its sum of squares about it.

m further observations add a mean x̄_m ~ N(μ, σ²/m) and, independently, a sum of squares about it
W_m ~ σ²χ²(m − 1); the two samples' statistics merge exactly as Chan et al.'s pairwise update
(mean ← mean + δ·m/(n + m), M2 ← M2 + W_m + δ²·n·m/(n + m), δ the difference of the means).

With ρ = σ_p²/σ_q² and Δ = μ_p − μ_q, everything is written in ρ − 1 and Δ, so that it keeps its
relative precision as p → q:

* KL(p‖q) = ½(ρ − 1 − log ρ) + Δ²/(2σ_q²);
* sd of log p/q = √(½(ρ − 1)² + ρΔ²/σ_q²) (a shifted, scaled non-central χ²₁);
* the plug-in KL(N(x̄, M2/n)‖q) is ½ of y·V/k − log V (V ~ Gamma(k), k = (n − 1)/2, y = ρ(n − 1)/n)
  plus c(W + m)² (W standard normal, c = ρ/(2n), m² = nΔ²/σ_p²), the two independent: its mean is
  KL + ½(log(1 + 1/(2k)) + 1/k − e(k)) with e(k) = ψ(k + 1) − log k, its cumulants the sums of the
  parts' (:func:`sim.families.special.gamma_log_cumulants`; c^r 2^(r−1)(r − 1)!(1 + r m²)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..distributions import digamma_excess
from .base import NODES, Family, State
from .special import gamma_log_cumulants, log1p_excess, ratio_excess

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Normal(Family):
    """N(mean, sd²) on the real line."""

    mu: float
    sd: float

    name: ClassVar[str] = "normal"
    discrete: ClassVar[bool] = False
    support: ClassVar[str] = "the real line"
    within: ClassVar[tuple[str, ...]] = ("the real line",)

    @property
    def params(self) -> dict[str, float]:
        return {"mean": self.mu, "sd": self.sd}

    @property
    def mean(self) -> float:
        return self.mu

    @property
    def variance(self) -> float:
        return self.sd * self.sd

    @property
    def entropy(self) -> float:
        return math.fsum((_HALF_LOG_2PI, 0.5, math.log(self.sd)))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=float) - self.mu) / self.sd
        return -_HALF_LOG_2PI - math.log(self.sd) - 0.5 * z * z

    def draw(self, size, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(self.mu, self.sd, size)

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        t, w = np.polynomial.hermite.hermgauss(NODES)
        return self.mu + math.sqrt(2.0) * self.sd * t, w / math.sqrt(math.pi)

    def _rho_minus_1(self, other: Normal) -> float:
        """σ_p²/σ_q² − 1, as (σ_p − σ_q)(σ_p + σ_q)/σ_q²."""
        return (self.sd - other.sd) * (self.sd + other.sd) / (other.sd * other.sd)

    def kl(self, other: Normal) -> float:
        delta = self.mu - other.mu
        u = self._rho_minus_1(other)
        near = (
            abs(u) < 0.25
        )  # ρ − 1 − log ρ: its series in ρ − 1, or with log ρ = 2 log(σ_p/σ_q) for ρ far from 1
        half = float(log1p_excess(u)) if near else u - 2.0 * (math.log(self.sd) - math.log(other.sd))
        return 0.5 * half + delta * delta / (2.0 * other.variance)

    def log_ratio_sd(self, other: Normal) -> float:
        u, delta = self._rho_minus_1(other), self.mu - other.mu
        return math.sqrt(0.5 * u * u + (1.0 + u) * delta * delta / (other.sd * other.sd))

    def minus_log_sd(self, other: Normal) -> float:
        rho, delta = (self.sd / other.sd) ** 2, self.mu - other.mu
        return math.sqrt(0.5 * rho * rho + rho * delta * delta / (other.sd * other.sd))

    # -- statistics --------------------------------------------------------
    def empty(self, rows: int) -> State:
        return {"mean": np.zeros(rows), "m2": np.zeros(rows)}

    def grow(self, state: State, before: int, m: int, rng: np.random.Generator) -> None:
        rows = state["mean"].size
        mean = self.mu + self.sd / math.sqrt(m) * rng.standard_normal(rows)
        squares = self.variance * rng.chisquare(m - 1, rows) if m > 1 else np.zeros(rows)
        _merge(state, before, m, mean, squares)

    def observe(self, state: State, before: int, x: np.ndarray) -> None:
        mean = x.mean(axis=1)
        _merge(state, before, x.shape[1], mean, ((x - mean[:, None]) ** 2).sum(axis=1))

    def _mean_square_from(self, state: State, n: int) -> np.ndarray:
        """(1/n) Σ (x_i − μ)² / σ² of each sample."""
        z = (state["mean"] - self.mu) / self.sd
        return state["m2"] / (n * self.variance) + z * z

    def mean_log_density(self, state: State, n: int) -> np.ndarray:
        return -_HALF_LOG_2PI - math.log(self.sd) - 0.5 * self._mean_square_from(state, n)

    def llr(self, other: Normal, state: State, n: int) -> np.ndarray:
        return math.log(other.sd / self.sd) + 0.5 * (
            other._mean_square_from(state, n) - self._mean_square_from(state, n)
        )

    def fitted_kl(self, state: State, n: int, other: Normal) -> np.ndarray:
        q2 = other.variance
        z = (state["mean"] - other.mu) / other.sd
        return 0.5 * ratio_excess(state["m2"] / n, q2) + 0.5 * z * z

    def fitted_kl_minimum_n(self) -> int:
        return 2  # one observation fits a variance of 0: KL = ∞

    def fitted_kl_law(self, other: Normal, n: int) -> tuple[float, float, float, float]:
        if n < 2:
            return math.inf, math.nan, math.nan, math.nan
        k = (n - 1) / 2.0
        u = self._rho_minus_1(other)
        rho = 1.0 + u
        bias = 0.5 * (math.log1p(1.0 / (2.0 * k)) + 1.0 / k - float(digamma_excess(np.array([k]))[0]))
        g2, g3, g4 = gamma_log_cumulants(k, u - rho / n)  # y − 1 = (ρ − 1) − ρ/n
        c, m2 = rho / (2.0 * n), n * (self.mu - other.mu) ** 2 / self.variance
        k2 = g2 / 4.0 + c**2 * 2.0 * (1.0 + 2.0 * m2)
        k3 = g3 / 8.0 + c**3 * 8.0 * (1.0 + 3.0 * m2)
        k4 = g4 / 16.0 + c**4 * 48.0 * (1.0 + 4.0 * m2)
        return self.kl(other) + bias, k2, k3, k4 + 3.0 * k2 * k2


def _merge(state: State, before: int, m: int, mean: np.ndarray, squares: np.ndarray) -> None:
    """Merge m observations with mean ``mean`` and sum of squares ``squares`` into samples of ``before``."""
    if before == 0:
        state["mean"][:] = mean
        state["m2"][:] = squares
        return
    total = before + m
    delta = mean - state["mean"]
    state["mean"] += delta * (m / total)
    state["m2"] += squares + delta * delta * (before * (m / total))
