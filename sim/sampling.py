"""Exact, nested sampling of category counts along growing sample paths.

A replicate is one infinite i.i.d. sequence x_1, x_2, … from p.  The
estimators at sample size N depend on the sequence only through the counts
of each category among x_1..x_N, so a path is represented by its cumulative
counts at the checkpoints N_1 < N_2 < …  Between checkpoints the counts grow
by an independent Multinomial(N_j − N_{j−1}, p) increment, which makes each
checkpoint a prefix of the same sequence as the next and makes the cost of a
replicate independent of N.

Three methods draw the increments, all exactly:

``counts``
    An increment m costs O(min(m, K)) per path.  K = 2: one Binomial draw.
    m < K: the m observations themselves, by Walker's alias method (O(1)
    each: a uniform category j, kept with probability ``threshold[j]``, else
    replaced by ``alias[j]``; beyond :data:`ALIAS_MAX_K` categories by
    inverse CDF, O(log K) each).  m ≥ K: numpy's Multinomial, or from
    :data:`POISSON_K` categories on, a *Poissonised* Multinomial:
    independent Poisson(λ p_k) counts with λ = m − 5√m, whose total T is
    Poisson(λ) and which given T are Multinomial(T, p); a path with T ≤ m is
    completed by m − T further observations, which makes it Multinomial(m, p)
    whatever T was, and the rare path with T > m (probability ≈ 3·10⁻⁷) is
    drawn again.  Vectorised Poisson draws cost about half numpy's
    category-by-category Binomials.  The completion takes about 5√m
    observations, so beyond m = (K/5)² numpy's Multinomial is used again.
``per-sample``
    Every observation is drawn (inverse CDF on uniforms) and counted.  Its
    cost grows with N; it exists to validate ``counts``.
``multinomial``
    Every increment a numpy Multinomial, whatever its size: the plain method
    the benchmarks compare ``counts`` against.

"Exactly" means up to the rounding of the probabilities themselves (the
alias table and the CDF are built in double precision), never a normal or
other approximation.  Categories are expected in decreasing order of
probability (the caller sorts), which keeps the inverse-CDF search short.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

#: Uniforms drawn at once by the per-observation path (bounds temporary memory).
CHUNK = 1 << 20

METHODS = ("counts", "per-sample", "multinomial")

#: From this many categories on, ``counts`` draws increments m ≥ K as a
#: Poissonised Multinomial; below it numpy's Multinomial is as fast.
POISSON_K = 1024
#: λ = m − POISSON_MARGIN·√m: a Poisson total overshoots m with probability ≈ 3·10⁻⁷.
POISSON_MARGIN = 5.0
#: Beyond this many categories no alias table is built (its construction is a
#: Python loop, ~0.6 µs a category): observations are drawn by inverse CDF and
#: increments of at least K by numpy's Multinomial.
ALIAS_MAX_K = 1 << 20


def count_paths(
    probs: np.ndarray,
    checkpoints: Sequence[int],
    size: int,
    *,
    rng: np.random.Generator,
    method: str = "counts",
    with_delta: bool = False,
) -> Iterator[np.ndarray]:
    """Yield the cumulative counts of ``size`` sample paths at each checkpoint.

    Parameters
    ----------
    probs : numpy.ndarray
        Positive probabilities of the K categories, summing to 1.
    checkpoints : sequence of int
        Strictly increasing sample sizes N_j ≥ 1.
    size : int
        Number of independent paths (replicates).
    rng : numpy.random.Generator
        The only source of randomness.
    method : {"counts", "per-sample", "multinomial"}
        How increments are drawn (see the module notes).

    with_delta : bool
        Also yield what changed since the previous checkpoint (see below).

    Yields
    ------
    numpy.ndarray
        ``(size, K)`` int64 counts of each category among the first N_j
        observations; row sums equal N_j.  The same array object is updated
        in place and yielded each time: copy it to keep it.  With
        ``with_delta``, pairs ``(counts, delta)``: ``delta`` is None when the
        increment was drawn as whole count vectors, else ``(cells, before)``:
        the flat indices of the cells that changed (sorted) and their counts
        before the change.
    """
    sampler = _Sampler.of(probs, method, size, rng)
    counts = np.zeros((size, sampler.p.size), dtype=np.int64)
    for m in _increments(checkpoints):
        delta = sampler.draw(counts, m)
        yield (counts, delta) if with_delta else counts


def _increments(checkpoints: Sequence[int]) -> Iterator[int]:
    """N_1, N_2 − N_1, …: the number of observations added at each checkpoint."""
    previous = 0
    for n in checkpoints:
        m = int(n) - previous
        previous = int(n)
        if m <= 0:
            raise ValueError("checkpoints must be strictly increasing and positive")
        yield m


#: What :meth:`_Sampler.draw` returns: None, or the changed cells and their counts before.
_Delta = tuple[np.ndarray, np.ndarray] | None


@dataclass(frozen=True)
class _Sampler:
    """How ``size`` paths over the probabilities ``p`` draw their increments.

    ``table`` is the alias table (``counts`` with 2 < K ≤ :data:`ALIAS_MAX_K`),
    else None; the CDF is built when first needed.
    """

    p: np.ndarray
    method: str
    size: int
    rng: np.random.Generator
    table: tuple[np.ndarray, np.ndarray] | None

    @classmethod
    def of(cls, probs: np.ndarray, method: str, size: int, rng: np.random.Generator) -> _Sampler:
        """Check the method and probabilities (normalised here) and build the sampler."""
        if method not in METHODS:
            raise ValueError(f"unknown sampling method {method!r}")
        p = np.asarray(probs, dtype=float)
        if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError(
                "probs must be a non-empty vector of finite, non-negative numbers with a positive sum"
            )
        p = p / p.sum()
        k = p.size
        table = _alias_table(p.tobytes()) if method == "counts" and 2 < k <= ALIAS_MAX_K else None
        return cls(p, method, size, rng, table)

    @functools.cached_property
    def cdf(self) -> np.ndarray:
        """The cumulative probabilities, for inverse-CDF draws."""
        return _cdf(self.p)

    def draw(self, counts: np.ndarray, m: int) -> _Delta:
        """Add an increment of m observations to every path's ``counts`` (in place).

        Returns None when whole count vectors were added, else ``(cells, before)``
        (see :func:`count_paths`).
        """
        return self._drawer(m)(self, counts, m)

    def _drawer(self, m: int) -> Callable[[_Sampler, np.ndarray, int], _Delta]:
        """The way an increment of m is drawn: the first that applies (see the module notes)."""
        k = self.p.size
        if k == 1:
            return _one_category
        if self.method == "per-sample" or (
            self.method == "counts" and self.table is None and k > 2 and m < k
        ):
            return _by_inverse_cdf
        if self.table is not None and m < k:
            return _by_alias
        if k == 2:
            return _by_binomial
        if self.table is not None and k >= POISSON_K and POISSON_MARGIN * math.sqrt(m) <= k:
            return _by_poisson
        return _by_multinomial


def _one_category(s: _Sampler, counts: np.ndarray, m: int) -> _Delta:
    """K = 1: every observation falls in the one category."""
    counts[:, 0] += m
    return None


def _by_inverse_cdf(s: _Sampler, counts: np.ndarray, m: int) -> _Delta:
    """The m observations themselves, by inverse CDF."""
    return _add(counts, _inverse_cdf(s.cdf, s.rng, s.size, m))


def _by_alias(s: _Sampler, counts: np.ndarray, m: int) -> _Delta:
    """The m observations themselves, by the alias method."""
    return _add(counts, _alias_draws(s.table, s.rng, np.full(s.size, m)))


def _by_binomial(s: _Sampler, counts: np.ndarray, m: int) -> _Delta:
    """A coin: one Binomial draw of the heads."""
    heads = s.rng.binomial(m, s.p[0], size=s.size)
    counts[:, 0] += heads
    counts[:, 1] += m - heads
    return None


def _by_poisson(s: _Sampler, counts: np.ndarray, m: int) -> _Delta:
    """A Poissonised Multinomial, completed to m (see :func:`_poissonised`)."""
    counts += _poissonised(m, s.p, s.table, s.size, s.rng)
    return None


def _by_multinomial(s: _Sampler, counts: np.ndarray, m: int) -> _Delta:
    """numpy's Multinomial."""
    counts += s.rng.multinomial(m, s.p, size=s.size)
    return None


