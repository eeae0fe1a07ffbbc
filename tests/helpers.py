"""Statistical helpers and shared configs for the tests (imported, not fixtures).

Statistical tests run with fixed seeds, so each is deterministic; their
tolerances are what a correct sampler would meet with probability
1 − ALPHA for a random seed, derived from the exact sampling distribution
(Monte Carlo standard errors), with a Bonferroni correction when one test
makes several comparisons.  None was tuned to pass.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest
from scipy import stats

#: Family-wise false-alarm rate of each statistical test.
ALPHA = 1e-3


def z_crit(comparisons: int = 1, alpha: float = ALPHA) -> float:
    """Two-sided normal critical value with a Bonferroni correction."""
    return float(stats.norm.isf(alpha / (2 * comparisons)))


def assert_matches_pmf(samples: np.ndarray, pmf: np.ndarray, alpha: float = ALPHA) -> None:
    """Chi-square goodness of fit of integer ``samples`` in 0..len(pmf)-1 to ``pmf``.

    Bins with expected count below 5 are pooled with their neighbours, so
    the chi-square approximation holds.
    """
    samples = np.asarray(samples)
    assert samples.min() >= 0 and samples.max() < len(pmf)
    n = samples.size
    observed = np.bincount(samples, minlength=len(pmf)).astype(float)
    expected = n * np.asarray(pmf, dtype=float)
    obs_bins, exp_bins, o, e = [], [], 0.0, 0.0
    for oi, ei in zip(observed, expected, strict=True):
        o, e = o + oi, e + ei
        if e >= 5:
            obs_bins.append(o)
            exp_bins.append(e)
            o = e = 0.0
    obs_bins[-1] += o
    exp_bins[-1] += e
    exp_arr = np.array(exp_bins)
    exp_arr *= sum(obs_bins) / exp_arr.sum()
    p_value = stats.chisquare(obs_bins, exp_arr).pvalue
    assert p_value > alpha, f"chi-square p = {p_value:.2e} over {len(obs_bins)} bins"


def skip_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build figures but do not render them: ``Figure.savefig`` writes a stub file.

    Rendering (layout and text) costs most of a second a figure; tests of
    what is written where, or of a run's control flow around its figures,
    do not need it.  Every figure kind is rendered for real elsewhere
    (tests/test_figures.py: ``sim plot --format svg``, ``sim plot`` in a
    fresh process and a streamed ``sim run``; the testing figure in
    tests/test_decision.py; the fit kinds in tests/test_fit.py).
    """

    def savefig(self: matplotlib.figure.Figure, fname: str | Path, *args: object, **kwargs: object) -> None:
        Path(fname).write_bytes(b"not rendered\n")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)


#: A small config with a coin and a die, for tests that only need some results.
TINY = """
name: tiny
seed: 7
replicates: 50
n: [1, 10, 100]
cases:
  - name: coin
    p: 0.7
    q: 0.5
  - name: die
    p: [0.5, 0.25, 0.25, 0.0]
    q: {uniform: 4}
"""


#: The cases of the estimator modules' runs: a coin, a q with mass where p has none, and a Zipf
#: law beyond the dense kernels. Append to a config's top keys; write units as UNITS.
ESTIMATOR_CASES = """cases:
  - {name: coin, p: 0.7, q: 0.5}
  - {name: gap, p: [0.5, 0.5, 0.0], q: [0.3, 0.3, 0.4]}
  - {name: zipf, p: {zipf: {k: 300, s: 1.1}}, q: {uniform: 300}}
"""
