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

With ``sparse``, :func:`count_paths` holds a block's counts as their
non-zero cells while the increments are far below K (nothing of size K is
allocated or cleared) and says which cells each increment changed; the draws
are the same.

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
    sparse: bool = False,
) -> Iterator[np.ndarray] | Iterator[tuple[np.ndarray | None, Change | None]]:
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
    sparse : bool
        Yield what changed at each checkpoint, and hold the counts as their
        non-zero cells while increments are far below K (see below).  The
        draws are the same either way.

    Yields
    ------
    numpy.ndarray
        ``(size, K)`` int64 counts of each category among the first N_j
        observations; row sums equal N_j.  The same array object is updated
        in place and yielded each time: copy it to keep it.  With
        ``sparse``, pairs ``(counts, change)``: ``counts`` is None while the
        paths are held as their non-zero cells (see :class:`_Paths` for when
        they stop being), then the dense counts; ``change`` is None when the
        increment was drawn as whole count vectors, else a :class:`Change`.
    """
    sampler = _Sampler.of(probs, method, size, rng)
    if sparse:
        return _Paths(sampler).steps(checkpoints)
    return _dense_paths(sampler, checkpoints)


def _dense_paths(sampler: _Sampler, checkpoints: Sequence[int]) -> Iterator[np.ndarray]:
    """:func:`count_paths`: the dense counts, updated in place."""
    counts = np.zeros((sampler.size, sampler.p.size), dtype=np.int64)
    for m in _increments(checkpoints):
        sampler.draw(counts, m)
        yield counts


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
class Change:
    """The cells of a block's counts that an increment of observations changed.

    Cells are in increasing (row, category) order, each once: ``rows`` and
    ``cols`` locate them, ``before`` and ``after`` are their int64 counts
    before and after the increment.
    """

    rows: np.ndarray
    cols: np.ndarray
    before: np.ndarray
    after: np.ndarray

    @classmethod
    def at(cls, cells: np.ndarray, k: int, before: np.ndarray, after: np.ndarray) -> Change:
        """The change at the flat cells ``cells`` (row·K + category, increasing)."""
        rows = cells // k
        return cls(rows, cells - rows * k, before, after)


@dataclass(frozen=True)
class _Sampler:
    """How ``size`` paths over the probabilities ``p`` draw their increments.

    ``table`` is the alias table (``counts`` with 2 < K ≤ :data:`ALIAS_MAX_K`),
    else None, and ``records`` the same table as one array of records; the
    CDF is built when first needed.
    """

    p: np.ndarray
    method: str
    size: int
    rng: np.random.Generator
    table: tuple[np.ndarray, np.ndarray] | None
    records: np.ndarray | None

    @classmethod
    def of(cls, probs: np.ndarray, method: str, size: int, rng: np.random.Generator) -> _Sampler:
        """Check the method and probabilities (normalised here) and build the sampler."""
        if method not in METHODS:
            raise ValueError(f"unknown sampling method {method!r}")
        p, table, records = _prepared(probs, method)
        return cls(p, method, size, rng, table, records)

    @functools.cached_property
    def cdf(self) -> np.ndarray:
        """The cumulative probabilities, for inverse-CDF draws."""
        return _cdf(self.p)

    def draw(self, counts: np.ndarray, m: int) -> _Delta:
        """Add an increment of m observations to every path's ``counts`` (in place).

        Returns None when whole count vectors were added, else ``(cells, before)``:
        the sorted flat indices of the cells that changed and their counts before.
        """
        observe = self.observer(m)
        if observe is None:
            self.whole(m)(self, counts, m)
            return None
        return _add(counts, observe(self, m))

    def observer(self, m: int) -> Callable[[_Sampler, int], np.ndarray] | None:
        """How an increment of m is drawn as observations (see the module notes), or None.

        The drawer returns the categories of the m observations of each
        path, ``(size, m)``.  None: the increment is drawn as whole count
        vectors (:meth:`whole`).
        """
        k = self.p.size
        if k == 1:
            return None
        if self.method == "per-sample" or (
            self.method == "counts" and self.table is None and k > 2 and m < k
        ):
            return _inverse_cdf_cells
        if self.table is not None and m < k:
            return _alias_cells
        return None

    def whole(self, m: int) -> Callable[[_Sampler, np.ndarray, int], None]:
        """How an increment of m not drawn as observations is added to the counts."""
        k = self.p.size
        if k == 1:
            return _one_category
        if k == 2:
            return _by_binomial
        if self.table is not None and k >= POISSON_K and POISSON_MARGIN * math.sqrt(m) <= k:
            return _by_poisson
        return _by_multinomial


def _prepared(probs: np.ndarray, method: str) -> tuple[np.ndarray, tuple | None, np.ndarray | None]:
    """``(p, table, records)``: the probabilities checked and normalised, their alias table as both.

    Every block of a case draws from the same read-only array: what was made
    of it last is kept (by identity) and reused rather than checked,
    normalised and looked up again (O(K) each time).
    """
    reusable = isinstance(probs, np.ndarray) and not probs.flags.writeable and probs.flags.owndata
    last = _LAST_PREPARED.get(method)
    if reusable and last is not None and last[0] is probs:
        return last[1]
    p = np.asarray(probs, dtype=float)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(
            "probs must be a non-empty vector of finite, non-negative numbers with a positive sum"
        )
    p = p / p.sum()
    p.setflags(write=False)  # shared by the samplers of every block
    k = p.size
    table = _alias_table(p.tobytes()) if method == "counts" and 2 < k <= ALIAS_MAX_K else None
    prepared = p, table, None if table is None else _records(table)
    if reusable:
        _LAST_PREPARED[method] = (probs, prepared)
    return prepared


#: Per method, the last read-only probabilities prepared and what :func:`_prepared` made of them.
_LAST_PREPARED: dict[str, tuple[np.ndarray, tuple]] = {}


def _one_category(s: _Sampler, counts: np.ndarray, m: int) -> None:
    """K = 1: every observation falls in the one category."""
    counts[:, 0] += m


def _inverse_cdf_cells(s: _Sampler, m: int) -> np.ndarray:
    """The categories of m observations of each path, ``(size, m)``, by inverse CDF."""
    k = s.cdf.size
    per_chunk = max(1, CHUNK // s.size)
    chunks = []
    done = 0
    while done < m:
        c = min(per_chunk, m - done)
        chunks.append(np.minimum(np.searchsorted(s.cdf, s.rng.random((s.size, c)), side="right"), k - 1))
        done += c
    return np.concatenate(chunks, axis=1)


def _alias_cells(s: _Sampler, m: int) -> np.ndarray:
    """The categories of m observations of each path, ``(size, m)``, by the alias method.

    The same draws as :func:`_alias_draws` (numpy draws integers below 2³² from
    the same 32-bit stream whatever the dtype), in 32 bits; the table is read
    as records, one memory access per observation for both of its halves.
    """
    j = s.rng.integers(0, s.records.size, size=(s.size, m), dtype=np.int32)
    drawn = s.records.take(j)
    return np.where(s.rng.random((s.size, m)) < drawn["threshold"], j, drawn["alias"])


#: An alias table entry: both halves side by side.
_RECORD = np.dtype([("threshold", np.float64), ("alias", np.int32)], align=True)


def _records(table: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The alias table ``(threshold, alias)`` as one array of records."""
    threshold, alias = table
    records = np.empty(threshold.size, dtype=_RECORD)
    records["threshold"], records["alias"] = threshold, alias
    records.setflags(write=False)
    return records


