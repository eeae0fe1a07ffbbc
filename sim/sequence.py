"""The source's worked example: a sequence of coin flips scored under two coins (``sim llr``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .distributions import Pair, coin


@dataclass(frozen=True)
class CoinSequence:
    """The source's worked example: a sequence of flips under two coins (nats)."""

    heads: int
    tails: int
    p: float
    q: float
    loglik_p: float
    loglik_q: float
    kl_pq: float

    @property
    def n(self) -> int:
        return self.heads + self.tails

    @property
    def log_ratio(self) -> float:
        """log L_p − log L_q (nan when both likelihoods are 0)."""
        return self.loglik_p - self.loglik_q

    @property
    def llr(self) -> float:
        """The normalised log-likelihood ratio (1/N) log(L_p/L_q)."""
        return self.log_ratio / self.n


def coin_sequence(sequence: str, p: float, q: float) -> CoinSequence:
    """Count heads and tails in ``sequence`` (``H``/``T``) and evaluate both coins.

    Raises
    ------
    ValueError
        If the sequence is empty or holds anything but H and T (either case;
        spaces are ignored), or if p or q lies outside [0, 1].  The message
        quotes the first offending character as given and its position in
        ``sequence`` (counting spaces, from 1).
    """
    flips = "".join(sequence.split()).upper()
    if not flips:
        raise ValueError("the sequence is empty; give flips such as HTHHTTH")
    bad = next(
        (i for i, ch in enumerate(sequence) if not ch.isspace() and ch.upper() not in ("H", "T")), None
    )
    if bad is not None:
        raise ValueError(
            f"the sequence may hold only H and T; found {sequence[bad]!r} at position {bad + 1}"
            + (f" of {sequence!r}" if any(ch.isspace() for ch in sequence) else "")
        )
    heads = flips.count("H")
    tails = len(flips) - heads
    cp, cq = coin(p), coin(q)

    def loglik(c) -> float:
        lh, lt = c.log_probs
        return (heads * lh if heads else 0.0) + (tails * lt if tails else 0.0)

    try:
        kl = Pair(cp, cq).kl_pq
    except ValueError:
        kl = math.inf
    return CoinSequence(heads, tails, p, q, loglik(cp), loglik(cq), kl)
