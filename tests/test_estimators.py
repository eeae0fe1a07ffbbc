"""Estimators from counts: definitions, per-replicate identities, the source's example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sim import distributions as d
from sim.config import ESTIMATORS
from sim.estimators import SupportArrays, estimate
from sim.sequence import coin_sequence


def _random_counts(pair, n, rows, seed):
    rng = np.random.default_rng(seed)
    arrays = SupportArrays.from_pair(pair)
    return arrays, rng.multinomial(n, arrays.probs, size=rows)


@pytest.mark.parametrize(
    "pair",
    [
        d.Pair(d.coin(0.7), d.coin(0.5)),
        d.Pair(d.categorical([0.5, 0.3, 0.2, 0.0]), d.uniform(4)),
        d.Pair(d.zipf(300, 1.1), d.uniform(300)),
        d.Pair(d.categorical([0.5, 0.5, 0.0]), d.uniform(3)),  # two categories, q has a third
    ],
)
@pytest.mark.parametrize("n", [1, 7, 1000, 10**9])
def test_estimators_match_their_definitions(pair, n):
    arrays, counts = _random_counts(pair, n, 40, seed=n)
    est = estimate(counts, n, arrays)
    f = counts / n
    np.testing.assert_allclose(est["llr"], f @ (arrays.log_p - arrays.log_q), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(est["cross_entropy"], -(f @ arrays.log_q), rtol=1e-12)
    np.testing.assert_allclose(est["entropy"], -(f @ arrays.log_p), rtol=1e-12, atol=1e-15)
    q_support = np.exp(arrays.log_q)
    # KL(f‖q) with q's mass outside p's support included: scipy normalises q,
    # so give it the full q vector padded with that mass.
    outside = 1.0 - q_support.sum()
    ref = [stats.entropy(np.append(row, 0.0), np.append(q_support, max(outside, 0.0))) for row in f]
    np.testing.assert_allclose(est["plugin_kl"], ref, rtol=1e-9, atol=1e-15)
    # identities, per replicate
    np.testing.assert_allclose(est["cross_entropy"] - est["entropy"], est["llr"], rtol=1e-11, atol=1e-14)
    # KL(f‖q) = llr + KL(f‖p) ≥ llr, up to the rounding of two separate evaluations
    assert np.all(est["plugin_kl"] >= est["llr"] - 4 * np.finfo(float).eps * np.abs(est["llr"]))
    assert np.all(est["plugin_kl"] >= 0.0)


def _decimal_coin_kl(heads: int, n: int, q: float) -> float:
    """KL((h/n, 1 − h/n) ‖ (q, 1 − q)) in 50-digit decimals, q the double's exact value."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 50
        total = Decimal(0)
        for fk, qk in ((Decimal(heads) / n, Decimal(q)), (Decimal(n - heads) / n, 1 - Decimal(q))):
            if fk:
                total += fk * (fk / qk).ln()
        return float(total)


@pytest.mark.parametrize(("p", "q", "n"), [(0.5, 0.6, 5), (0.5, 0.55, 20), (0.3, 0.300000001, 10**6)])
def test_plugin_kl_keeps_relative_precision_where_f_is_almost_q(p, q, n):
    """f = k/n within rounding of q: KL(f‖q) is tiny and positive, not llr + KL(f‖p)'s ±1e-17.

    The reference is the exact KL between the frequency k/n and the double
    nearest q, in 50-digit decimals: agreement to 1e-12 relative, however
    small the value.
    """
    pair = d.Pair(d.coin(p), d.coin(q))
    arrays = SupportArrays.from_pair(pair)
    heads = round(q * n)
    first = heads if arrays.index[0] == 0 else n - heads
    counts = np.array([[first, n - first]])
    got = estimate(counts, n, arrays, names=["plugin_kl"])["plugin_kl"][0]
    ref = _decimal_coin_kl(heads, n, q)
    assert got >= 0.0
    assert abs(got - ref) <= 1e-12 * ref, (got, ref)


def test_requested_estimators_only():
    pair = d.Pair(d.coin(0.7), d.coin(0.5))
    arrays, counts = _random_counts(pair, 10, 5, seed=1)
    assert set(estimate(counts, 10, arrays, ["plugin_kl"])) == {"plugin_kl"}
    with pytest.raises(ValueError):
        estimate(counts, 10, arrays, ["nope"])


def test_source_example_hthhtth():
    r = coin_sequence("HTHHTTH", 0.5, 0.8)
    assert (r.heads, r.tails, r.n) == (4, 3, 7)
    assert r.loglik_p == pytest.approx(7 * math.log(0.5))
    assert r.loglik_q == pytest.approx(4 * math.log(0.8) + 3 * math.log(0.2))
    assert round(r.llr, 4) == 0.1241
    assert round(r.kl_pq, 4) == 0.2231