def _by_binomial(s: _Sampler, counts: np.ndarray, m: int) -> None:
    """A coin: one Binomial draw of the heads."""
    heads = s.rng.binomial(m, s.p[0], size=s.size)
    counts[:, 0] += heads
    counts[:, 1] += m - heads


def _by_poisson(s: _Sampler, counts: np.ndarray, m: int) -> None:
    """A Poissonised Multinomial, completed to m (see :func:`_poissonised`)."""
    counts += _poissonised(m, s.p, s.table, s.size, s.rng)


def _by_multinomial(s: _Sampler, counts: np.ndarray, m: int) -> None:
    """numpy's Multinomial."""
    counts += s.rng.multinomial(m, s.p, size=s.size)


class _Paths:
    """The counts of a block's paths, held as their non-zero cells while few, else dense.

    Sparse, each non-zero cell is held as ``2·(row·K + category)`` in
    ``tags`` (increasing) and its count in ``values``: an increment of m
    observations per path then costs one sort of O(size·m) numbers, however
    large K is, and nothing of size K is allocated or cleared.  Dense
    counts are made, for good, at the first increment drawn as whole count
    vectors, at one whose observations could fill more than a quarter of the
    dense array (which bounds the memory by that of the dense counts), or
    once held cells sorted again at later increments add up to the dense
    array's size (many small increments: from there dense counts cost less).
    """

    def __init__(self, sampler: _Sampler):
        self.sampler = sampler
        self.cells = sampler.size * sampler.p.size
        self.counts: np.ndarray | None = None
        self.tags = np.empty(0, dtype=np.int32 if 2 * self.cells < 2**31 else np.int64)
        self.values = np.empty(0, dtype=np.int64)
        self.resorted = 0

    def steps(self, checkpoints: Sequence[int]) -> Iterator[tuple[np.ndarray | None, Change | None]]:
        """``(counts, change)`` at each checkpoint (see :func:`count_paths`)."""
        for m in _increments(checkpoints):
            change = self.step(m)
            yield self.counts, change

    def step(self, m: int) -> Change | None:
        """Draw an increment of m observations per path; what it changed, or None (whole vectors)."""
        s = self.sampler
        observe = s.observer(m)
        if observe is None:
            s.whole(m)(s, self.dense(), m)
            return None
        cols = observe(s, m)
        k = s.p.size
        if self.counts is None and self._stays_sparse(cols.size):
            return self._merge(cols, k)
        changed, before = _add(self.dense(), cols)
        return Change.at(changed, k, before, self.counts.reshape(-1)[changed])

    def _stays_sparse(self, observations: int) -> bool:
        """Whether the next ``observations`` are merged into the sparse cells (see the class notes)."""
        held = self.tags.size
        if 4 * (held + observations) > self.cells or self.resorted + held > self.cells:
            return False
        self.resorted += held
        return True

    def dense(self) -> np.ndarray:
        """The dense ``(size, K)`` counts, made from the sparse cells the first time."""
        if self.counts is None:
            self.counts = np.zeros((self.sampler.size, self.sampler.p.size), dtype=np.int64)
            self.counts.reshape(-1)[self.tags >> 1] = self.values
            self.tags = self.values = None
        return self.counts

    def _merge(self, cols: np.ndarray, k: int) -> Change:
        """Add the observations ``cols`` (categories, row by row) to the sparse counts.

        The held cells (tagged 2c) and the new observations (tagged 2c + 1)
        are sorted together: each cell is then a run of equal c, whose first
        tag says whether it was held and whose length is its count of new
        observations (plus one if held).
        """
        held = self.tags.size
        tags = np.empty(held + cols.size, dtype=self.tags.dtype)
        tags[:held] = self.tags
        new = tags[held:].reshape(cols.shape)
        np.multiply(cols, 2, out=new, casting="unsafe")
        new += (np.arange(cols.shape[0], dtype=tags.dtype) * (2 * k) + 1)[:, None]
        tags.sort()
        first = np.empty(tags.size, dtype=bool)  # where a run of one cell begins
        first[:1] = True
        np.greater(tags[1:] - tags[:-1], tags[1:] & 1, out=first[1:])  # c changed, not just the tag
        starts = np.flatnonzero(first)
        heads = tags[starts]
        fresh = heads & 1  # 1 where the cell was not held
        added = np.empty(starts.size, dtype=np.int64)
        np.subtract(starts[1:], starts[:-1], out=added[:-1])
        added[-1:] = tags.size - starts[-1:]
        added += fresh - 1
        before = np.zeros(starts.size, dtype=np.int64)
        before[fresh == 0] = self.values
        after = before + added
        heads -= fresh
        self.tags, self.values = heads, after
        changed = np.flatnonzero(added)
        return Change.at(heads.take(changed) >> 1, k, before.take(changed), after.take(changed))


def _cdf(p: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return cdf


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
    return np.array(threshold), np.array(alias, dtype=np.int32)  # K ≤ ALIAS_MAX_K


def _alias_draws(table, rng: np.random.Generator, per_row: np.ndarray) -> np.ndarray:
    """Flat cell indices of ``per_row[r]`` observations for each row r, by the alias method."""
    threshold, alias = table
    k = threshold.size
    rows = np.repeat(np.arange(per_row.size, dtype=np.int64) * k, per_row)
    j = rng.integers(0, k, size=rows.size)
    keep = rng.random(rows.size) < threshold[j]
    return rows + np.where(keep, j, alias[j])


def _add(counts: np.ndarray, cols: np.ndarray):
    """Add to each row of ``counts`` one observation of each category in that row of ``cols``.

    Returns ``(cells, before)``: the sorted flat indices (row·K + category) of
    the cells that changed and their counts before.  Few observations are
    sorted (O(m log m), not O(K)); many are counted densely.
    """
    size, k = counts.shape
    cells = (cols + (np.arange(size, dtype=np.int64) * k)[:, None]).ravel()
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
