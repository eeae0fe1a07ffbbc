"""What exact theory says about one summary row: the law of one replicate's value.

A :class:`Law` gathers, in the experiment's units, everything the checks
need about the value one replicate takes for (case, n, estimator): its exact
mean and sd where known (or a rigorous upper bound on the sd), its fourth
central moment, its skewness and excess kurtosis (to decide whether a normal
approximation of a mean of R replicates is adequate), hard bounds on the
value, and, for coins, the linear form that makes a mean an exact Binomial
count.  Nothing here reads a results table.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .. import exact, fitting, registry
from ..decision import chernoff, coin_wrong_bound, log_tilted_bound, sees_every_event, tilted, tilted_bound
from ..distributions import Pair, snap_rounding, xlog1px_minus_x
from ..registry import Estimator, Form

NAN = math.nan


@dataclass(frozen=True)
class Law:
    """The law of one replicate's value of an estimator at one n (experiment's units).

    Attributes
    ----------
    mean, sd, mu4 : float
        Exact mean, sd and fourth central moment; nan where unknown.
    sd_bound : float
        A rigorous upper bound on the sd (the sd itself where exact); nan if none.
    skew, kurtosis : float
        Skewness and excess kurtosis of one value (nan where unknown); an
        approximation where ``moments_note`` says so.
    low, high : float
        Every value lies in [low, high].
    linear : tuple of float or None
        For a coin's llr, cross-entropy and entropy: (v_T, v_H), the value
        being (h·v_H + (n − h)·v_T)/n for h heads, so that a mean over R
        replicates is a Binomial(R·n, p) count in disguise.
    heads : float
        The coin's P(heads) where ``linear`` is given.
    indicator : bool
        Values are 0 or 1 (``p_wrong``).
    two_values : tuple of float or None
        The only two values the estimator can take (a coin at n = 1).
    scale : float
        The magnitude of the terms a value is computed from: rounding is
        judged relative to it.
    reference_rounding : float
        How far the mean of the values the estimator sums (Σ p_k v_k, from
        the rounded logarithms it uses) is from the exact mean (from the
        rounded probabilities): allowed on top of rounding.
    moments_note : str
        How skewness and kurtosis were obtained.
    """

    mean: float = NAN
    sd: float = NAN
    mu4: float = NAN
    sd_bound: float = NAN
    skew: float = NAN
    kurtosis: float = NAN
    low: float = -math.inf
    high: float = math.inf
    linear: tuple[float, float] | None = None
    heads: float = NAN
    indicator: bool = False
    two_values: tuple[float, float] | None = None
    scale: float = 0.0
    moments_note: str = "exact"
    blank_if_all_zero: bool = False
    reference_rounding: float = 0.0


def _standardised(mean: float, var: float, mu3: float, mu4: float) -> tuple[float, float]:
    if var <= 0.0:
        return 0.0, 0.0
    return mu3 / var**1.5, mu4 / var**2 - 3.0


def _mean_law(pair: Pair, spec: Estimator, n: int, k: float) -> Law:
    values = spec.terms(pair)
    m, one = spec.moments(pair, n), spec.summand(pair)  # one: of a single observation (see exact.summand)
    mean, centre = one.mean, one.centre
    skew1, kurt1 = _standardised(mean, one.var, one.mu3, one.mu4)
    linear = heads = None
    if pair.family == "coin" and pair.support.size == 2:
        # support is (heads, tails) in category order
        linear = (float(values[1]) / k, float(values[0]) / k)
        heads = float(pair.p.probs[0])
    two = None
    if n == 1 and pair.support.size == 2:
        two = tuple(sorted((float(values[0]) / k, float(values[1]) / k)))
    return Law(
        mean=m.mean / k,
        sd=m.sd / k,
        mu4=m.mu4 / k**4,
        sd_bound=m.sd / k,
        skew=skew1 / math.sqrt(n),
        kurtosis=kurt1 / n,
        low=float(values.min()) / k,
        high=float(values.max()) / k,
        linear=linear,
        heads=NAN if heads is None else heads,
        two_values=two,
        scale=float(np.max(np.abs(values))) / k,
        reference_rounding=abs(centre - mean) / k,
    )


def _plugin_terms(pair: Pair, n: int):
    """Per-category terms g_k(C_k) = q_k h(C_k/(n q_k) − 1) of KL(p̂‖q) on p's support."""
    s = pair.support
    probs, qs = pair.p.probs[s], pair.q.probs[s]

    def term(c, k):
        return qs[k] * xlog1px_minus_x(c / (n * qs[k]) - 1.0)

    return probs, term


