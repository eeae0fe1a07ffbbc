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
    when an increment is smaller than K the observations themselves are
    drawn instead, which is cheaper for large vocabularies.
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

METHODS = ("counts", "per-sample")


def count_paths(
    probs: np.ndarray,
    checkpoints: Sequence[int],
    size: int,
    *,
    rng: np.random.Generator,
    method: str = "counts",
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

    Yields
    ------
    numpy.ndarray
        ``(size, K)`` int64 counts of each category among the first N_j
        observations; row sums equal N_j.  The same array object is updated
        in place and yielded each time: copy it to keep it.
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
        if k == 1:
            counts[:, 0] += m
        elif method == "per-sample" or m < k:
            _add_observations(counts, m, cdf, rng)
        elif k == 2:
            heads = rng.binomial(m, p[0], size=size)
            counts[:, 0] += heads
            counts[:, 1] += m - heads
        else:
            counts += rng.multinomial(m, p, size=size)
        yield counts


def _add_observations(counts: np.ndarray, m: int, cdf: np.ndarray, rng: np.random.Generator) -> None:
    """Draw ``m`` observations for each row by inverse CDF and count them."""
    size, k = counts.shape
    flat = counts.reshape(-1)
    offsets = (np.arange(size, dtype=np.int64) * k)[:, None]
    per_chunk = max(1, CHUNK // size)
    done = 0
    while done < m:
        c = min(per_chunk, m - done)
        u = rng.random((size, c))
        idx = np.minimum(np.searchsorted(cdf, u, side="right"), k - 1)
        flat += np.bincount((idx + offsets).ravel(), minlength=size * k)
        done += c
