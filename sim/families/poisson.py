"""The Poisson family: its statistic is each sample's total, and m observations add a Poisson(mλ) to it.

log p(x) = x log λ − λ − log x!: the llr of two Poissons is x̄·log(λ_p/λ_q) − (λ_p − λ_q), a function
of the total, but −log p of a sample also needs Σ log x_i!, which the total does not keep: the entropy
and the cross-entropy of a Poisson sample need ``sampler: per-sample``.

KL(p‖q) = λ_q·h(λ_p/λ_q − 1), h(r) = (1 + r) log(1 + r) − r; the entropy and the sds involving
log x! are sums over the pmf (Loader's form, :func:`sim.families.special.poisson_log_pmf`), and the
plug-in KL(Poisson(x̄)‖q) = λ_q·h(x̄/λ_q − 1) has its exact moments by a sum over the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import special

from ..distributions import xlog1px_minus_x
from .base import Family, NotSufficient, State
from .special import lattice_moments, poisson_log_pmf

#: The pmf's window reaches this many sds beyond the mean, plus a margin (the pmf there < e^(−745)).
_WINDOW_SDS, _WINDOW_PAD = 40.0, 300.0
#: The largest rate: its sums run over about 80·√rate points.
MAX_RATE = 1e9


@dataclass(frozen=True)
class Poisson(Family):
    """Poisson(rate) on x = 0, 1, 2, …"""

    rate: float

    name: ClassVar[str] = "poisson"
    discrete: ClassVar[bool] = True
    support: ClassVar[str] = "x = 0, 1, 2, …"
    within: ClassVar[tuple[str, ...]] = ("x = 0, 1, 2, …",)
    constant_base: ClassVar[bool] = False

    @property
    def params(self) -> dict[str, float]:
        return {"rate": self.rate}

    @property
    def mean(self) -> float:
        return self.rate

    @property
    def variance(self) -> float:
        return self.rate

    @property
    def entropy(self) -> float:
        x, w = self.nodes()
        return math.fsum(w * -self.log_density(x))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        return poisson_log_pmf(x, self.rate)

    def draw(self, size, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(self.rate, size).astype(float)

    def window(self) -> tuple[float, float]:
        """The whole numbers :meth:`nodes` sums over."""
        half = _WINDOW_SDS * math.sqrt(self.rate) + _WINDOW_PAD
        return max(0.0, math.floor(self.rate - half)), math.ceil(self.rate + half)

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.window()
        x = np.arange(lo, hi + 1.0)
        return x, np.exp(self.log_density(x))

    def mass_outside(self, lo: float, hi: float) -> float:
        below = float(special.pdtr(lo - 1.0, self.rate)) if lo > 0 else 0.0
        return below + float(special.pdtrc(hi, self.rate))

    def _log_rate_ratio(self, other: Poisson) -> float:
        return math.log1p((self.rate - other.rate) / other.rate)

    def kl(self, other: Poisson) -> float:
        return float(other.rate * xlog1px_minus_x(np.array([(self.rate - other.rate) / other.rate]))[0])

    def log_ratio_sd(self, other: Poisson) -> float:
        return abs(self._log_rate_ratio(other)) * math.sqrt(self.rate)

    def minus_log_sd(self, other: Poisson) -> float:
        x, w = self.nodes()
        v = -other.log_density(x)
        dev = v - math.fsum(w * v)
        return math.sqrt(math.fsum(w * dev * dev))

    # -- statistics --------------------------------------------------------
    def empty(self, rows: int) -> State:
        return {"total": np.zeros(rows)}

    def grow(self, state: State, before: int, m: int, rng: np.random.Generator) -> None:
        state["total"] += rng.poisson(m * self.rate, state["total"].size)

    def observe(self, state: State, before: int, x: np.ndarray) -> None:
        state["total"] += x.sum(axis=1)

    def mean_log_density(self, state: State, n: int) -> np.ndarray:
        raise NotSufficient("−log p of a Poisson sample needs Σ log x!, which its total does not keep")

    def llr(self, other: Poisson, state: State, n: int) -> np.ndarray:
        return state["total"] / n * self._log_rate_ratio(other) - (self.rate - other.rate)

    def fitted_kl(self, state: State, n: int, other: Poisson) -> np.ndarray:
        return _fitted(state["total"], n, other.rate)

    def fitted_kl_law(self, other: Poisson, n: int) -> tuple[float, float, float, float]:
        mu = n * self.rate
        return lattice_moments(
            lambda s: poisson_log_pmf(s, mu), mu, math.sqrt(mu), lambda s: _fitted(s, n, other.rate)
        )


def _fitted(total: np.ndarray, n: int, rate: float) -> np.ndarray:
    """KL(Poisson(total/n)‖Poisson(rate)) = rate·h((total − n·rate)/(n·rate))."""
    return rate * xlog1px_minus_x((total - n * rate) / (n * rate))