#: Beyond this many categories the plug-in's skewness and kurtosis are not computed
#: (two Binomial passes over every category per n, 15 s for a 50,000-token Zipf law):
#: its mean is then tested by Bernstein's bound, valid whatever the law.
CUMULANT_MAX_K = 5000


@functools.lru_cache(maxsize=1024)
def _plugin_cumulants(pair: Pair, n: int) -> tuple[float, float]:
    """Skewness and excess kurtosis of KL(p̂‖q), treating the category counts as independent.

    An approximation (the counts of a Multinomial are weakly negatively
    dependent, not independent), used only to judge whether a normal
    approximation of a mean of R replicates is adequate.  Each category's
    central moments are exact Binomial sums.
    """
    probs, term = _plugin_terms(pair, n)
    mean_k = exact.expect(n, probs, term)

    def central(c, k):
        d = term(c, k) - mean_k[k]
        d2 = d * d
        return d2, d2 * d, d2 * d2

    var_k, mu3_k, mu4_k = exact.expect(n, probs, central)
    var = math.fsum(var_k)
    if var <= 0.0:
        return 0.0, 0.0
    k3 = math.fsum(mu3_k)
    k4 = math.fsum(mu4_k - 3.0 * var_k**2)
    return k3 / var**1.5, k4 / var**2


def _plugin_law(pair: Pair, spec: Estimator, n: int, k: float) -> Law:
    m = spec.moments(pair, n)
    log_q = -pair.q.log_probs[pair.support]
    high = float(np.max(log_q)) / k
    weight = spec.observed_penalty  # the value is KL(f‖q) − weight·(K̂ − 1)/n
    sd, sd_bound, mu4, note = m.sd, m.sd, m.mu4, "exact"
    if pair.family == "coin":
        skew, kurt = _coin_plugin_standardised(pair, n, m, weight)
    else:
        if math.isnan(sd):  # sd(A − B) ≤ sd(A) + sd(B) (Minkowski), for B = weight·K̂/n
            plugin = exact.plugin_moments(pair, n).sd if weight else math.nan
            plugin = exact.plugin_sd_upper(pair, n)[0] if math.isnan(plugin) else plugin
            sd_bound = plugin + weight * exact.observed_sd_upper(pair, n) / n
        if weight:  # K̂'s share in the skewness is not known: the mean gets the Bernstein test
            skew = kurt = NAN
            note = "not computed for a corrected plug-in beyond a coin"
        elif pair.support.size <= CUMULANT_MAX_K:
            skew, kurt = _plugin_cumulants(pair, n)
            note = "approximate (category counts taken as independent)"
        else:  # not computed (cost grows with K): the mean gets the Bernstein test
            skew = kurt = NAN
            note = f"not computed beyond {CUMULANT_MAX_K:,} categories"
    return Law(
        mean=m.mean / k,
        sd=sd / k,
        mu4=mu4 / k**4,
        sd_bound=sd_bound / k,
        skew=skew,
        kurtosis=kurt,
        low=-weight * (min(n, pair.support.size) - 1) / n / k,
        high=high,
        two_values=_coin_two_values(pair, n, k),
        scale=max(abs(m.mean), float(np.max(np.abs(pair.log_ratio)))) / k,
        moments_note=note,
    )


def _smoothed_law(pair: Pair, spec: Estimator, n: int, k: float) -> Law:
    """KL(f̃‖q) of add-α frequencies (or its posterior mean): exact mean; sd exact where
    :func:`sim.exact.smoothed_moments` knows it, else bounded (Efron–Stein)."""
    m = spec.moments(pair, n)
    sd_bound, note = m.sd, "exact"
    skew = kurt = NAN
    if math.isnan(m.sd):
        sd_bound = exact.smoothed_sd_upper(pair, n, spec.smoothing, spec.posterior)
        note = "sd beyond the pairwise budget: bounded"
    elif m.sd > 0.0 and pair.family == "coin":
        alpha = spec.smoothing.value(pair.q.k, n)
        skew = _coin_skewness(pair, n, m, exact.SmoothedTerms(pair, n, alpha, spec.posterior).coin)
        kurt = m.mu4 / m.sd**4 - 3.0
    elif m.sd == 0.0:
        skew = kurt = 0.0
    return Law(
        mean=m.mean / k,
        sd=m.sd / k,
        mu4=m.mu4 / k**4,
        sd_bound=sd_bound / k,
        skew=skew,
        kurtosis=kurt,
        low=0.0,
        high=float(np.max(-pair.q.log_probs)) / k,
        scale=max(abs(m.mean), float(np.max(-pair.q.log_probs))) / k,
        moments_note=note,
    )


