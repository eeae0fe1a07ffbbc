"""A Markov case's (p, q): its rates, the exact laws of its per-token estimators, and what it offers.

p is a chain (:class:`sim.markov.chain.Chain`) with an irreducible transition matrix; q is a chain on
the same states or an i.i.d. categorical model (a chain with equal rows).  It answers what
:class:`sim.distributions.Pair` answers for i.i.d. cases, with rates in place of per-observation
quantities: ``kl_pq`` is the KL rate Σ_i π_i KL(P_i‖Q_i), ``entropy_p`` the entropy rate,
``cross_entropy_pq`` the cross-entropy rate, and the ``*_sigma`` columns are the Markov-chain CLT's
σ (sd of the per-token estimator ≈ σ/√n).  ``kl_stationary`` = KL(π_p‖π_q) is the i.i.d. KL between
the two stationary marginals, which a model can match exactly while its KL rate stays positive.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .. import registry
from ..distributions import two_product
from ..registry import Estimator, Form
from .chain import Chain, gth_gap
from .theory import Exact, Functional, generator, kl_from_gap, kl_rows, log_ratio

if TYPE_CHECKING:
    from ..exact import Moments


@dataclass(frozen=True, eq=False)
class MarkovPair:
    """p, a Markov source, and q, a Markov or i.i.d. model on the same states covering p's transitions."""

    p: Chain
    q: Chain

    #: Not a categorical i.i.d. pair: it answers its estimators' laws itself (as families do).
    parametric: ClassVar[bool] = True
    q_sample: ClassVar[None] = None
    family: ClassVar[str] = "markov"
    #: ``analytic.csv`` columns only Markov cases fill (the others leave them empty).
    extra_analytic: ClassVar[tuple[str, ...]] = ("kl_stationary",)
    #: The plug-in reads the transitions only, over n − 1 of them; the llr also scores the first token:
    #: neither bounds the other replicate by replicate.
    plugin_bounds_llr: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.p.stationary is None:
            raise ValueError("p is not irreducible")
        if np.isinf(kl_rows(self.p.transition, self.q.transition)).any():
            raise ValueError("q gives probability 0 to a transition p makes")
        if np.isinf(kl_rows(self.p.start, self.q.start)).any():
            raise ValueError("q's initial law gives probability 0 to a state p starts in")

    @property
    def cells(self) -> int:
        """Cells a replicate holds in memory (its transition counts): the block sizes ask this."""
        return self.p.k * self.p.k

    @property
    def sizes(self) -> tuple[int, int]:
        """``analytic.csv``'s k and k_support: the states, and those with stationary mass."""
        return self.p.k, int(np.count_nonzero(self.p.stationary > 0.0))

    # -- analytic quantities (nats) ----------------------------------------------------
    @functools.cached_property
    def kl_pq(self) -> float:
        return self.exact(registry.log_ratio).rate

    @functools.cached_property
    def kl_qp(self) -> float:
        """The KL rate of q against p from q's stationary law: ∞ where q makes a transition p cannot,
        nan where q has no unique stationary law."""
        pi_q = self.q.stationary
        if pi_q is None:
            return math.nan
        rows = kl_rows(self.q.transition, self.p.transition)
        live = pi_q > 0.0
        if np.isinf(rows[live]).any():
            return math.inf
        return math.fsum(pi_q[live] * rows[live])

    @functools.cached_property
    def entropy_p(self) -> float:
        return self.exact(registry.minus_log_p).rate

    @functools.cached_property
    def cross_entropy(self) -> float:
        return math.fsum((self.entropy_p, self.kl_pq))

    @property
    def cross_entropy_pq(self) -> float:
        """H(p, q)'s rate, under its ``analytic.csv`` name."""
        return self.cross_entropy

    @functools.cached_property
    def llr_sigma(self) -> float:
        return math.sqrt(self.exact(registry.log_ratio).sigma2)

    @functools.cached_property
    def cross_entropy_sigma(self) -> float:
        return math.sqrt(self.exact(registry.minus_log_q).sigma2)

    @functools.cached_property
    def entropy_sigma(self) -> float:
        return math.sqrt(self.exact(registry.minus_log_p).sigma2)

    @functools.cached_property
    def kl_stationary(self) -> float:
        """KL(π_p‖π_q): the i.i.d. KL between the stationary marginals (nan if q has none)."""
        pi_q = self.q.stationary
        if pi_q is None:
            return math.nan
        if self.stationary_gap is not None:
            return float(kl_from_gap(self.p.stationary, self.stationary_gap))
        return float(kl_rows(self.p.stationary, pi_q)[0])

    @functools.cached_property
    def stationary_gap(self) -> np.ndarray | None:
        """π_q − π_p computed as a difference where the two laws are close (None elsewhere).

        A chain q: carried through both chains' GTH eliminations from Q̄ − P̄ (:func:`gth_gap`), which
        also keeps a nearly reducible pair's slow exchange between blocks; an i.i.d. q = r: solved
        from Δ(I − P + 1π_p) = r̄ − r̄P̄, its right side summed from exact products.  Its relative
        precision is that of Q − P (or of r's distance from stationarity), where the difference of
        two separately computed laws would keep only ε/|Δ| of it (a unigram model of the rounded
        stationary law has a KL of 1e-32).  Rows are normalised exactly (P̄, Q̄, r̄): their sums'
        ulp is first order in such gaps.
        """
        pi_q = self.q.stationary
        if pi_q is None or np.max(np.abs(pi_q - self.p.stationary) / self.p.stationary) > _SMALL_GAP:
            return None  # far apart: the two laws' own precision is the better one
        big_p, big_q, k = self.p.transition, self.q.transition, self.p.k
        sum_p = np.array([math.fsum(row) for row in big_p])
        if self.q.iid:
            system = generator(big_p) + np.outer(np.ones(k), self.p.stationary)
            return np.linalg.solve(system.T, _unigram_residual(pi_q, big_p, sum_p))
        sum_q = np.array([math.fsum(row) for row in big_q])
        sums_gap = np.array([math.fsum([*x, *(-y)]) for x, y in zip(big_p, big_q, strict=True)])
        diff = (big_q - big_p) / sum_q[:, None] + big_p * (sums_gap / (sum_p * sum_q))[:, None]
        return gth_gap(big_p, big_q, diff)

    @functools.cached_property
    def log_ratio(self) -> np.ndarray:
        """Every value one token's llr term can take (log P/Q of possible transitions, log μ/ν of
        possible starts): the size rounding is judged against."""
        fn = self.functional(registry.log_ratio)
        return np.concatenate([fn.F[self.p.transition > 0.0], fn.g[self.p.start > 0.0]])

    # -- estimators ----------------------------------------------------------------------
    def unavailable(self, spec: Estimator, sampler: str | None = None) -> str | None:
        """Why ``spec`` cannot be computed for a Markov case, or None if it can."""
        if spec.form is Form.MEAN and spec.term in _TERMS:
            return None
        if spec.form is Form.PLUGIN and not spec.observed_penalty:
            return None
        return (
            "it is defined for i.i.d. cases only (Markov cases offer llr, cross_entropy, entropy, plugin_kl)"
        )

    def functional(self, term) -> Functional:
        """The additive functional S_n of the per-token estimator whose i.i.d. term is ``term``."""
        return _functional(self, term)

    def exact(self, term) -> Exact:
        """The exact theory of that functional (see :mod:`sim.markov.theory`)."""
        return _exact(self, term)

    def moments(self, spec: Estimator, n: int) -> Moments:
        """Exact mean, sd and fourth central moment of ``spec`` at n (nats); nan where unknown."""
        return _moments(self, spec, n)

    def shape(self, spec: Estimator, n: int) -> tuple[float, float]:
        """Skewness and excess kurtosis of one replicate of ``spec`` at n (exact; nan where unknown)."""
        if spec.form is not Form.MEAN:
            return math.nan, math.nan
        var, mu3, mu4 = self.exact(spec.term).central_moments(n)
        return (0.0, 0.0) if not var > 0.0 else (mu3 / var**1.5, mu4 / var**2 - 3.0)

    def bounds(self, spec: Estimator, n: int) -> tuple[float, float]:
        """Every value of ``spec`` at n lies in [low, high] (nats)."""
        live = self.p.transition > 0.0
        if spec.form is Form.PLUGIN:  # Σ_i (N_i/(n − 1)) KL(P̂_i‖Q_i), P̂_i on P_i's support
            return 0.0, float(np.max(-np.log(self.q.transition[live])))
        fn = self.functional(spec.term)
        starts = fn.g[self.p.start > 0.0]
        steps = fn.F[live]
        low = (float(starts.min()) + (n - 1) * float(steps.min())) / n
        high = (float(starts.max()) + (n - 1) * float(steps.max())) / n
        return low, high