def _cdf(p: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return cdf


def _inverse_cdf(cdf: np.ndarray, rng: np.random.Generator, size: int, m: int) -> np.ndarray:
    """Flat cell indices (row·K + category) of ``m`` observations per row, by inverse CDF."""
    k = cdf.size
    offsets = (np.arange(size, dtype=np.int64) * k)[:, None]
    per_chunk = max(1, CHUNK // size)
    cells = []
    done = 0
    while done < m:
        c = min(per_chunk, m - done)
        idx = np.minimum(np.searchsorted(cdf, rng.random((size, c)), side="right"), k - 1)
        cells.append((idx + offsets).ravel())
        done += c
    return np.concatenate(cells)


@functools.lru_cache(maxsize=4)
def _alias_table(probs: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction) of the probabilities in ``probs``.

    Returns ``(threshold, alias)``: category j drawn uniformly is kept with
    probability ``threshold[j]``, else replaced by ``alias[j]``.  Cached: a
    run builds it once per distribution, not once per block.
    """
    p = np.frombuffer(probs, dtype=float)
    k = p.size
    scaled = (p * (k / p.sum())).tolist()
    threshold = [1.0] * k
    alias = list(range(k))
    small = [i for i, x in enumerate(scaled) if x < 1.0]
    large = [i for i, x in enumerate(scaled) if x >= 1.0]
    while small and large:
        i, j = small.pop(), large[-1]
        threshold[i], alias[i] = scaled[i], j
        scaled[j] = (scaled[j] + scaled[i]) - 1.0
        if scaled[j] < 1.0:
            small.append(large.pop())
    # what is left over holds probability 1 up to rounding: keep it
    return np.array(threshold), np.array(alias, dtype=np.int64)


def _alias_draws(table, rng: np.random.Generator, per_row: np.ndarray) -> np.ndarray:
    """Flat cell indices of ``per_row[r]`` observations for each row r, by the alias method."""
    threshold, alias = table
    k = threshold.size
    rows = np.repeat(np.arange(per_row.size, dtype=np.int64) * k, per_row)
    j = rng.integers(0, k, size=rows.size)
    keep = rng.random(rows.size) < threshold[j]
    return rows + np.where(keep, j, alias[j])


def _add(counts: np.ndarray, cells: np.ndarray):
    """Add one observation to each cell in ``cells`` (flat indices, repeats allowed).

    Returns ``(cells, before)``: the sorted flat indices of the cells that
    changed and their counts before.  Few observations are sorted (O(m log m),
    not O(K)); many are counted densely.
    """
    flat = counts.reshape(-1)
    if 8 * cells.size >= flat.size:
        increment = np.bincount(cells, minlength=flat.size)
        changed = np.flatnonzero(increment)
        before = flat[changed]
        flat += increment
    else:
        changed, amounts = np.unique(cells, return_counts=True)
        before = flat[changed]
        flat[changed] += amounts
    return changed, before


def _poissonised(m: int, p: np.ndarray, table, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` Multinomial(m, p) rows, Poissonised and completed (see the module notes)."""
    lam = m - POISSON_MARGIN * math.sqrt(m)
    rows = rng.poisson(lam * p, size=(size, p.size))
    totals = rows.sum(axis=1)
    while (over := np.flatnonzero(totals > m)).size:  # redraw the (rare) rows that overshoot m
        rows[over] = rng.poisson(lam * p, size=(over.size, p.size))
        totals[over] = rows[over].sum(axis=1)
    rest = m - totals
    flat = rows.reshape(-1)
    flat += np.bincount(_alias_draws(table, rng, rest), minlength=flat.size)
    return rows