def _jackknife_law(pair: Pair, spec: Estimator, n: int, k: float) -> Law:
    """The jackknifed plug-in: exact mean; sd exact for coins and where pairwise sums fit, else unknown."""
    m = spec.moments(pair, n)
    low, high = (float(b[0]) for b in spec.bounds_at(pair, [n]))
    constant = m.sd == 0.0
    return Law(
        mean=m.mean / k,
        sd=m.sd / k,
        mu4=m.mu4 / k**4,
        sd_bound=m.sd / k,
        skew=0.0 if constant else NAN,
        kurtosis=0.0 if constant else NAN,
        low=low / k,
        high=high / k,
        scale=max(abs(m.mean), high / n) / k,
        moments_note="skewness not computed" if not math.isnan(m.sd) else "sd beyond the pairwise budget",
    )


def _two_sample_law(pair: Pair, spec: Estimator, n: int, k: float) -> Law:
    """KL(f‖q̃) against q's smoothed sample: exact mean; sd exact for coins within budget, else unknown."""
    m = spec.moments(pair, n)
    low, high = (float(b[0]) for b in spec.bounds_at(pair, [n]))
    known = not math.isnan(m.sd)
    return Law(
        mean=m.mean / k,
        sd=m.sd / k,
        mu4=m.mu4 / k**4,
        sd_bound=m.sd / k,
        skew=0.0 if m.sd == 0.0 else NAN,
        kurtosis=0.0 if m.sd == 0.0 else NAN,
        low=low / k,
        high=high / k,
        scale=max(abs(m.mean), float(np.max(-pair.q.log_probs[pair.support]))) / k,
        moments_note="skewness not computed" if known else "sd not computed beyond a coin's budget",
    )


def _coin_skewness(pair: Pair, n: int, m, values) -> float:
    """E[(X − mean)³]/sd³ of a coin's estimator X = ``values(heads)``, by a sum over the heads."""

    def cubed(c, _k):
        v = values(c)
        return snap_rounding(v - m.mean, np.maximum(np.abs(v), abs(m.mean))) ** 3

    return float(exact.expect(n, np.array([pair.p.heads]), cubed)[0]) / m.sd**3


def _coin_two_values(pair: Pair, n: int, k: float) -> tuple[float, float] | None:
    if n != 1 or pair.support.size != 2:
        return None
    p0 = pair.q.probs[pair.support]
    values = -np.log(p0)  # KL(δ_k‖q) = −log q_k
    return tuple(sorted(float(v) / k for v in values))


def _coin_plugin_standardised(pair: Pair, n: int, m, weight: float = 0.0) -> tuple[float, float]:
    if not m.sd > 0.0:
        return 0.0, 0.0
    skew = _coin_skewness(pair, n, m, exact.coin_plugin_values(pair, n, weight))
    return skew, m.mu4 / m.sd**4 - 3.0


def _p_wrong_law(pair: Pair, spec: Estimator, n: int, k: float) -> Law:
    m = spec.moments(pair, n)
    return Law(
        mean=m.mean,
        sd=m.sd,
        mu4=m.mu4,
        sd_bound=m.sd,
        low=0.0,
        high=1.0,
        indicator=True,
        two_values=(0.0, 1.0),
        scale=abs(m.mean) if not math.isnan(m.mean) else 0.0,
    )


#: Up to this n a tilted coin's skewness is summed exactly over head counts.
TILTED_SKEW_MAX_N = 1_000_000


def _tilted_coin_skewness(pair: Pair, n: int, m) -> float:
    """E[(X − m)³]/sd³ of one tilted coin replicate X = w·1{wrong}, by a sum over head counts."""
    p, q = pair.p.heads, pair.q.heads
    side, h = coin_wrong_bound(p, q, n)
    r = float(tilted(pair, chernoff(pair).s)[0])
    heads = np.arange(0, h + 1) if side == "le" else np.arange(max(h, 0), n + 1)
    lp, lr = stats.binom.logpmf(heads, n, p), stats.binom.logpmf(heads, n, r)
    w = np.exp(lp - lr - math.log(m.mean))  # weights relative to the mean: nothing underflows
    under = np.exp(lr)
    rel = [math.fsum(under * w**k) for k in (1, 2, 3)]  # E[(X/m)^k]
    var = rel[1] - 1.0
    mu3 = rel[2] - 3 * rel[1] + 2.0  # E[(X/m − 1)³], since E[X/m] = 1
    return mu3 / var**1.5 if var > 0 else 0.0