_EPS = float(np.finfo(float).eps)
#: Below this relative gap between the stationary laws, it is solved for directly (see stationary_gap).
_SMALL_GAP = 1e-2

#: The per-token estimators a Markov case offers, by their i.i.d. term.
_TERMS = (registry.log_ratio, registry.minus_log_q, registry.minus_log_p)


@functools.lru_cache(maxsize=64)
def _functional(pair: MarkovPair, term) -> Functional:
    """g and F of a per-token estimator, on rows normalised exactly: log P̄ = log P − log ΣP_i.

    Rows of floats sum to 1 only within an ulp or so; near P = Q that ulp is first order in
    log(P/Q) (a KL rate of 1e-14 would move by 1e-3 relative), so every row's log-mass is taken
    out, and the KL, entropy and cross-entropy rates are those of the normalised rows.
    """
    p, q = pair.p, pair.q
    big_p, big_q, mu, nu = p.transition, q.transition, p.start, q.start
    live, first = big_p > 0.0, mu > 0.0
    with np.errstate(divide="ignore"):
        log_p = np.where(live, np.log(np.where(live, big_p, 1.0)) - _log_mass(big_p)[:, None], 0.0)
        log_q = np.where(live, np.log(np.where(live, big_q, 1.0)) - _log_mass(big_q)[:, None], 0.0)
        start_p = np.where(first, np.log(np.where(first, mu, 1.0)) - _log_mass(mu)[0], 0.0)
        start_q = np.where(first, np.log(np.where(first, nu, 1.0)) - _log_mass(nu)[0], 0.0)
    if term is registry.log_ratio:
        steps = np.where(live, log_ratio(big_p, big_q) - _log_mass_ratio(big_p, big_q)[:, None], 0.0)
        if p.initial is None and (q.initial is None or q.iid) and pair.stationary_gap is not None:  # π_p, π_q
            gap = pair.stationary_gap
            starts = np.where(first, -np.log1p(np.where(first, gap / np.where(first, mu, 1.0), 0.0)), 0.0)
            return Functional(starts, steps, kl_rows(big_p, big_q), float(kl_from_gap(mu, gap)))
        starts = np.where(first, log_ratio(mu, nu) - _log_mass_ratio(mu, nu)[0], 0.0)
        return Functional(starts, steps, kl_rows(big_p, big_q), float(kl_rows(mu, nu)[0]))
    weights = big_p / big_p.sum(axis=1, keepdims=True)
    entropy_rows = -np.sum(weights * log_p, axis=1)
    entropy_start = -math.fsum(mu / math.fsum(mu) * start_p)
    if term is registry.minus_log_p:
        return Functional(-start_p, -log_p, entropy_rows, entropy_start)
    if term is registry.minus_log_q:
        cross = math.fsum((entropy_start, float(kl_rows(mu, nu)[0])))
        return Functional(-start_q, -log_q, entropy_rows + kl_rows(big_p, big_q), cross)
    raise ValueError(f"no Markov functional for the term {term.__name__}")


