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

With ``sparse``, :func:`count_paths` says which cells each increment
changed, and borrows its counts from an array the thread reuses from block
to block, clearing only the cells a block touched: while the increments are
far below K, nothing of size K is allocated or cleared.  The draws are the
same.

"Exactly" means up to the rounding of the probabilities themselves (the
alias table and the CDF are built in double precision), never a normal or
other approximation.  Categories are expected in decreasing order of
probability (the caller sorts), which keeps the inverse-CDF search short.
"""

from __future__ import annotations

import functools
import math
import threading
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
) -> Iterator[np.ndarray] | Iterator[tuple[np.ndarray, Change | None]]:
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
        Yield what changed at each checkpoint, with counts lent by the
        thread (see :class:`_Lease`).  The draws are the same either way.

    Yields
    ------
    numpy.ndarray
        ``(size, K)`` int64 counts of each category among the first N_j
        observations; row sums equal N_j.  The same array object is updated
        in place and yielded each time: copy it to keep it.  With
        ``sparse``, pairs ``(counts, change)``, ``change`` None when the
        increment was drawn as whole count vectors, else a :class:`Change`;
        the counts are cleared once the steps end (or are dropped).
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

    def draw(self, counts: np.ndarray, m: int) -> None:
        """Add an increment of m observations to every path's ``counts`` (in place)."""
        observe = self.observer(m)
        if observe is None:
            self.whole(m)(self, counts, m)
        else:
            _observed(counts, observe(self, m))

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
    Flat sizes, reshaped after: the same draws in the same (C) order, without
    the generator's product of a shape at every call.
    """
    n = s.size * m
    j = s.rng.integers(0, s.records.size, size=n, dtype=np.int32)
    drawn = s.records.take(j)
    return np.where(s.rng.random(n) < drawn["threshold"], j, drawn["alias"]).reshape(s.size, m)


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
    """The dense counts of a block's paths, lent by this thread (see :class:`_Lease`).

    Each increment drawn as observations is added where they fell, found by
    sorting each path's observations (O(size·m log m), however large K is),
    and the changed cells are recorded; when the paths are done only those
    cells are cleared again.  So a block whose increments are all far below
    K costs nothing of size K: it neither allocates nor clears its counts.
    """

    def __init__(self, sampler: _Sampler):
        self.sampler = sampler
        self.lease: _Lease | None = None
        self.counts: np.ndarray | None = None

    def steps(self, checkpoints: Sequence[int]) -> Iterator[tuple[np.ndarray, Change | None]]:
        """``(counts, change)`` at each checkpoint (see :func:`count_paths`).

        The counts are borrowed at the first step and given back when the
        steps end, are closed or are dropped.
        """
        size, k = self.sampler.size, self.sampler.p.size
        self.lease = _Lease.lend(size * k)
        self.counts = self.lease.cells.reshape(size, k)
        try:
            for m in _increments(checkpoints):
                yield self.counts, self.step(m)
        finally:
            self.lease.give_back()

    def step(self, m: int) -> Change | None:
        """Draw an increment of m observations per path; what it changed, or None (whole vectors)."""
        s = self.sampler
        observe = s.observer(m)
        if observe is None:
            self.lease.touched(None)
            s.whole(m)(s, self.counts, m)
            return None
        try:
            change, cells = _observed(self.counts, observe(s, m))
        except BaseException:  # interrupted while adding: any cell may have changed
            self.lease.touched(None)
            raise
        self.lease.touched(cells)
        return change


#: Most cells (paths × categories) lent from a thread's reusable counts; larger
#: counts are allocated for their paths alone.
SHARED_CELLS = 1 << 22


class _Lease:
    """Zero int64 counts lent from this thread's reusable array, cleared again where touched.

    A block's paths borrow the array's first cells (:meth:`lend`), say which
    cells they are about to change (:meth:`touched`), and :meth:`give_back`
    clears just those (or every lent cell, once they add up to more than a
    quarter of them), so the array is all zero whenever it is not lent.  It
    keeps its largest size (at most :data:`SHARED_CELLS` int64s) for the
    thread's lifetime.  While it is lent, another request gets new zeros of
    its own: paths drawn side by side never share counts.
    """

    def __init__(self, cells: np.ndarray, slot: _Slot | None):
        self.cells = cells
        self.slot = slot  # where the array goes back to; None: not shared
        self.dirty: list[np.ndarray] | None = []  # None: any cell may be non-zero
        self.dirty_size = 0

    @classmethod
    def lend(cls, cells: int) -> _Lease:
        """``cells`` zero counts: the thread's reusable array if it is free and ``cells`` not too many."""
        slot = _Slot.of_thread()
        if cells > SHARED_CELLS or slot.lent:
            return cls(np.zeros(cells, dtype=np.int64), None)
        if slot.array.size < cells:
            slot.array = np.zeros(cells, dtype=np.int64)
        slot.lent = True
        return cls(slot.array[:cells], slot)

    def touched(self, cells: np.ndarray | None) -> None:
        """Note the flat cells about to change (None: possibly all of them)."""
        if self.dirty is None:
            return
        if cells is None or 4 * (self.dirty_size + cells.size) > self.cells.size:
            self.dirty = None
        else:
            self.dirty.append(cells)
            self.dirty_size += cells.size

    def give_back(self) -> None:
        """Clear the touched cells and return the array (the first call only)."""
        if self.slot is None:
            return
        if self.dirty is None:
            self.cells[:] = 0
        else:
            for cells in self.dirty:
                self.cells[cells] = 0
        self.slot.lent, self.slot, self.dirty = False, None, []