def test_coin_sequence_edge_cases():
    assert coin_sequence("h t", 0.5, 0.5).llr == 0.0
    assert coin_sequence("HH", 0.5, 1.0).kl_pq == math.inf
    assert coin_sequence("T", 0.0, 0.5).loglik_p == 0.0
    for bad in ("", "HTX"):
        with pytest.raises(ValueError):
            coin_sequence(bad, 0.5, 0.8)


def test_coin_estimators_by_table_equal_those_row_by_row():
    """Small n: each possible value is evaluated once and looked up; the same numbers."""
    pair = d.Pair(d.coin(0.7), d.coin(0.4))
    arrays, counts = _random_counts(pair, 9, 400, seed=3)
    by_table = estimate(counts, 9, arrays)  # 4·(9 + 1) ≤ 400 rows
    for row in (0, 1, 2, 3):  # one row at a time: evaluated directly
        direct = estimate(counts[row : row + 1], 9, arrays)
        for name, values in direct.items():
            np.testing.assert_allclose(by_table[name][row], values[0], rtol=1e-15, atol=1e-17)


def test_xlogx_matches_its_definition_across_the_table_edge():
    from sim.estimators import XLOGX_TABLE, xlogx

    c = np.array([0, 1, 2, 7, XLOGX_TABLE - 1, XLOGX_TABLE, 10**9, 2**52])
    expected = np.array([0.0] + [float(x) * math.log(x) for x in c[1:]])
    np.testing.assert_allclose(xlogx(c), expected, rtol=1e-15)
    np.testing.assert_allclose(xlogx(c.reshape(2, 4)), expected.reshape(2, 4), rtol=1e-15)
    np.testing.assert_allclose(xlogx(c[:5]), expected[:5], rtol=1e-15)  # all below the edge: the table alone
    assert xlogx(c[:0]).shape == (0,)


def test_running_sums_of_large_vocabularies_equal_the_estimators():
    """SparseSums along a sampled path (sparse updates, then full recounts) against estimate()."""
    from sim.estimators import SparseSums
    from sim.sampling import count_paths

    pair = d.Pair(d.zipf(1500, 1.1), d.uniform(1500))
    arrays = SupportArrays.from_pair(pair)
    ckpts = [3, 40, 700, 1499, 5000, 10**6]  # observations, then Poissonised increments
    sums = SparseSums(30, arrays, ESTIMATORS)
    paths = count_paths(arrays.probs, ckpts, 30, rng=np.random.default_rng(5), sparse=True)
    dense = count_paths(arrays.probs, ckpts, 30, rng=np.random.default_rng(5))
    kinds = []
    for n, (counts, change), reference in zip(ckpts, paths, dense, strict=True):
        kinds.append(change is None)
        got = sums.update(counts, change, n)
        ref = estimate(reference, n, arrays)
        for name in ESTIMATORS:
            # the running form of plugin_kl cancels about log(n)·1e-16 (see SparseSums)
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, atol=1e-14 * math.log(n))
    assert kinds == [False, False, False, False, True, True]


@pytest.mark.parametrize(
    "q",
    [d.uniform(1500), d.zipf(1500, 0.6)],  # with a uniform q, cross_entropy's v − v_0 is 0 everywhere
)
def test_running_sums_add_each_change_in_cell_order(q):
    """Every running sum is, bit for bit, the changes' terms added one by one in the cells' order.

    The reference adds, per row and sum, each changed cell's (after − before)·(v − v_0)
    (and for S its xlogx(after) − xlogx(before)) to 0.0 in turn, then that total to the sum.
    """
    from sim.estimators import SparseSums, xlogx
    from sim.sampling import count_paths

    arrays = SupportArrays.from_pair(d.Pair(d.zipf(1500, 1.1), q))
    rows = 9
    sums = SparseSums(rows, arrays, ESTIMATORS)
    expected = np.zeros((len(sums.terms) + 1, rows))
    tables = [*sums.table, None]
    for _, change in count_paths(arrays.probs, [3, 40, 700], rows, rng=np.random.default_rng(8), sparse=True):
        sums.update(None, change, 1)
        for t, table in enumerate(tables):
            for r in range(rows):
                total = 0.0
                for cell in np.flatnonzero(change.rows == r):
                    c, before, after = change.cols[cell], change.before[cell], change.after[cell]
                    if table is None:
                        total += float(xlogx(np.array([after]))[0] - xlogx(np.array([before]))[0])
                    else:
                        total += float(after - before) * float(table[c])
                expected[t, r] += total
        np.testing.assert_array_equal(sums.sums, expected[:-1])
        np.testing.assert_array_equal(sums.s, expected[-1])
