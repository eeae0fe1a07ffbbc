"""Independent oracles shared by tests: 60-digit decimal arithmetic, never the code under test."""

from __future__ import annotations

from decimal import Decimal, localcontext

from sim import distributions as d


def chernoff_decimal(pair: d.Pair) -> tuple[Decimal, Decimal]:
    """C and s* in 60-digit decimals, by safeguarded Newton on the derivative of Σ P^(1−s) Q^s.

    P and Q are the pair's doubles, normalised exactly in decimal (a coin's
    tails are 1 − heads exactly); f(s) = Σ P e^(s L), L = log(Q/P), over the
    categories both have, is convex, so s* is the root of f′ on [0, 1] (or 1
    where f′(1) ≤ 0).
    """
    with localcontext() as ctx:
        ctx.prec = 60
        if pair.p.heads is not None and pair.q.heads is not None:
            hp, hq = Decimal(pair.p.heads), Decimal(pair.q.heads)
            big_p, big_q = [hp, 1 - hp], [hq, 1 - hq]
        else:
            big_p = [Decimal(float(x)) for x in pair.p.probs]
            big_q = [Decimal(float(x)) for x in pair.q.probs]
            sp, sq = sum(big_p), sum(big_q)
            big_p, big_q = [x / sp for x in big_p], [x / sq for x in big_q]
        both = [(a, b) for a, b in zip(big_p, big_q, strict=True) if a > 0 and b > 0]
        weights, logs = [a for a, _ in both], [(b / a).ln() for a, b in both]

        def f(s: Decimal, k: int = 0) -> Decimal:
            return sum(
                (w * (v**k if k else 1) * (s * v).exp() for w, v in zip(weights, logs, strict=True)),
                Decimal(0),
            )

        lo, hi = Decimal(0), Decimal(1)
        if f(hi, 1) <= 0:
            return -f(hi).ln(), hi
        s = Decimal("0.5")
        for _ in range(200):
            slope = f(s, 1)
            lo, hi = (s, hi) if slope < 0 else (lo, s)
            t = s - slope / f(s, 2)
            if not lo < t < hi:
                t = (lo + hi) / 2
            if abs(t - s) < Decimal("1e-50"):
                return -f(t).ln(), t
            s = t
        raise AssertionError("Newton did not converge")
