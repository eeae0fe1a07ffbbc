"""Exact sampling: count paths against exact Binomial and Multinomial laws."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from sim import sampling
from sim.sampling import count_paths
from tests.helpers import ALPHA, assert_matches_pmf, z_crit

R = 20_000


def _paths(probs, checkpoints, size, seed, method):
    rng = np.random.default_rng(seed)
    return [c.copy() for c in count_paths(np.asarray(probs), checkpoints, size, rng=rng, method=method)]


@pytest.mark.parametrize("method", ["counts", "per-sample"])
def test_coin_heads_follow_the_binomial_law_at_every_checkpoint(method):
    p, ckpts = 0.7, [3, 10, 25]
    paths = _paths([p, 1 - p], ckpts, R, seed=11, method=method)
    for n, c in zip(ckpts, paths, strict=True):
        assert np.all(c.sum(axis=1) == n)
        assert_matches_pmf(c[:, 0], stats.binom.pmf(np.arange(n + 1), n, p), alpha=ALPHA / len(ckpts))


@pytest.mark.parametrize("method", ["counts", "per-sample"])
def test_paths_are_nested_with_independent_increments(method):
    # (heads among the first 3, heads among flips 4..10) must be the product
    # of Binomial(3, p) and Binomial(7, p): the joint law of one sample path.
    p = 0.3
    first, second = _paths([p, 1 - p], [3, 10], R, seed=12, method=method)
    assert np.all(second >= first)
    a, b = first[:, 0], second[:, 0] - first[:, 0]
    joint = np.outer(stats.binom.pmf(np.arange(4), 3, p), stats.binom.pmf(np.arange(8), 7, p)).ravel()
    assert_matches_pmf(a * 8 + b, joint)


@pytest.mark.parametrize("method", ["counts", "per-sample"])
def test_categorical_counts_follow_the_multinomial_law(method):
    p, n = np.array([0.4, 0.3, 0.2, 0.1]), 4
    (counts,) = _paths(p, [n], R, seed=13, method=method)
    compositions = [c for c in itertools.product(range(n + 1), repeat=4) if sum(c) == n]
    index = {c: i for i, c in enumerate(compositions)}
    observed = np.array([index[tuple(row)] for row in counts])
    pmf = stats.multinomial.pmf(np.array(compositions), n, p)
    assert_matches_pmf(observed, pmf)


def test_large_k_switches_between_observations_and_multinomial_exactly():
    # K = 50: increments of 5 and 15 are drawn as observations, 980 as a
    # multinomial.  Category 0's count must be Binomial(N, p_0) throughout.
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(50))
    p = np.sort(p)[::-1]
    ckpts = [5, 20, 1000]
    paths = _paths(p, ckpts, 5000, seed=14, method="counts")
    for n, c in zip(ckpts, paths, strict=True):
        assert np.all(c.sum(axis=1) == n)
        assert_matches_pmf(c[:, 0], stats.binom.pmf(np.arange(n + 1), n, p[0]), alpha=ALPHA / 6)
        assert_matches_pmf(c[:, 7], stats.binom.pmf(np.arange(n + 1), n, p[7]), alpha=ALPHA / 6)


def test_huge_n_without_overflow():
    p, ckpts, size = 0.3, [10**12, 10**15], 2000
    paths = _paths([p, 1 - p], ckpts, size, seed=15, method="counts")
    for n, c in zip(ckpts, paths, strict=True):
        assert c.dtype == np.int64 and np.all(c.sum(axis=1) == n)
        freq = c[:, 0] / n
        se = np.sqrt(p * (1 - p) / n / size)
        assert abs(freq.mean() - p) <= z_crit(2) * se


def test_single_category_and_bad_checkpoints():
    (c,) = _paths([1.0], [7], 3, seed=0, method="counts")
    assert np.all(c[:, 0] == 7)
    with pytest.raises(ValueError, match="increasing"):
        _paths([0.5, 0.5], [5, 5], 3, seed=0, method="counts")
    with pytest.raises(ValueError, match="unknown"):
        _paths([0.5, 0.5], [5], 3, seed=0, method="bogus")
    for bad in ([0.5, np.nan, 0.5], [0.6, -0.1, 0.5], [], [0.0, 0.0, 0.0], [[0.5, 0.5]]):
        with pytest.raises(ValueError, match="probs"):
            _paths(bad, [5], 3, seed=0, method="counts")


def _sorted_dirichlet(k, seed):
    p = np.random.default_rng(seed).dirichlet(np.ones(k))
    return np.sort(p)[::-1]


def test_alias_table_reproduces_the_probabilities():
    """Walker's table: P(k) = (threshold_k + Σ_{alias_j = k} (1 − threshold_j)) / K."""
    for p in (_sorted_dirichlet(3000, 1), np.arange(1, 5001) ** -1.07):
        p = p / p.sum()
        threshold, alias = sampling._alias_table(p.tobytes())
        assert np.all((threshold >= 0) & (threshold <= 1))
        implied = threshold.copy()
        np.add.at(implied, alias, 1.0 - threshold)
        np.testing.assert_allclose(implied / p.size, p, rtol=1e-12)