def _tilted_law(pair: Pair, spec: Estimator, n: int, k: float) -> Law:
    m = spec.moments(pair, n)
    high = tilted_bound(pair, n)
    skew = kurt = NAN
    note = "skewness bounded by √(β2 − 1)"
    mu4 = m.mu4
    if m.sd > 0.0 and m.sd**4 == 0.0:
        note, mu4 = "unknown (moments underflow)", NAN
    elif m.sd > 0.0 and m.mean > 0.0 and n <= TILTED_SKEW_MAX_N:
        skew, kurt, note = _tilted_coin_skewness(pair, n, m), m.mu4 / m.sd**4 - 3.0, "exact"
    elif m.sd > 0.0:
        beta2 = m.mu4 / m.sd**4
        # |skewness| ≤ √(β2 − 1) (Pearson): a safe stand-in for the unknown third moment
        skew, kurt = math.sqrt(max(beta2 - 1.0, 0.0)), beta2 - 3.0
    elif m.sd == 0.0:
        skew = kurt = 0.0
    return Law(
        mean=m.mean,
        sd=m.sd,
        mu4=mu4,
        sd_bound=m.sd,
        skew=skew,
        kurtosis=kurt,
        low=0.0,
        high=high,
        scale=high,
        moments_note=note,
        # as the summary does: zeros mean no replicate saw the event, unless weights can underflow
        blank_if_all_zero=sees_every_event(pair, n),
        # each weight's exponent carries the rounding the bound allows for (relative)
        reference_rounding=abs(m.mean) * max(log_tilted_bound(pair, n) + n * chernoff(pair).information, 0.0),
    )


def convergence_law(pair: Pair, estimator: str, n: int, units: str) -> Law:
    """The :class:`Law` of one replicate of ``estimator`` at ``n`` for a convergence case."""
    spec = registry.get(estimator)
    if pair.parametric:
        return _family_law(pair, spec, n, spec.divisor(units))
    if spec.form not in _LAWS:
        raise ValueError(f"no law known for estimator {estimator!r}")
    return _LAWS[spec.form](pair, spec, n, spec.divisor(units))


def _family_law(pair, spec: Estimator, n: int, k: float) -> Law:
    """A pair that knows its estimators' laws (:class:`sim.families.FamilyPair`,
    :class:`sim.markov.MarkovPair`): exact mean, sd, fourth moment, shape and bounds.

    A family's values are unbounded (a normal's llr) or bounded on one side only (a KL ≥ 0); a
    Markov case's are bounded.  The mean is z-tested where the exact skewness and kurtosis make
    the normal law adequate.
    """
    m = spec.moments(pair, n)
    skew, kurtosis = pair.shape(spec, n)
    low, high = pair.bounds(spec, n)
    one = m.sd * math.sqrt(n) if spec.form is Form.MEAN else m.sd  # the spread of the terms summed
    return Law(
        mean=m.mean / k,
        sd=m.sd / k,
        mu4=m.mu4 / k**4,
        sd_bound=m.sd / k,
        skew=skew,
        kurtosis=kurtosis,
        low=low / k,
        high=high / k,
        scale=(abs(m.mean) + 8.0 * one) / k,
        moments_note="exact" if not math.isnan(skew) else "unknown",
    )


#: The law of one replicate, by the estimator's form (probabilities: k = 1 always).
_LAWS = {
    Form.MEAN: _mean_law,
    Form.PLUGIN: _plugin_law,
    Form.SMOOTHED: _smoothed_law,
    Form.JACKKNIFE: _jackknife_law,
    Form.TWO_SAMPLE: _two_sample_law,
    Form.WRONG: _p_wrong_law,
    Form.TILTED: _tilted_law,
}


def fit_law(experiment, case, estimator: str, n: int) -> Law:
    """The :class:`Law` of one replicate of a fit estimator (experiment's units)."""
    k = registry.get(estimator).divisor(experiment.units)
    truth, a = experiment.truth, experiment.smoothing
    mean = getattr(fitting.exact_means(truth, case.model, a, n), estimator)
    sd = getattr(fitting.exact_sds(truth, case.model, a, n), estimator)
    high = math.inf
    if a > 0 and case.model in ("saturated", "constant"):
        pseudo = a if case.model == "saturated" else a * truth.inputs
        top = math.log((n + truth.classes * pseudo) / pseudo)  # −log of the smallest fitted probability
        high = top - (truth.entropy if registry.get(estimator).kl else 0.0)
    return Law(
        mean=mean / k,
        sd=sd / k,
        sd_bound=sd / k,
        low=0.0,
        high=high / k,
        scale=(abs(mean) + truth.entropy) / k if not math.isnan(mean) else truth.entropy / k,
        moments_note="unknown",
    )
