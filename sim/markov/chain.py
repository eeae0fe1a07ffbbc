"""A finite Markov chain: its transition matrix, initial law, irreducibility and stationary law.

A categorical (i.i.d., "unigram") model is the chain whose rows all equal its probabilities and
whose initial law is those probabilities: :func:`unigram` builds it, and everything else treats
both alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

#: The most states a chain may have: its exact finite-n moments power (5K × 5K) matrices.
MAX_STATES = 100


@dataclass(frozen=True, eq=False)
class Chain:
    """A Markov chain on states 0..K−1.

    Attributes
    ----------
    transition : numpy.ndarray
        (K, K), rows summing to 1: ``transition[i, j]`` = P(X_{t+1} = j | X_t = i).
    initial : numpy.ndarray or None
        The law of X_1; None for the stationary law (which then must exist).
    iid : bool
        Every row is the same (a categorical model): its observations are independent.
    """

    transition: np.ndarray
    initial: np.ndarray | None = None
    iid: bool = False

    @property
    def k(self) -> int:
        """The number of states."""
        return int(self.transition.shape[0])

    @functools.cached_property
    def irreducible(self) -> bool:
        """Whether every state can reach every other (the graph of positive transitions is strongly connected)."""
        edges = self.transition > 0.0
        return bool(reachable(edges, 0).all() and reachable(edges.T, 0).all())

    @functools.cached_property
    def stationary(self) -> np.ndarray | None:
        """The stationary law π (π P = π): unique for an irreducible chain; None when not."""
        if self.iid:
            return self.transition[0].copy()
        if not self.irreducible:
            return None
        return gth_stationary(self.transition)

    @functools.cached_property
    def start(self) -> np.ndarray | None:
        """The law of X_1: :attr:`initial`, or the stationary law."""
        return self.stationary if self.initial is None else self.initial


def unigram(probs: np.ndarray) -> Chain:
    """The chain of i.i.d. draws from ``probs``: every row and the initial law are ``probs``."""
    probs = np.asarray(probs, dtype=float)
    return Chain(np.tile(probs, (probs.size, 1)), probs.copy(), iid=True)


def reachable(edges: np.ndarray, start: int) -> np.ndarray:
    """The states ``start`` reaches along ``edges`` (a boolean adjacency matrix), itself included."""
    seen = np.zeros(edges.shape[0], dtype=bool)
    seen[start] = True
    frontier = seen.copy()
    while frontier.any():
        reached = edges[frontier].any(axis=0)
        frontier = reached & ~seen
        seen |= reached
    return seen


def gth_stationary(transition: np.ndarray) -> np.ndarray:
    """The stationary law of an irreducible chain by Grassmann, Taksar and Heyman's elimination.

    It subtracts nothing (every quantity is a sum of non-negative terms), so each π_i keeps
    its relative precision even when the chain is nearly reducible or π spans many decades.
    """
    a = np.array(transition, dtype=float)
    k = a.shape[0]
    for n in range(k - 1, 0, -1):
        total = a[n, :n].sum()  # = 1 − a[n, n] (and what was folded in), without the subtraction
        a[:n, n] /= total
        a[:n, :n] += np.outer(a[:n, n], a[n, :n])
    pi = np.zeros(k)
    pi[0] = 1.0
    for j in range(1, k):
        pi[j] = pi[:j] @ a[:j, j]
    return pi / pi.sum()


def gth_gap(transition: np.ndarray, other: np.ndarray, change: np.ndarray) -> np.ndarray:
    """π_Q − π_P for two irreducible chains, from ``change`` = Q − P, by differentiated GTH elimination.

    :func:`gth_stationary` runs on both, and beside it every quantity's difference between the two
    runs is carried from the differences of its inputs (a product's by the product rule, a
    quotient's likewise), never as the difference of two rounded results.  The gap keeps the
    relative precision of ``change`` when Q is a tiny perturbation of P (where π_Q − π_P would keep
    only ε/|gap| of it), and when the chains are nearly reducible (where solving the gap's linear
    system would lose the blocks' slow exchange rates: 1e-10 with exit rates of 10⁻⁶).
    ``change`` must be the difference of the rows as normalised (its ulps are first order here).
    """
    a, b, da = (np.array(m, dtype=float) for m in (transition, other, change))
    k = a.shape[0]
    for n in range(k - 1, 0, -1):
        sa, sb, ds = a[n, :n].sum(), b[n, :n].sum(), da[n, :n].sum()
        da[:n, n] = (da[:n, n] - a[:n, n] / sa * ds) / sb  # d(c) of the column c = a[:, n] / s
        a[:n, n] /= sa
        b[:n, n] /= sb
        da[:n, :n] += np.outer(da[:n, n], b[n, :n]) + np.outer(a[:n, n], da[n, :n])
        a[:n, :n] += np.outer(a[:n, n], a[n, :n])
        b[:n, :n] += np.outer(b[:n, n], b[n, :n])
    x, y, dx = np.zeros(k), np.zeros(k), np.zeros(k)
    x[0] = y[0] = 1.0
    for j in range(1, k):
        x[j] = x[:j] @ a[:j, j]
        y[j] = y[:j] @ b[:j, j]
        dx[j] = dx[:j] @ b[:j, j] + x[:j] @ da[:j, j]
    total_x, total_y, d_total = x.sum(), y.sum(), dx.sum()
    return (dx - x / total_x * d_total) / total_y