@pytest.mark.parametrize("margin", [sampling.POISSON_MARGIN, 0.0])
def test_poissonised_increments_follow_the_multinomial_law(monkeypatch, margin):
    """K ≥ POISSON_K and m ≥ K: Poisson counts completed to m, overshoots drawn again.

    With a margin of 0 about half the rows overshoot m, so the redrawing is
    exercised too.  Marginals of a head, a middle and a tail category, and
    the sum of the ten most probable (which depends on their covariances),
    must be the exact Binomial laws.
    """
    monkeypatch.setattr(sampling, "POISSON_MARGIN", margin)
    k, m = sampling.POISSON_K + 476, 3000
    p = _sorted_dirichlet(k, 2)
    (c,) = _paths(p, [m], 3000, seed=16, method="counts")
    assert np.all(c.sum(axis=1) == m) and np.all(c >= 0)
    checks = [(c[:, i], p[i]) for i in (0, 300, 1200)] + [(c[:, :10].sum(axis=1), p[:10].sum())]
    for x, prob in checks:
        assert_matches_pmf(x, stats.binom.pmf(np.arange(m + 1), m, prob), alpha=ALPHA / len(checks))


def test_huge_increments_of_large_vocabularies_stay_o_of_k(monkeypatch):
    """Beyond m = (K/5)² the Poissonised draw would need ~5√m completing observations."""
    calls = []
    real = sampling._poissonised
    monkeypatch.setattr(sampling, "_poissonised", lambda *a: (calls.append(a[0]), real(*a))[1])
    k = sampling.POISSON_K
    p = _sorted_dirichlet(k, 3)
    small, huge = (k // 5) ** 2, 10**15
    paths = _paths(p, [small, small + huge], 3, seed=17, method="counts")
    assert calls == [small]
    assert np.all(paths[-1].sum(axis=1) == small + huge)


def test_vocabularies_beyond_the_alias_limit_use_the_inverse_cdf(monkeypatch):
    monkeypatch.setattr(sampling, "ALIAS_MAX_K", 40)
    monkeypatch.setattr(sampling, "_alias_table", None)  # must not be called
    p = _sorted_dirichlet(50, 4)
    paths = _paths(p, [5, 20, 1000], 5000, seed=18, method="counts")
    for n, c in zip([5, 20, 1000], paths, strict=True):
        assert np.all(c.sum(axis=1) == n)
        assert_matches_pmf(c[:, 0], stats.binom.pmf(np.arange(n + 1), n, p[0]), alpha=ALPHA / 3)


def _dense_changes(probs, checkpoints, size, seed, method):
    """What each increment changed, from the dense counts: (cells, before, after) or None."""
    k = len(probs)
    previous = np.zeros((size, k), dtype=np.int64)
    out = []
    for counts in count_paths(
        np.asarray(probs), checkpoints, size, rng=np.random.default_rng(seed), method=method
    ):
        cells = np.flatnonzero(counts != previous)
        out.append((cells, previous.reshape(-1)[cells], counts.reshape(-1)[cells], counts.copy()))
        previous = counts.copy()
    return out


@pytest.mark.parametrize(
    ("k", "checkpoints", "size", "method"),
    [
        (300, [1, 3, 10, 40, 41, 200], 7, "counts"),  # observations, sparse, then dense by occupancy
        (300, [2, 5, 400, 401, 1000], 5, "counts"),  # an increment ≥ K: dense from then on
        (2000, [4, 30, 3000, 3001], 3, "counts"),  # a Poissonised increment
        (300, list(range(1, 40)), 7, "counts"),  # many small increments: dense once re-sorting costs more
        (300, [1, 3, 10, 40], 7, "per-sample"),
        (300, [1, 3, 10, 40], 7, "multinomial"),
        (5, [1, 2, 3, 50], 4, "counts"),
    ],
)
def test_sparse_paths_are_the_dense_paths(k, checkpoints, size, method):
    """``sparse=True`` draws the same paths: each Change is exactly what the dense counts changed."""
    p = _sorted_dirichlet(k, 5)
    dense = _dense_changes(p, checkpoints, size, seed=19, method=method)
    paths = count_paths(p, checkpoints, size, rng=np.random.default_rng(19), method=method, sparse=True)
    for (cells, before, after, counts), (held, change) in zip(dense, paths, strict=True):
        if held is not None:
            np.testing.assert_array_equal(held, counts)
        if change is None:
            assert held is not None
            continue
        np.testing.assert_array_equal(change.rows * k + change.cols, cells)
        np.testing.assert_array_equal(change.before, before)
        np.testing.assert_array_equal(change.after, after)


def _thread_counts() -> np.ndarray:
    """This thread's reusable counts (see sampling._Lease)."""
    return sampling._Slot.of_thread().array


@pytest.mark.parametrize(
    ("checkpoints", "taken"),
    [
        ([1, 3, 10, 40], 4),  # few observations: only the cells they touched are cleared
        ([1, 3, 10, 40, 200], 5),  # touched cells pass a quarter of the array: all cleared
        ([1, 3, 400, 401], 4),  # whole count vectors: all cleared
        ([1, 3, 10, 40], 2),  # dropped after two steps
    ],
)
def test_sparse_paths_lend_counts_that_are_all_zero_again_afterwards(checkpoints, taken):
    p = _sorted_dirichlet(300, 5)
    paths = count_paths(p, checkpoints, 7, rng=np.random.default_rng(1), sparse=True)
    counts, _ = list(itertools.islice(paths, taken))[-1]
    shared = _thread_counts()
    assert counts.base is shared and counts.sum() == 7 * checkpoints[taken - 1]
    if taken == len(checkpoints):
        assert next(paths, None) is None  # the steps end: the counts are given back
    else:
        del paths  # a dropped generator gives its counts back too
    assert _thread_counts() is shared and not shared.any()
    assert not sampling._Slot.of_thread().lent


def test_sparse_paths_side_by_side_do_not_share_counts():
    """Paths drawn while others hold the thread's counts get counts of their own: both exact."""
    p = _sorted_dirichlet(300, 5)
    checkpoints = [1, 3, 10, 40, 41, 200]
    dense = _dense_changes(p, checkpoints, 7, seed=19, method="counts")
    one = count_paths(p, checkpoints, 7, rng=np.random.default_rng(19), sparse=True)
    two = count_paths(p, checkpoints, 7, rng=np.random.default_rng(19), sparse=True)
    for (_, _, _, counts), (a, _), (b, _) in zip(dense, one, two, strict=True):
        assert a.base is not b.base
        np.testing.assert_array_equal(a, counts)
        np.testing.assert_array_equal(b, counts)
    assert not _thread_counts().any()


def test_sparse_paths_beyond_the_shared_cells_have_counts_of_their_own(monkeypatch):
    monkeypatch.setattr(sampling, "SHARED_CELLS", 100)
    before = _thread_counts()
    test_sparse_paths_are_the_dense_paths(300, [1, 3, 10, 40, 41, 200], 7, "counts")
    assert _thread_counts() is before


def test_sparse_paths_beyond_the_alias_limit(monkeypatch):
    monkeypatch.setattr(sampling, "ALIAS_MAX_K", 40)
    test_sparse_paths_are_the_dense_paths(50, [1, 4, 9, 30, 31, 500], 6, "counts")


def test_alias_observations_are_the_same_draws_in_32_bits():
    """The observation path draws its categories in 32 bits: the same stream as 64-bit draws."""
    for k in (3, 500, 50_000, sampling.ALIAS_MAX_K):
        p = np.arange(1, k + 1, dtype=float) ** -1.07
        p /= p.sum()
        sampler = sampling._Sampler.of(p, "counts", 6, np.random.default_rng(k))
        cols = sampling._alias_cells(sampler, 37)
        flat = sampling._alias_draws(sampler.table, np.random.default_rng(k), np.full(6, 37))
        np.testing.assert_array_equal((cols + (np.arange(6) * k)[:, None]).ravel(), flat)


def test_sparse_paths_interrupted_while_counting_leave_the_counts_all_zero(monkeypatch):
    """An increment that fails half-way (some cells already written) still leaves zeros behind."""
    p = _sorted_dirichlet(300, 5)
    real = sampling._observed

    def half_way(counts, cols):
        counts.reshape(-1)[: counts.size // 2] += 1  # some cells written, none of them recorded
        raise KeyboardInterrupt

    paths = count_paths(p, [1, 3, 10], 7, rng=np.random.default_rng(1), sparse=True)
    next(paths)
    monkeypatch.setattr(sampling, "_observed", half_way)
    with pytest.raises(KeyboardInterrupt):
        next(paths)
    monkeypatch.setattr(sampling, "_observed", real)
    assert not _thread_counts().any() and not sampling._Slot.of_thread().lent
