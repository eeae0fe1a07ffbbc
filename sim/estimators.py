"""Estimators of a sample path computed from its category counts (the kernels).

Which estimators exist, and what each one is, is :mod:`sim.registry`; this
module evaluates those of forms ``MEAN`` and ``PLUGIN`` for many rows at once.

With counts c_k among N observations drawn from p (f_k = c_k / N):

``llr``            (1/N) Σ c_k log(p_k/q_k)      → KL(p‖q)
``cross_entropy``  −(1/N) Σ c_k log q_k          → H(p, q)
``entropy``        −(1/N) Σ c_k log p_k          → H(p)
``plugin_kl``      KL(f‖q) = llr + KL(f‖p)       → KL(p‖q), biased upward

``KL(f‖q)`` is evaluated as Σ q_k h(f_k/q_k − 1) (see
:func:`sim.distributions.xlog1px_minus_x`), a sum of non-negative terms, so
it is never negative and keeps its relative precision however small it is
(it is not llr + KL(f‖p), whose terms cancel when f is near q).  The sums
Σ c_k v_k behind the other three are taken as N·v_0 + Σ c_k (v_k − v_0), so
an estimator that is constant in exact arithmetic (v the same on every
category of the support) is the same double in every replicate.  Values
are in nats.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import registry
from .distributions import (
    Pair,
    digamma_excess,
    jackknife_kl_terms,
    kl_two,
    posterior_kl_terms,
    smoothed_kl_terms,
    two_product,
    xlog1px_minus_x,
)
from .registry import Form

if TYPE_CHECKING:
    from .sampling import Change


@dataclass(frozen=True, eq=False)
class SupportArrays:
    """A pair's per-category arrays on the support of p, most probable first.

    Build with :meth:`from_pair`; ``probs`` is what the sampler draws from.
    ``q_probs`` are q's probabilities on that support, ``q_outside`` q's mass
    on categories p lacks and ``q_total`` all of q's mass (each an exact
    sum), for the plug-in KL(f‖q).
    """

    probs: np.ndarray
    log_p: np.ndarray
    log_q: np.ndarray
    log_ratio: np.ndarray
    index: np.ndarray
    q_probs: np.ndarray
    q_outside: float = 0.0
    q_total: float = 1.0
    #: q on the categories p lacks, one by one (add-α smoothing gives each of them mass).
    q_outside_probs: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def from_pair(cls, pair: Pair) -> SupportArrays:
        """The arrays of ``pair`` (cached: every task of a case asks for them)."""
        return _support_arrays(pair)

    @classmethod
    def _build(cls, pair: Pair) -> SupportArrays:
        s = pair.support
        order = np.argsort(-pair.p.probs[s], kind="stable")
        idx = s[order]
        arrays = {
            "probs": pair.p.probs[idx],
            "log_p": pair.p.log_probs[idx],
            "log_q": pair.q.log_probs[idx],
            "log_ratio": pair.log_ratio[order],
            "index": idx,
            "q_probs": pair.q.probs[idx],
        }
        for a in arrays.values():
            a.setflags(write=False)  # shared by every task of the case
        outside = np.ones(pair.q.k, dtype=bool)
        outside[idx] = False
        q_outside_probs = pair.q.probs[outside]
        q_outside_probs.setflags(write=False)
        return cls(
            **arrays,
            q_outside=math.fsum(q_outside_probs),
            q_total=math.fsum(pair.q.probs),
            q_outside_probs=q_outside_probs,
        )

    @property
    def k(self) -> int:
        """The alphabet's size: the support and the categories p lacks."""
        return self.probs.size + self.q_outside_probs.size


@functools.lru_cache(maxsize=4)
def _support_arrays(pair: Pair) -> SupportArrays:
    return SupportArrays._build(pair)


