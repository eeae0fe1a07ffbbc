"""A case's (p, q) of parametric families: its exact quantities and its estimators' exact laws.

It answers what :class:`sim.distributions.Pair` answers for categorical cases (KL both ways,
entropy, cross-entropy, the sds of the three per-observation terms, each estimator's exact
moments), so summaries and ``sim check`` treat both alike.

Same family: closed forms (each family's module).  Different families (nested supports): KL(p‖q)
is Σ_x [q − p + p log(p/q)] = Σ_x q·h(p/q − 1), every term ≥ 0, over p's window, plus q's mass
outside it (p's is below e^(−745)); for a density p (an exponential against a normal), the log
ratio is a quadratic and Gauss–Laguerre quadrature is exact.  The sds of the terms of a mixed pair
are the same sums of squared deviations.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .. import registry
from ..distributions import xlog1px_minus_x
from ..registry import Estimator, Form, PairLogs
from .base import Family, State

if TYPE_CHECKING:
    from ..exact import Moments, Summand

#: Where p/q exceeds e^this, the KL term is formed as p(log(p/q) − 1) + q (h(r) would overflow).
_LARGE_LOG_RATIO = 20.0


@dataclass(frozen=True, eq=False)
class FamilyPair:
    """p and q, members of parametric families; q's support contains p's (else KL(p‖q) = ∞)."""

    p: Family
    q: Family

    #: Categorical pairs say False: the sampler and estimators of a case ask this.
    parametric: ClassVar[bool] = True
    q_sample: ClassVar[None] = None
    #: Cells a replicate holds in memory (its statistics): the block sizes ask this.
    cells: ClassVar[int] = 1
    #: ``analytic.csv``'s k and k_support: a family has no categories (empty).
    sizes: ClassVar[tuple[None, None]] = (None, None)
    extra_analytic: ClassVar[tuple[str, ...]] = ()
    #: The fitted member maximises the likelihood: its KL (the plug-in) is at least the llr.
    plugin_bounds_llr: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.q.support not in self.p.within:
            raise ValueError(f"q's support ({self.q.support}) does not contain p's ({self.p.support})")

    @property
    def same_family(self) -> bool:
        """Whether p and q are members of one family (their statistics are shared)."""
        return type(self.p) is type(self.q)

    @property
    def family(self) -> str:
        """``normal``, or ``poisson/geometric`` for a mixed pair."""
        return self.p.name if self.same_family else f"{self.p.name}/{self.q.name}"

    # -- analytic quantities (nats) ---------------------------------------
    @functools.cached_property
    def kl_pq(self) -> float:
        return self.p.kl(self.q) if self.same_family else _mixed_kl(self.p, self.q)

    @functools.cached_property
    def kl_qp(self) -> float:
        if self.p.support not in self.q.within:
            return math.inf
        return self.q.kl(self.p) if self.same_family else _mixed_kl(self.q, self.p)

    @functools.cached_property
    def entropy_p(self) -> float:
        return self.p.entropy

    @functools.cached_property
    def cross_entropy(self) -> float:
        return math.fsum((self.entropy_p, self.kl_pq))

    @property
    def cross_entropy_pq(self) -> float:
        """H(p, q), under its ``analytic.csv`` name."""
        return self.cross_entropy

    @functools.cached_property
    def llr_sigma(self) -> float:
        if self.same_family:
            return self.p.log_ratio_sd(self.q)
        return _node_sd(self.p, lambda x: self.p.log_density(x) - self.q.log_density(x))

    @functools.cached_property
    def entropy_sigma(self) -> float:
        return self.p.minus_log_sd(self.p)

    @functools.cached_property
    def cross_entropy_sigma(self) -> float:
        if self.same_family:
            return self.p.minus_log_sd(self.q)
        return _node_sd(self.p, lambda x: -self.q.log_density(x))

    @functools.cached_property
    def log_ratio(self) -> np.ndarray:
        """log p/q at p's nodes: the size of the llr's terms, which rounding is judged against."""
        x, _ = self.p.nodes()
        return self.p.log_density(x) - self.q.log_density(x)

    # -- estimators ----------------------------------------------------------
    def unavailable(self, spec: Estimator, sampler: str) -> str | None:
        """Why ``spec`` cannot be computed for this pair with ``sampler``, or None if it can."""
        if spec.form is Form.MEAN and spec.term in _CLOSED_SD:
            if sampler == "counts" and spec.term is not registry.log_ratio and not self.p.constant_base:
                return (
                    f"it needs Σ log x! of a {self.p.name} sample, which its sufficient statistic "
                    "(the total) does not keep: use sampler: per-sample"
                )
            return None
        if spec.form is Form.MEAN and spec.term is registry.half_square_log_ratio:
            return None if sampler == "per-sample" else "it is not a function of the sufficient statistics"
        if spec.form is Form.PLUGIN and not spec.observed_penalty:
            return None if self.same_family else "the parametric plug-in is offered for p and q of one family"
        return "it is defined for categorical cases only"

    def statistic_value(self, spec: Estimator, state: State, n: int) -> np.ndarray:
        """``spec``'s value on samples kept as statistics (nats; same family)."""
        if spec.form is Form.PLUGIN:
            return self.p.fitted_kl(state, n, self.q)
        if spec.term is registry.log_ratio:
            return self.p.llr(self.q, state, n)
        member = self.q if spec.term is registry.minus_log_q else self.p
        return -member.mean_log_density(state, n)

    def summand(self, spec: Estimator) -> Summand:
        """Exact moments of one observation's term of a :attr:`Form.MEAN` estimator."""
        return _summand(self, spec)

    def moments(self, spec: Estimator, n: int) -> Moments:
        """Exact mean, sd and fourth central moment of ``spec`` at n (nats)."""
        return _moments(self, spec, n)

    def bounds(self, spec: Estimator, n: int) -> tuple[float, float]:
        """Every value of ``spec`` at n lies in [low, high] (nats): a KL ≥ 0, the rest unbounded."""
        return (0.0 if spec.form is Form.PLUGIN else -math.inf), math.inf

    def shape(self, spec: Estimator, n: int) -> tuple[float, float]:
        """Skewness and excess kurtosis of one replicate of ``spec`` at n (exact)."""
        if spec.form is Form.MEAN:
            s = self.summand(spec)
            if s.var <= 0.0:
                return 0.0, 0.0
            return s.mu3 / s.var**1.5 / math.sqrt(n), (s.mu4 / s.var**2 - 3.0) / n
        _, var, mu3, mu4 = self.p.fitted_kl_law(self.q, n)
        return (0.0, 0.0) if not var > 0.0 else (mu3 / var**1.5, mu4 / var**2 - 3.0)