@dataclass
class _Slot:
    """One thread's reusable counts (``array``) and whether they are ``lent``."""

    array: np.ndarray
    lent: bool = False

    @classmethod
    def of_thread(cls) -> _Slot:
        """The calling thread's slot (made at its first request)."""
        slot = getattr(_THREADS, "slot", None)
        if slot is None:
            slot = _THREADS.slot = cls(np.zeros(0, dtype=np.int64))
        return slot


_THREADS = threading.local()


def _observed(counts: np.ndarray, cols: np.ndarray) -> tuple[Change, np.ndarray]:
    """Add to each row of ``counts`` one observation of each category in that row of ``cols``.

    Returns the :class:`Change` and the flat cells (row·K + category) it
    changed, both in increasing cell order.  Few observations are sorted, row
    by row (O(m log m) per path, not O(K)); many are counted densely.
    ``cols`` is sorted in place.
    """
    size, k = counts.shape
    flat = counts.reshape(-1)
    if 2 * cols.size >= flat.size:
        cells = (cols + (np.arange(size, dtype=np.int64) * k)[:, None]).ravel()
        increment = np.bincount(cells, minlength=flat.size)
        changed = np.flatnonzero(increment)
        before = flat[changed]
        flat += increment
        return Change.at(changed, k, before, flat[changed]), changed
    cols.sort(axis=1)
    m = cols.shape[1]
    drawn = cols.reshape(-1)
    first = np.empty(drawn.size + 1, dtype=bool)  # where a run of one category in one path begins
    np.not_equal(drawn[1:], drawn[:-1], out=first[1:-1])
    first[::m] = True  # each path's first observation, and the end
    ends = first.nonzero()[0]  # (methods, not numpy's Python wrappers: this runs per checkpoint)
    starts = ends[:-1]
    added = ends[1:] - starts
    rows = starts // m
    categories = drawn.take(starts)
    cells = rows * k + categories
    before = flat.take(cells)
    after = before + added
    flat[cells] = after
    return Change(rows, categories, before, after), cells


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


def alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table of ``probs`` (see :func:`_alias_table`; cached by their bytes)."""
    return _alias_table(np.ascontiguousarray(probs, dtype=float).tobytes())


def _alias_draws(table, rng: np.random.Generator, per_row: np.ndarray) -> np.ndarray:
    """Flat cell indices of ``per_row[r]`` observations for each row r, by the alias method."""
    threshold, alias = table
    k = threshold.size
    rows = np.repeat(np.arange(per_row.size, dtype=np.int64) * k, per_row)
    j = rng.integers(0, k, size=rows.size)
    keep = rng.random(rows.size) < threshold[j]
    return rows + np.where(keep, j, alias[j])


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