def _unigram_residual(r: np.ndarray, big_p: np.ndarray, sum_p: np.ndarray) -> np.ndarray:
    """r̄ − r̄P̄ per state, r̄ = r/Σr and P̄ = P/ΣP_i, summed from exact products (Dekker's)."""
    hi, lo = two_product(r[:, None], big_p)
    excess = np.array([math.fsum([*row, -1.0]) for row in big_p])  # ΣP_i − 1, exactly rounded
    shrink = -(r[:, None] * big_p) * (excess / sum_p)[:, None]  # r_i P_ij (1/ΣP_i − 1)
    residual = np.array(
        [math.fsum([r[j], *(-hi[:, j]), *(-lo[:, j]), *(-shrink[:, j])]) for j in range(r.size)]
    )
    # only the shrink terms are rounded (by ε of their size): a residual within that is 0
    residual[np.abs(residual) <= 4.0 * _EPS * np.sum(np.abs(shrink), axis=0)] = 0.0
    return residual / math.fsum(r)


def _log_mass(a: np.ndarray) -> np.ndarray:
    """log Σ_j a_ij per row (of a matrix or one vector), precise near 1."""
    a = np.atleast_2d(a)
    return np.log1p(np.array([math.fsum([*row, -1.0]) for row in a]))  # Σ − 1 exactly, then rounded


def _log_mass_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Σ_j a_ij / Σ_j b_ij) per row, from the exact difference of the sums."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    gap = np.array(
        [math.fsum([*x, *(-y)]) for x, y in zip(a, b, strict=True)]
    )  # Σa − Σb exactly, then rounded
    return np.log1p(gap / np.array([math.fsum(row) for row in b]))


@functools.lru_cache(maxsize=64)
def _exact(pair: MarkovPair, term) -> Exact:
    return Exact(pair.p, pair.functional(term))


@functools.lru_cache(maxsize=4096)
def _moments(pair: MarkovPair, spec: Estimator, n: int) -> Moments:
    from ..exact import Moments  # imported here: config validation builds pairs, and skips scipy.stats

    if spec.form is not Form.MEAN:
        return Moments(math.nan, math.nan, math.nan)
    exact = pair.exact(spec.term)
    var, _, mu4 = exact.central_moments(n)
    return Moments(exact.mean(n), math.sqrt(var), mu4)
