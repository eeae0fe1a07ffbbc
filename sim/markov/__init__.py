"""Markov sources: a chain p against a chain or an i.i.d. model q, the KL rate and per-token estimators.

:class:`sim.markov.chain.Chain` is a chain (and :func:`unigram` an i.i.d. model as one);
:class:`sim.markov.pair.MarkovPair` is a case's (p, q) with its rates and exact finite-n laws
(:mod:`sim.markov.theory`); :mod:`sim.markov.paths` simulates its replicates step by step.
"""

from __future__ import annotations

from .chain import MAX_STATES, Chain, unigram
from .pair import MarkovPair

__all__ = ["MAX_STATES", "Chain", "MarkovPair", "unigram"]