#: The per-observation terms whose sd is an analytic quantity of the pair (closed forms).
_CLOSED_SD = {
    registry.log_ratio: ("llr_sigma", "kl_pq"),
    registry.minus_log_q: ("cross_entropy_sigma", "cross_entropy_pq"),
    registry.minus_log_p: ("entropy_sigma", "entropy_p"),
}


@functools.lru_cache(maxsize=256)
def _summand(pair: FamilyPair, spec: Estimator) -> Summand:
    from ..exact import Summand  # imported here: config validation builds pairs, and skips scipy.stats

    x, w = _weights(pair.p)
    lp, lq = pair.p.log_density(x), pair.q.log_density(x)
    v = spec.term(PairLogs(lp, lq, lp - lq))
    centre = math.fsum(w * v)
    dev = v - centre
    var, mu3, mu4 = (math.fsum(w * dev**j) for j in (2, 3, 4))
    if spec.term in _CLOSED_SD:
        sd_name, mean_name = _CLOSED_SD[spec.term]
        sd, mean = getattr(pair, sd_name), getattr(pair, mean_name)
        scale = sd * sd / var if var > 0.0 else 0.0  # the shape from the nodes, the size exact
        return Summand(mean, sd * sd, mu3 * scale**1.5, mu4 * scale * scale, mean)
    return Summand(centre, var, mu3, mu4, centre)


@functools.lru_cache(maxsize=4096)
def _moments(pair: FamilyPair, spec: Estimator, n: int) -> Moments:
    from ..exact import Moments, mean_of  # imported here: see _summand

    if spec.form is Form.MEAN:
        return mean_of(pair.summand(spec), n)
    if spec.form is Form.PLUGIN and pair.same_family:
        mean, var, _, mu4 = pair.p.fitted_kl_law(pair.q, n)
        return Moments(mean, math.sqrt(var) if var >= 0.0 else math.nan, mu4)
    raise ValueError(f"{spec.name} has no exact law for {pair.family} cases")


def _weights(p: Family) -> tuple[np.ndarray, np.ndarray]:
    """p's nodes, the weights of a pmf's window made to sum to 1 exactly as summed."""
    x, w = p.nodes()
    keep = w > 0.0
    x, w = x[keep], w[keep]
    return x, w / math.fsum(w) if p.discrete else w


def _node_sd(p: Family, values) -> float:
    x, w = _weights(p)
    v = values(x)
    dev = v - math.fsum(w * v)
    return math.sqrt(math.fsum(w * dev * dev))


def _mixed_kl(p: Family, q: Family) -> float:
    """KL(p‖q) for members of different families, q's support containing p's (see the module notes)."""
    x, w = p.nodes()
    if not p.discrete:  # the log ratio is a polynomial of degree ≤ 2: the quadrature is exact
        return math.fsum(w * (p.log_density(x) - q.log_density(x)))
    lp, lq = p.log_density(x), q.log_density(x)
    d = lp - lq
    with np.errstate(over="ignore"):
        near = np.exp(lq) * xlog1px_minus_x(np.expm1(np.minimum(d, _LARGE_LOG_RATIO)))
    far = np.exp(lp) * (d - 1.0) + np.exp(lq)
    terms = np.where(d <= _LARGE_LOG_RATIO, near, far)
    return math.fsum(terms) + q.mass_outside(float(x[0]), float(x[-1]))
