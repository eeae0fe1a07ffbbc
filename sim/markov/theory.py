"""Exact theory of an additive functional of a Markov chain's path: its rate, asymptotic variance and
finite-n moments.

Every per-token estimator of a Markov case is S_n/n with S_n = g(X_1) + Σ_{t=2}^n F(X_{t−1}, X_t):
the llr (g = log μ/ν, F = log P/Q), the cross-entropy (−log ν, −log Q) and the entropy (−log μ,
−log P).  With π the stationary law, d_i = Σ_j P_ij F_ij and κ = π·d the rate:

- **mean**: E[S_n] = μ·g + (n − 1)κ + μ G(n − 1) d̃, with d̃ = d − κ and G(m) = Σ_{s<m} E^s,
  E = P − 1π (so P^s d̃ = E^s d̃).  G(m) d̃ is built from the squarings E^(2^j) by binary
  doubling, so n = 10¹² costs 40 matrix–vector products, and nothing of size n·κ is subtracted;
- **asymptotic variance** (the Markov-chain CLT): σ² = Σ_i π_i Σ_j P_ij m_ij² with
  m_ij = F_ij − d_i + u_j − (Pu)_i the martingale increments, u the solution of the Poisson
  equation (I − P + 1π) u = d̃ (the fundamental matrix);
- **central moments 2 to 4 at n**: a linear recursion on (E[T^k 1{X_t = j}])_{k ≤ 4}, T the sum
  centred by (n − 1)κ + μ·g, whose (5K × 5K) block-triangular matrix is powered by squaring.
"""

from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass

import numpy as np

from ..distributions import snap_rounding, two_product, xlog1px_minus_x
from .chain import Chain

#: Steps of iterative refinement of the Poisson equation's solution (residuals summed exactly).
_REFINEMENTS = 2
#: Where |a/b − 1| is below this, log(a/b) is log1p((a − b)/b): a − b is exact there (Sterbenz).
_NEAR = 0.5


def log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(a/b) elementwise where a > 0 (0 elsewhere), to full relative precision when a ≈ b."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    live = (a > 0.0) & (b > 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(live, (a - b) / np.where(live, b, 1.0), 0.0)
        near = live & (np.abs(rel) < _NEAR)
        out = np.where(near, np.log1p(np.where(near, rel, 0.0)), out)
        far = live & ~near
        out = np.where(far, np.log(np.where(far, a, 1.0)) - np.log(np.where(far, b, 1.0)), out)
    out[(a > 0.0) & ~(b > 0.0)] = math.inf
    return out


def kl_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KL(a_i‖b_i) per row (or of two vectors), Σ_j b_j h((a_j − b_j)/b_j): every term ≥ 0.

    This is the KL between the rows normalised exactly (to second order in their sums' distance
    from 1, ~1e-32), not Σ a log(a/b) of the floats as given, which differs from it by Σ(a − b).
    ∞ where a row of ``a`` puts mass where ``b``'s does not.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    live = b > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(live, (a - b) / np.where(live, b, 1.0), 0.0)
    out = np.sum(np.where(live, b * xlog1px_minus_x(np.maximum(rel, -1.0)), 0.0), axis=1)
    out[((a > 0.0) & ~live).any(axis=1)] = math.inf
    return out


def generator(transition: np.ndarray) -> np.ndarray:
    """I − P̄ of the rows normalised exactly, each entry to its own relative precision.

    Off the diagonal −P_ij/ΣP_i; on it Σ_{j≠i} P_ij/ΣP_i, summed without subtracting, so every row
    sums to 0 as nearly as its entries allow.  Solving with it (as Grassmann, Taksar and Heyman's
    elimination does) keeps a nearly reducible chain's slow rates, which 1 − P_ii would bury under
    the rows' ulp (a chain leaving a block with probability 10⁻⁶ lost 10⁻¹⁰ of its σ).
    """
    p = np.asarray(transition, dtype=float)
    sums = np.array([math.fsum(row) for row in p])
    out = -p / sums[:, None]
    off = np.array([math.fsum(np.delete(row, i)) for i, row in enumerate(p)])
    out[np.diag_indices_from(out)] = off / sums
    return out


