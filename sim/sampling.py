"""Exact, nested sampling of category counts along growing sample paths.

A replicate is one infinite i.i.d. sequence x_1, x_2, … from p.  The
estimators at sample size N depend on the sequence only through the counts
of each category among x_1..x_N, so a path is represented by its cumulative
counts at the checkpoints N_1 < N_2 < …  Between checkpoints the counts grow
by an independent Multinomial(N_j − N_{j−1}, p) increment, which makes each
checkpoint a prefix of the same sequence as the next and makes the cost of a
replicate independent of N.

Two methods draw the increments, both exactly:

``counts``
    Binomial (K = 2) or Multinomial increments from numpy's exact samplers;
    when an increment is smaller than K (and K > 2) the observations
    themselves are drawn instead, which is cheaper for large vocabularies.
``per-sample``
    Every observation is drawn (inverse-CDF on uniforms) and counted.  Its
    cost grows with N; it exists to validate ``counts``.

Categories are expected in decreasing order of probability (the caller
sorts), which keeps the inverse-CDF search short.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

#: Uniforms drawn at once by the per-observation path (bounds temporary memory).
CHUNK = 1 << 20

#: ``multinomial`` draws every increment as a Multinomial, whatever its size:
#: the plain method the benchmarks compare ``counts`` against.
METHODS = ("counts", "per-sample", "multinomial")


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
    method : {"counts", "per-sample"}
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
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}")
    p = np.asarray(probs, dtype=float)
    p = p / p.sum()
    k = p.size
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    counts = np.zeros((size, k), dtype=np.int64)
    previous = 0
    for n in checkpoints:
        m = int(n) - previous
        previous = int(n)
        if m <= 0:
            raise ValueError("checkpoints must be strictly increasing and positive")
        delta = None
        if k == 1:
            counts[:, 0] += m
        elif method == "per-sample" or (method == "counts" and k > 2 and m < k):
            delta = _add_observations(counts, m, cdf, rng)
        elif k == 2:
            heads = rng.binomial(m, p[0], size=size)
            counts[:, 0] += heads
            counts[:, 1] += m - heads
        else:
            counts += rng.multinomial(m, p, size=size)
        yield (counts, delta) if with_delta else counts


def _add_observations(counts: np.ndarray, m: int, cdf: np.ndarray, rng: np.random.Generator):
    """Draw ``m`` observations for each row by inverse CDF and count them.

    Returns ``(cells, before)``: the flat indices of the cells that changed and
    their counts before (O(m log m) work, not O(K)), or None when the
    observations were so many that every cell was recounted.
    """
    size, k = counts.shape
    flat = counts.reshape(-1)
    offsets = (np.arange(size, dtype=np.int64) * k)[:, None]
    per_chunk = max(1, CHUNK // size)
    touched = []
    done = 0
    while done < m:
        c = min(per_chunk, m - done)
        u = rng.random((size, c))
        idx = np.minimum(np.searchsorted(cdf, u, side="right"), k - 1)
        touched.append((idx + offsets).ravel())
        done += c
    cells, amounts = np.unique(np.concatenate(touched), return_counts=True)
    before = flat[cells].copy()
    flat[cells] += amounts
    return cells, before