def estimate(
    counts: np.ndarray, n: int, arrays: SupportArrays, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Evaluate estimators for each row of ``counts`` (in nats).

    Only the non-zero counts are visited, so a path of N observations costs
    O(min(N, K)) per row beyond a scan of the counts, however large K is.

    Parameters
    ----------
    counts : numpy.ndarray
        ``(rows, K')`` counts on the support, ordered as ``arrays``; each
        row sums to ``n``.
    n : int
        The sample size N.
    arrays : SupportArrays
        Logarithms of p and q on the support.
    names : sequence of str, optional
        Which estimators to compute (default: a convergence experiment's
        default ones); each must be computed from counts alone.

    Returns
    -------
    dict of str to numpy.ndarray
        One ``(rows,)`` array per requested estimator.
    """
    names = registry.names(registry.CONVERGENCE) if names is None else names
    if counts.shape[1] <= DENSE_K:
        return _estimate_dense(counts, n, arrays, names)
    rows, cols = np.nonzero(counts)
    c = counts[rows, cols].astype(float)
    size = counts.shape[0]

    def row_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(rows, weights=values, minlength=size)

    def dot(v: np.ndarray) -> np.ndarray:  # Σ c v = n v_0 + Σ c (v − v_0)
        return n * v[0] + row_sum(c * (v[cols] - v[0]))

    def kl_to_q() -> np.ndarray:
        return _kl_to(arrays.q_probs, arrays.q_total, c, rows, cols, n, size)

    def per_category(term) -> np.ndarray:
        return _sum_from_seen(term, arrays.probs.size, rows, cols, c, size)

    return _by_name(names, n, arrays, dot, kl_to_q, lambda: np.bincount(rows, minlength=size), per_category)


#: Up to this many categories the estimators use dense matrix products; beyond
#: it only the non-zero counts are visited.
DENSE_K = 64


def _estimate_dense(counts: np.ndarray, n: int, arrays: SupportArrays, names) -> dict[str, np.ndarray]:
    """:func:`estimate` for small K: the same sums as products with all counts."""
    if counts.shape[1] == 2:
        first = counts[:, 0]
        if 4 * (n + 1) <= first.size:  # few possible values: evaluate each once, look them up
            table = _estimate_two(np.arange(n + 1.0), n, arrays, names)
            return {name: values[first] for name, values in table.items()}
        return _estimate_two(first.astype(float), n, arrays, names)
    c = counts.astype(float)

    def kl_to_q() -> np.ndarray:
        expected = n * arrays.q_probs
        return row_dot(xlog1px_minus_x(residual(c, n, arrays.q_probs) / expected), arrays.q_probs) + (
            arrays.q_outside
        )

    def observed() -> np.ndarray:
        return np.count_nonzero(counts, axis=1)

    def per_category(term) -> np.ndarray:
        return term(c, np.arange(c.shape[1])).sum(axis=1)

    dot = lambda v: n * v[0] + row_dot(c, v - v[0])  # noqa: E731
    return _by_name(names, n, arrays, dot, kl_to_q, observed, per_category)


def _estimate_two(first: np.ndarray, n: int, arrays: SupportArrays, names) -> dict[str, np.ndarray]:
    """:func:`estimate` for two categories (a coin) from the first one's counts, as floats.

    Every estimator is then a function of one number per row: the sums are
    written out as n·v_0 + (n − c_0)·(v_1 − v_0), and KL(f‖q) is
    :func:`sim.distributions.kl_two`.
    """
    a, b = arrays.q_probs

    def kl_to_q() -> np.ndarray:
        if arrays.q_outside == 0.0:  # q is a coin too: one series in f − a
            return kl_two(residual(first, n, a) / n, a, b)
        second = n - first  # q has mass off p's two categories, which f lacks
        return (
            a * xlog1px_minus_x(residual(first, n, a) / (n * a))
            + b * xlog1px_minus_x(residual(second, n, b) / (n * b))
            + arrays.q_outside
        )

    # based on the more probable category (first on the support), as every sum here is:
    # a path that never saw the rare one is then exactly n·v_0, not n·v_1 + n·(v_0 − v_1),
    # whose rounding would swamp a v_0 of 1e-10 (p = 1e-10: entropy off by 2e-5)
    def observed() -> np.ndarray:
        return (first > 0) + (first < n).astype(float)

    def per_category(term) -> np.ndarray:
        t = term(np.stack([first, n - first], axis=1), np.arange(2))
        return t[:, 0] + t[:, 1]

    dot = lambda v: n * v[0] + (n - first) * (v[1] - v[0])  # noqa: E731
    return _by_name(names, n, arrays, dot, kl_to_q, observed, per_category)


def _by_name(
    names, n: int, arrays: SupportArrays, dot, kl_to_q, observed, per_category
) -> dict[str, np.ndarray]:
    """The requested estimators per row, from the path's own kernels.

    ``dot(v)`` = Σ_k c_k v_k, ``kl_to_q()`` = KL(f‖q), ``observed()`` = K̂
    and ``per_category(term)`` = Σ_k term(c_k, k) over p's support, ``term``
    taking counts and support indices.
    """
    out: dict[str, np.ndarray] = {}
    plugin = functools.cache(kl_to_q)
    for spec in _from_counts(names):
        if spec.form is Form.MEAN:
            out[spec.name] = dot(spec.term(arrays)) / n
        elif spec.form in (Form.SMOOTHED, Form.JACKKNIFE):
            out[spec.name] = per_category_estimator(arrays, n, spec, per_category)
        else:
            out[spec.name] = corrected(plugin(), spec.observed_penalty, observed, n)
    return out


def per_category_estimator(
    arrays: SupportArrays, n: int, spec: registry.Estimator, per_category
) -> np.ndarray:
    """An estimator that is a sum of one function per category of its count: add-α or jackknifed."""
    if spec.form is Form.JACKKNIFE:
        return jackknife(arrays, n, per_category)
    return smoothed(arrays, n, spec, per_category)


def jackknife(arrays: SupportArrays, n: int, per_category) -> np.ndarray:
    """The jackknifed plug-in KL (:func:`sim.distributions.jackknife_kl_terms`); the plug-in itself at n = 1.

    Its terms are differences of n-scaled plug-in terms: its rounding is
    about ε·n·KL(f_n‖q) absolutely, the price of the estimator itself.
    """
    q, k = arrays.q_probs, arrays.k
    if n == 1:
        return per_category(lambda c, j: smoothed_kl_terms(c, 1, q[j], 0.0, k)) + arrays.q_outside
    return per_category(lambda c, j: jackknife_kl_terms(c, n, q[j], k)) + arrays.q_outside


def smoothed(arrays: SupportArrays, n: int, spec: registry.Estimator, per_category) -> np.ndarray:
    """KL(f̃‖q) of add-α frequencies, or for a posterior mean E[KL(θ‖q)] under Dirichlet(c + α).

    Over the whole alphabet: the support's terms from the counts, and the
    categories p lacks (count 0) as constants.  The posterior mean adds
    Σ_k (a_k/A)(ψ(a_k + 1) − log a_k) − (ψ(A + 1) − log A), a = c + α,
    A = n + Kα (each part positive, see :func:`sim.distributions.digamma_excess`).
    """
    k, alpha = arrays.k, spec.smoothing.value(arrays.k, n)
    q = arrays.q_probs
    value = per_category(lambda c, j: smoothed_kl_terms(c, n, q[j], alpha, k))
    value = value + math.fsum(smoothed_kl_terms(0.0, n, arrays.q_outside_probs, alpha, k))
    if spec.posterior:
        unseen = float(posterior_kl_terms(0.0, n, alpha, k))
        extra = per_category(lambda c, _j: posterior_kl_terms(c, n, alpha, k))
        value = value + (
            extra + (arrays.q_outside_probs.size * unseen - float(digamma_excess(n + k * alpha)))
        )
    return value


def two_sample(
    counts: np.ndarray, q_counts: np.ndarray, n: int, m: int, alpha: float, arrays: SupportArrays
) -> np.ndarray:
    """KL(f‖q̃) per row against q's own sample, add-α smoothed: q̃_k = (d_k + α)/(m + Kα) (nats).

    ``counts`` are p's sample on the support (rows sum to n), ``q_counts``
    q's (at least the support's columns, in the same order; rows sum to m
    with any column beyond them).  Over the observed categories
    Σ q̃ h(f/q̃ − 1), each ratio's residual c·A − n(d + α) taken without the
    products' rounding; every other category adds its q̃ whole, which
    together is (m − Σ_seen d + (K − K̂)α)/A with an exact integer part: a
    sum of non-negative terms, so the value keeps its relative precision.
    """
    size, width = counts.shape
    total = m + arrays.k * alpha
    cells = np.flatnonzero(counts)
    rows, cols = np.divmod(cells, width)
    c = counts.reshape(-1)[cells].astype(float)
    d = q_counts[rows, cols].astype(float)
    big, big_err = two_product(c, total)
    small, small_err = two_product(float(n), d + alpha)
    x = ((big - small) + (big_err - small_err)) / small
    seen = np.bincount(rows, weights=(d + alpha) / total * xlog1px_minus_x(x), minlength=size)
    seen_d = np.bincount(rows, weights=d, minlength=size)  # integers: exact below 2^53
    unseen = (m - seen_d) + (arrays.k - np.bincount(rows, minlength=size)) * alpha
    return seen + unseen / total


def _sum_from_seen(term, width: int, rows, cols, c, size: int) -> np.ndarray:
    """Σ over the support of term(c_k, k) per row, from the non-zero counts ``c`` at (rows, cols).

    = Σ_seen [term(c) − term(0)] + Σ_all term(0): the second sum is about q's
    mass for the smoothed KL, so a KL far below 1 loses relative precision
    here (as the plug-in's running form does); large K keep it well above that.
    """
    every = np.arange(width)
    unseen = term(np.zeros(width), every)
    seen = term(c, cols) - unseen[cols]
    return np.bincount(rows, weights=seen, minlength=size) + math.fsum(unseen)


def corrected(plugin: np.ndarray, weight: float, observed, n: int) -> np.ndarray:
    """The plug-in less ``weight``·(K̂ − 1)/n, K̂ = ``observed()`` (not called for weight 0)."""
    if not weight:
        return plugin
    return plugin - weight * (observed() - 1.0) / n


def _from_counts(names) -> tuple[registry.Estimator, ...]:
    """The registry's entries for ``names``, each one computed from counts alone."""
    specs = registry.specs(names)
    for spec in specs:
        if spec.form not in (Form.MEAN, Form.PLUGIN, Form.SMOOTHED, Form.JACKKNIFE):
            raise ValueError(f"{spec.name} is not computed from a path's counts alone")
    return specs


class SparseSums:
    """Estimators of large-K paths kept as running sums, updated where counts change.

    Per row and per term v of the requested mean estimators (see
    :attr:`sim.registry.Estimator.term`): Σ c v, kept as Σ c (v − v_0) (see
    the module notes), and S = Σ c log c.  A mean estimator is then
    (n·v_0 + Σ c (v − v_0))/n, and with B = Σ c (−log q) the plug-in is
    max(0, (S + B)/n − log n), since KL(f‖q) = (1/n) Σ c log(c/(n q)).  When
    an increment is drawn as observations only the cells it touched are
    revisited (a :class:`sim.sampling.Change`), so a checkpoint costs
    O(min(increment, K)) rather than O(K).
    The plug-in form loses about log(n)·1e-16 to cancellation, negligible
    beside the K'/(2n) it estimates for large K; small K use the dense,
    cancellation-free path.
    """

    def __init__(self, rows: int, arrays: SupportArrays, names: Sequence[str]):
        self.specs = _from_counts(names)
        terms = [spec.term for spec in self.specs if spec.form is Form.MEAN]
        if any(spec.form is Form.PLUGIN for spec in self.specs):
            terms.append(registry.minus_log_q)
        #: The distinct terms, their v_0, and v − v_0 per category (one row a term).
        self.terms = tuple(dict.fromkeys(terms))
        self.first, self.table, self.live, self.by_category = _term_table(arrays, self.terms)
        #: The running Σ c (v − v_0), one row per term, and S = Σ c log c.
        self.sums = np.zeros((len(self.terms), rows))
        self.s = np.zeros(rows) if registry.minus_log_q in self.terms else None
        #: Each estimator and its term's row of ``sums`` (None for the per-category forms).
        self.rows = [(s, None if _term_of(s) is None else self.terms.index(_term_of(s))) for s in self.specs]
        self.first_values = self.first.tolist()  # Python floats: the same products, without numpy scalars
        #: K̂ per row, the categories observed, where an estimator asks for it.
        self.observed = np.zeros(rows) if any(s.observed_penalty for s in self.specs) else None
        #: The flat cells (row·K' + category) observed so far, in the order first seen, for add-α smoothing.
        per_category = any(s.form in (Form.SMOOTHED, Form.JACKKNIFE) for s in self.specs)
        self.seen = np.zeros(0, dtype=np.int64) if per_category else None
        self.arrays = arrays

    def update(self, counts: np.ndarray | None, change: Change | None, n: int) -> dict[str, np.ndarray]:
        """Bring the sums to ``counts`` and evaluate the estimators.

        ``change`` says which cells changed (then ``counts`` is not read and may
        be None), or is None: recount every cell of ``counts``.
        """
        if change is None:  # recount every cell: O(K) passes, no search for the non-zero ones
            self._recount(counts)
        else:
            self._add(change)
        out: dict[str, np.ndarray] = {}
        first = self.first_values
        for spec, t in self.rows:
            if spec.form is Form.MEAN:
                out[spec.name] = (n * first[t] + self.sums[t]) / n
            elif t is None:
                out[spec.name] = self._per_category(counts, spec, n)
            else:
                minus_log_q = n * first[t] + self.sums[t]
                plugin = np.maximum((self.s + minus_log_q) / n - math.log(n), 0.0)
                out[spec.name] = corrected(plugin, spec.observed_penalty, lambda: self.observed, n)
        return out

    def _note_seen(self, change: Change) -> None:
        """Count and list the categories newly observed in each row (a cell going from 0 to a count)."""
        new = (change.before == 0) & (change.after > 0)
        if self.observed is not None:
            self.observed += np.bincount(change.rows, weights=new, minlength=self.observed.size)
        if self.seen is not None:
            cells = change.rows[new] * self.arrays.probs.size + change.cols[new]
            self.seen = np.concatenate([self.seen, cells])

    def _per_category(self, counts: np.ndarray, spec: registry.Estimator, n: int) -> np.ndarray:
        """An add-α or jackknifed estimator per row from the cells seen so far (counts read from ``counts``)."""
        width = self.arrays.probs.size
        rows, cols = np.divmod(self.seen, width)
        c = counts.reshape(-1)[self.seen]
        size = self.sums.shape[1]
        per_category = lambda term: _sum_from_seen(term, width, rows, cols, c, size)  # noqa: E731
        return per_category_estimator(self.arrays, n, spec, per_category)

    def _recount(self, counts: np.ndarray) -> None:
        c = counts.astype(float)
        for t in range(len(self.terms)):
            self.sums[t] = row_dot(c, self.table[t])
        if self.s is not None:
            self.s = xlogx(counts).sum(axis=1)
        if self.observed is not None:
            self.observed = np.count_nonzero(counts, axis=1).astype(float)
        if self.seen is not None:
            self.seen = np.flatnonzero(counts)

    def _add(self, change: Change) -> None:
        """Add what changed at the cells of ``change``, per row in the order of its cells.

        One bincount for every sum, its bins interleaved (row r, sum t: bin
        r·width + t), so that consecutive additions go to different sums;
        each sum still receives its terms in the cells' order, as it would
        from a bincount of its own.  A term whose v − v_0 is 0 on every
        category is left out: its sum would only ever add +0.0 to +0.0.
        """
        if self.observed is not None or self.seen is not None:
            self._note_seen(change)
        live = self.live
        width = len(live) + (self.s is not None)
        if width == 0:
            return
        weights = np.empty((change.rows.size, width))
        bins = np.empty((change.rows.size, width), dtype=np.int64)
        base = np.multiply(change.rows, width, dtype=np.int64)
        add = np.subtract(change.after, change.before, dtype=float)  # exact: counts below 2^53
        terms = self.by_category.take(change.cols, axis=0)  # one gather: a category's terms side by side
        for i in range(len(live)):  # columns, not broadcasts: numpy's inner loops then run along cells
            np.multiply(add, terms[:, i], out=weights[:, i])
            np.add(base, i, out=bins[:, i])
        if self.s is not None:
            after, before = change.after, change.before
            if after.size and after.max() >= XLOGX_TABLE:  # before ≤ after: both inside the table otherwise
                after, before = xlogx(after), xlogx(before)
            else:
                after, before = _xlogx_table().take(after), _xlogx_table().take(before)
            np.subtract(after, before, out=weights[:, -1])
            np.add(base, width - 1, out=bins[:, -1])
        rows = self.sums.shape[1]
        sums = np.bincount(bins.ravel(), weights=weights.ravel(), minlength=rows * width)
        sums = sums.reshape(rows, width).T
        for i, t in enumerate(live):
            self.sums[t] += sums[i]
        if self.s is not None:
            self.s += sums[-1]


def _term_of(spec: registry.Estimator):
    """The term whose running sum ``spec`` is evaluated from (the plug-in's is −log q); None for the
    estimators summed per category from the cells seen (add-α, jackknife)."""
    if spec.form is Form.MEAN:
        return spec.term
    return registry.minus_log_q if spec.form is Form.PLUGIN else None


@functools.lru_cache(maxsize=1)
def _term_table(
    arrays: SupportArrays, terms: tuple
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], np.ndarray]:
    """``(v_0 per term, (terms, K') table of v − v_0, live, by_category)``, kept for the case at hand.

    ``live`` lists the terms whose v − v_0 is not 0 on every category, and
    ``by_category`` is their rows of the table transposed, ``(K', live)``.
    """
    columns = [term(arrays) for term in terms]
    first = np.array([v[0] for v in columns])
    table = np.empty((len(terms), arrays.probs.size))
    for t, values in enumerate(columns):
        table[t] = values - values[0]
    live = tuple(int(t) for t in np.flatnonzero(table.any(axis=1)))
    by_category = np.ascontiguousarray(table[list(live)].T)
    for a in (first, table, by_category):
        a.setflags(write=False)
    return first, table, live, by_category


def residual(c, n: float, m):
    """c − n·m with n·m's rounding error put back (:func:`sim.distributions.two_product`).

    A count c that is within rounding of its expectation n·m (f = c/n the
    double nearest a model probability m) would otherwise give c − n·m = 0
    and KL(f‖m) = 0 where the true value is ~1e-33; this keeps its relative
    precision at every scale.  Only + and × are used, so it is the same on
    every CPU.
    """
    prod, err = two_product(float(n), np.asarray(m, dtype=float))
    return (c - prod) - err


def row_dot(c: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Σ_k c[r, k] v[k] per row, by numpy's pairwise sums.

    Not ``c @ v``: BLAS kernels differ between CPUs in their order of
    summation, and with it the last bits; these do not.
    """
    return (c * v).sum(axis=1)


#: c·log c is tabulated for counts below this (most counts of a large vocabulary).
XLOGX_TABLE = 1 << 16


@functools.cache
def _xlogx_table() -> np.ndarray:
    c = np.arange(XLOGX_TABLE, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        table = c * np.log(c)
    table[0] = 0.0
    return table


def xlogx(counts: np.ndarray) -> np.ndarray:
    """c·log c (0 for c = 0) of integer counts, elementwise: a table lookup for most."""
    if not counts.size or counts.max() < XLOGX_TABLE:
        return _xlogx_table().take(counts)
    out = np.take(_xlogx_table(), counts, mode="clip")
    big = np.flatnonzero(counts >= XLOGX_TABLE)
    c = counts.reshape(-1)[big].astype(float)
    out.reshape(-1)[big] = c * np.log(c)
    return out


def _kl_to(probs: np.ndarray, total: float, c, rows, cols, n, size) -> np.ndarray:
    """KL(f‖m) per row from the non-zero counts ``c`` at (rows, cols), m = ``probs`` of mass ``total``.

    Σ_k m_k h(f_k/m_k − 1): observed categories through ``h``, unobserved
    ones contribute h(−1) m_k = m_k, i.e. the mass not yet seen.
    """
    m = probs[cols]
    expected = n * m
    seen = np.bincount(rows, weights=xlog1px_minus_x(residual(c, n, m) / expected) * m, minlength=size)
    unseen = total - np.bincount(rows, weights=m, minlength=size)
    return seen + np.maximum(unseen, 0.0)