def solve_balanced(off: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A solution x of G x = b with x_{K−1} = 0, for G with off-diagonal ``off`` (≤ 0) and zero row sums.

    G is a chain's generator (singular; b in its range).  The first K − 1 equations in
    x_0 … x_{K−2} form an M-matrix, eliminated as Grassmann, Taksar and Heyman do: each pivot is
    what its row sends to the states left, a sum of non-negative terms (never 1 − P_ii, nor a
    rate of 10⁻⁶ added to a π_j of order 1 as the deflation I − P + 1π does), so the slow rates of
    a nearly reducible chain keep their relative precision (its u: 1.6e-11 → 9e-15).
    """
    k = off.shape[0]
    a = np.array(off[: k - 1, : k - 1], dtype=float)
    slack = -np.asarray(off[: k - 1, k - 1], dtype=float)  # what each row sends to the fixed state
    rhs = np.array(b[: k - 1], dtype=float)
    np.fill_diagonal(a, 0.0)
    for j in range(k - 1):
        pivot = slack[j] - a[j, j + 1 :].sum()  # off-diagonals are ≤ 0: nothing is subtracted
        below = a[j + 1 :, j] / pivot
        a[j + 1 :, j + 1 :] -= np.outer(below, a[j, j + 1 :])
        slack[j + 1 :] -= below * slack[j]
        rhs[j + 1 :] -= below * rhs[j]
        a[j, j] = pivot
    x = np.zeros(k)
    for j in range(k - 2, -1, -1):
        x[j] = (rhs[j] - a[j, j + 1 :] @ x[j + 1 : k - 1]) / a[j, j]
    return x


def kl_from_gap(a: np.ndarray, gap: np.ndarray) -> float:
    """KL(a‖b) for b = a + gap given by its difference: Σ_j b_j h(−gap_j/b_j), every term ≥ 0."""
    b = a + gap
    live = b > 0.0
    rel = np.where(live, -gap / np.where(live, b, 1.0), 0.0)
    return math.fsum(np.where(live, b * xlog1px_minus_x(np.maximum(rel, -1.0)), 0.0))


def _consistent(centred: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """d − κ less its remaining π-mean, so that it is in the generator's range (π·x = 0) to rounding.

    The Poisson solve drops one equation, and whatever of the right side lies along 1 lands on the
    solution divided by the slowest rate: with d constant (a chain whose rows are permutations of
    each other) the rounding of κ alone (1e-17) put ±1e-5 into u through exit rates of 10⁻¹² and
    moved σ by 5e-11.  The π-mean is summed from exact products; a constant along 1 changes only u's
    irrelevant constant, so nothing true is lost.
    """
    hi, lo = two_product(pi, centred)
    return centred - math.fsum([*hi, *lo]) / math.fsum(pi)


@dataclass(frozen=True, eq=False)
class Functional:
    """S_n = g(X_1) + Σ_{t=2}^n F(X_{t−1}, X_t) on a chain's paths (nats).

    Attributes
    ----------
    g : numpy.ndarray
        (K,) the first token's term; 0 where the initial law is 0.
    F : numpy.ndarray
        (K, K) a transition's term; 0 where the transition has probability 0.
    d : numpy.ndarray
        (K,) E[F(i, X') | i], computed by the caller to full precision (a row's KL, entropy …).
    g_mean : float
        E[g(X_1)], likewise (the initial laws' KL, entropy …: Σ μ g would cancel near μ = ν).
    """

    g: np.ndarray
    F: np.ndarray
    d: np.ndarray
    g_mean: float


class Exact:
    """The exact law of S_n/n for one :class:`Functional` of one chain (see the module notes)."""

    def __init__(self, chain: Chain, fn: Functional):
        if chain.stationary is None:
            raise ValueError("the chain has no unique stationary law (it is not irreducible)")
        self.chain, self.fn = chain, fn
        self.pi = chain.stationary
        self.mu = chain.start
        self.rate = math.fsum(self.pi * fn.d)
        self.d_centred = _consistent(fn.d - self.rate, self.pi)
        self._powers: list[np.ndarray] = []  # E^(2^j)
        self._block_powers: list[np.ndarray] = []  # M^(2^j) of the moment recursion

    # -- the rate and the CLT ---------------------------------------------------
    @functools.cached_property
    def poisson(self) -> np.ndarray:
        """u with (I − P + 1π) u = d̃ (so π·u = 0 and u − Pu = d − κ)."""
        hi, lo = self._poisson_parts
        return hi + lo

    @functools.cached_property
    def _poisson_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """u as hi + lo: a balanced solve, refined with residuals of G u = d̃ from exact products.

        A nearly reducible chain (exit rates of 10⁻⁶) has |u| ~ 10⁴ and more; tiny transition
        probabilities (10⁻¹²) need the refinement.  π·u = 0.
        """
        gen = generator(self.chain.transition)
        hi = solve_balanced(gen, self.d_centred)
        lo = np.zeros_like(hi)
        off = gen.copy()
        np.fill_diagonal(off, 0.0)
        for _ in range(_REFINEMENTS):  # residuals of the balanced system: Σ_{j≠i} G_ij (u_j − u_i)
            diff = (hi[None, :] - hi[:, None]) + (lo[None, :] - lo[:, None])
            a_hi, a_lo = two_product(off, diff)
            residual = np.array(
                [math.fsum([self.d_centred[i], *(-a_hi[i]), *(-a_lo[i])]) for i in range(hi.size)]
            )
            lo = lo + solve_balanced(gen, residual)
        shift = math.fsum([*(self.pi * hi), *(self.pi * lo)])
        return hi - shift, lo

    @functools.cached_property
    def sigma2(self) -> float:
        """lim n·Var(S_n/n): Σ_i π_i E[m²|i], m the martingale increment.

        m_ij = F_ij − d_i + u_j − (Pu)_i is formed as F_ij − d_i + Σ_l P_il (u_j − u_l) + u_j (1 − ΣP_i),
        with the differences of u taken part by part, so that u's size never enters.
        """
        p, f, d = self.chain.transition, self.fn.F, self.fn.d
        hi, lo = self._poisson_parts
        diff = (hi[:, None] - hi[None, :]) + (lo[:, None] - lo[None, :])  # u_j − u_l, [j, l]
        drift = np.einsum("il,jl->ij", p, diff)  # Σ_l P_il (u_j − u_l)
        excess = np.array([math.fsum([*row, -1.0]) for row in p])  # ΣP_i − 1
        m = f - d[:, None] + drift - (hi + lo)[None, :] * excess[:, None]
        # a functional constant in exact arithmetic has σ = 0, not the rounding of its terms
        size = np.maximum(np.maximum(np.abs(f), np.abs(d)[:, None]), np.abs(drift))
        m = snap_rounding(m, size)
        v = np.sum(np.where(p > 0.0, p * m * m, 0.0), axis=1)
        return max(math.fsum(self.pi * v), 0.0)

    # -- finite n ------------------------------------------------------------------
    def mean(self, n: int) -> float:
        """E[S_n/n]."""
        first = self.fn.g_mean
        if n == 1:
            return first
        transient = math.fsum(self.mu * self._geometric_sum(n - 1, self.d_centred))
        return math.fsum((first, (n - 1) * self.rate, transient)) / n

    def central_moments(self, n: int) -> tuple[float, float, float]:
        """Var, third and fourth central moments of S_n/n."""
        alpha = self._start_vector()
        for j in range((n - 1).bit_length()):
            if (n - 1) >> j & 1:
                alpha = alpha @ self._block_power(j)
        k = self.chain.k
        raw = [math.fsum(alpha[i * k : (i + 1) * k]) for i in range(5)]
        # rows of floats sum to 1 only within an ulp: n steps scale every moment by the same
        # (1 + nε), the total probability raw[0], which is divided out (it was 3e-5 at n = 10¹²)
        m1, m2, m3, m4 = (r / raw[0] for r in raw[1:])
        var = max(m2 - m1 * m1, 0.0)
        mu3 = m3 - 3.0 * m1 * m2 + 2.0 * m1**3
        mu4 = m4 - 4.0 * m1 * m3 + 6.0 * m1 * m1 * m2 - 3.0 * m1**4
        return var / n**2, mu3 / n**3, max(mu4, 0.0) / n**4

    # -- helpers ---------------------------------------------------------------------
    def _power(self, j: int) -> np.ndarray:
        """E^(2^j), E = P − 1π."""
        while len(self._powers) <= j:
            if not self._powers:
                self._powers.append(self.chain.transition - np.outer(np.ones(self.chain.k), self.pi))
            else:
                last = self._powers[-1]
                self._powers.append(last @ last)
        return self._powers[j]

    def _geometric_sum(self, m: int, x: np.ndarray) -> np.ndarray:
        """G(m) x = Σ_{s<m} E^s x by binary doubling: G(c + 2^j) x = G(2^j) x + E^(2^j) G(c) x."""
        out = np.zeros_like(x)
        block = x.copy()  # G(2^j) x
        for j in range(m.bit_length()):
            if m >> j & 1:
                out = block + self._power(j) @ out
            block = block + self._power(j) @ block
        return out

    def _start_vector(self) -> np.ndarray:
        """(μ_i g̃_i^k)_{k ≤ 4}, g̃ = g − μ·g: the moments of T_1 by its state."""
        g = self.fn.g - self.fn.g_mean
        g = np.where(self.mu > 0.0, g, 0.0)
        return np.concatenate([self.mu * g**k for k in range(5)])

    def _block_power(self, j: int) -> np.ndarray:
        """M^(2^j) of the recursion α'_k = Σ_{l ≤ k} C(k, l) α_l (P ∘ F̃^(k−l)), F̃ = F − κ."""
        _POWERS.touch(self)
        while len(self._block_powers) <= j:
            if not self._block_powers:
                self._block_powers.append(self._block_matrix())
            else:
                last = self._block_powers[-1]
                self._block_powers.append(last @ last)
            _POWERS.grow(self, self._block_powers[-1].nbytes)
        return self._block_powers[j]

    def _block_matrix(self) -> np.ndarray:
        p, k = self.chain.transition, self.chain.k
        f = np.where(p > 0.0, snap_rounding(self.fn.F - self.rate, np.abs(self.fn.F)), 0.0)
        out = np.zeros((5 * k, 5 * k))
        for low in range(5):
            for high in range(low, 5):
                block = math.comb(high, low) * p * f ** (high - low)
                out[low * k : (low + 1) * k, high * k : (high + 1) * k] = block
        return out


class _PowerBudget:
    """Bounds the memory the moment recursions' squarings hold across every :class:`Exact` alive.

    A K = 100 chain's squarings to n = 10⁷ take ~50 MB per estimator; the least recently used
    are dropped beyond :data:`POWER_BUDGET` (and recomputed if asked for again).
    """

    def __init__(self, budget: int):
        self.budget = budget
        self.held: dict[int, tuple[weakref.ref, int]] = {}  # id → (the Exact, bytes), oldest first

    def touch(self, exact: Exact) -> None:
        key = id(exact)
        if key in self.held:
            self.held[key] = self.held.pop(key)

    def grow(self, exact: Exact, nbytes: int) -> None:
        key = id(exact)
        _, held = self.held.pop(key, (None, 0))
        self.held[key] = (weakref.ref(exact, lambda _, key=key: self.held.pop(key, None)), held + nbytes)
        while sum(b for _, b in self.held.values()) > self.budget and len(self.held) > 1:
            oldest = next(iter(self.held))
            ref, _ = self.held.pop(oldest)
            victim = ref()
            if victim is not None:
                victim._block_powers = []


#: Bytes of squarings kept at once (see :class:`_PowerBudget`).
POWER_BUDGET = 128 * 2**20
_POWERS = _PowerBudget(POWER_BUDGET)
