"""Every estimator, described once.

An :class:`Estimator` says what an estimator is (its name, what it
estimates, how it is computed from a path's counts), what theory knows of it
(its exact moments, its a-priori range) and how it is shown (label, colour,
marker).  Config validation, the sampling kernels, streaming, summaries,
``sim check`` and the figures all ask this module; none of them tests an
estimator's name.  Adding an estimator of an existing :class:`Form` is one
entry here plus its tests; a new form also needs its kernel in
:mod:`sim.estimators`, its moments in :mod:`sim.exact` and its law in
:mod:`sim.check.laws`.

Values are computed in nats; :meth:`Estimator.divisor` converts them to the
experiment's units (probabilities are never converted).

Estimators with parameters (:data:`PARAMETERISED`) are built on demand from
their parameters or their label, ``smoothed_kl[alpha=0.5]``, which is their
name in configs' resolved form and in every table; :func:`get` accepts both
kinds of name.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from .distributions import Pair, unit_size

if TYPE_CHECKING:
    from .exact import Moments, Summand


class Form(enum.Enum):
    """How an estimator is computed, which decides what theory knows of it."""

    #: (1/N) Σ v(X_i): a mean of i.i.d. per-sample terms v = sign·vector.
    MEAN = enum.auto()
    #: KL(f‖q) of the empirical distribution f: the plug-in KL.
    PLUGIN = enum.auto()
    #: 1{llr_N ≤ 0}: the sample favours q (the decision of a likelihood-ratio test).
    WRONG = enum.auto()
    #: w·1{llr_N ≤ 0} on paths drawn from the Chernoff-tilted law (importance sampling).
    TILTED = enum.auto()
    #: A cross-entropy of a model fitted to the sample (fit experiments).
    FITTED = enum.auto()
    #: KL(f̃‖q) of add-α smoothed frequencies f̃_k = (c_k + α)/(N + Kα), K the alphabet's size.
    SMOOTHED = enum.auto()
    #: The jackknifed plug-in: N·KL(f_N‖q) − (N − 1)·mean over i of KL(f_(−i)‖q).
    JACKKNIFE = enum.auto()
    #: KL(f‖q̃) against q's own sample of M observations, add-α smoothed:
    #: q̃_k = (d_k + α)/(M + Kα) (q known only through that sample).
    TWO_SAMPLE = enum.auto()


class Setting(enum.Enum):
    """What an estimator of KL(p‖q) needs besides samples of p: the setting it can be used in."""

    #: p and q both scored at each sample (r = q(x)/p(x) known there), as in RLHF.
    SCORED = "both models scored at the samples"
    #: Only the samples' counts and a known q.
    KNOWN_Q = "samples of p and a known q"
    #: Samples of p and of q, no model (dataset shift).
    TWO_SAMPLES = "samples of p and of q"


#: The setting of each form of estimator of KL(p‖q) (see :attr:`Estimator.setting`).
_SETTINGS = {
    Form.MEAN: Setting.SCORED,
    Form.PLUGIN: Setting.KNOWN_Q,
    Form.SMOOTHED: Setting.KNOWN_Q,
    Form.JACKKNIFE: Setting.KNOWN_Q,
    Form.TWO_SAMPLE: Setting.TWO_SAMPLES,
}


class Logs(Protocol):
    """Per-category logarithms on p's support: what a :attr:`Form.MEAN` term is made of.

    :class:`sim.estimators.SupportArrays` is one (most probable category
    first); :func:`support_logs` gives a pair's, in the support's order.
    """

    log_p: np.ndarray
    log_q: np.ndarray
    log_ratio: np.ndarray


class PairLogs(NamedTuple):
    """A pair's :class:`Logs` on p's support, in the support's order."""

    log_p: np.ndarray
    log_q: np.ndarray
    log_ratio: np.ndarray


def support_logs(pair: Pair) -> PairLogs:
    """``pair``'s logarithms on p's support (``log_ratio`` computed directly, not as log p − log q)."""
    s = pair.support
    return PairLogs(pair.p.log_probs[s], pair.q.log_probs[s], np.asarray(pair.log_ratio, dtype=float))


def log_ratio(logs: Logs) -> np.ndarray:
    """log(p/q) per category: one observation's term of the llr."""
    return logs.log_ratio


def minus_log_q(logs: Logs) -> np.ndarray:
    """−log q per category: one observation's term of the cross-entropy (and the plug-in's bound)."""
    return -logs.log_q


def minus_log_p(logs: Logs) -> np.ndarray:
    """−log p per category: one observation's term of the entropy."""
    return -logs.log_p


def half_square_log_ratio(logs: Logs) -> np.ndarray:
    """½(log r)², r = q/p, per category: one observation's term of ``k2``."""
    return 0.5 * logs.log_ratio**2


def k3_term(logs: Logs) -> np.ndarray:
    """r − 1 − log r, r = q/p, per category: one observation's term of ``k3`` (≥ 0)."""
    return exp_excess(-logs.log_ratio)


#: Below this |x|, e^x − 1 − x is summed as its series: expm1(x) − x would cancel.
_SERIES_BELOW = 1.0
#: Terms of that series: x^k/k! for k = 2 … 25, the last < 10⁻²⁴ of the first for |x| < 1.
_SERIES_TERMS = 25


def exp_excess(x: np.ndarray) -> np.ndarray:
    """e^x − 1 − x, elementwise, to full relative precision at every scale (≥ 0; inf past e^709).

    Near 0 it is x²/2 + x³/6 + …, which ``expm1(x) − x`` would get with
    relative error about 2ε/|x|; there the series is summed (Horner), and
    elsewhere ``expm1(x) − x`` loses at most a few units in the last place.
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore"):
        out = np.expm1(x) - x
    near = np.abs(x) < _SERIES_BELOW
    if near.any():
        xs = x[near]
        h = np.ones_like(xs)
        for k in range(_SERIES_TERMS, 2, -1):  # 1 + x/3 (1 + x/4 (1 + … (1 + x/25)))
            h = 1.0 + xs * h / k
        out[near] = 0.5 * xs * xs * h
    return out


def _mean_term(term: Callable[[Logs], np.ndarray]) -> Callable[[Pair], float]:
    """The exact mean E_p[term(X)] of a term with no closed form: Σ p term, summed exactly (fsum)."""

    def limit(pair: Pair) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            return math.fsum(pair.p.probs[pair.support] * term(support_logs(pair)))

    return limit


#: Named add-α rules: α from the alphabet's size K and the sample size N.
ALPHA_RULES: dict[str, Callable[[int, int], float]] = {
    "laplace": lambda k, n: 1.0,
    "jeffreys": lambda k, n: 0.5,
    "perks": lambda k, n: 1.0 / k,
    "minimax": lambda k, n: math.sqrt(n) / k,
}


@dataclass(frozen=True)
class Smoothing:
    """Add-α pseudo-counts: ``alpha`` a positive number, or a rule of :data:`ALPHA_RULES` by name."""

    alpha: float | str

    def value(self, k: int, n: int) -> float:
        """α for an alphabet of ``k`` categories and ``n`` observations."""
        return ALPHA_RULES[self.alpha](k, n) if isinstance(self.alpha, str) else self.alpha

    @property
    def text(self) -> str:
        """α as labels show it: the rule's name, or the number's shortest form (``1``, ``0.5``, ``1e-05``)."""
        if isinstance(self.alpha, str):
            return self.alpha
        text = repr(self.alpha)
        return text[:-2] if text.endswith(".0") else text


#: The largest α accepted: beyond it f̃ is q's own uniform limit to every digit, and N + Kα would
#: leave the range where the terms are computed exactly.
MAX_ALPHA = 1e15


def smoothing(alpha: object) -> Smoothing:
    """A :class:`Smoothing` from a config's ``alpha`` (a positive finite number or a rule's name).

    Raises
    ------
    ValueError
        With a sentence saying what ``alpha`` may be.
    """
    if isinstance(alpha, str) and alpha.strip().lower() in ALPHA_RULES:
        return Smoothing(alpha.strip().lower())
    if isinstance(alpha, str):
        with contextlib.suppress(ValueError):
            alpha = float(alpha)
    if isinstance(alpha, int | float) and not isinstance(alpha, bool) and 0 < alpha <= MAX_ALPHA:
        return Smoothing(float(alpha))
    rules = ", ".join(ALPHA_RULES)
    raise ValueError(f"alpha must be a positive number up to {MAX_ALPHA:g} or one of {rules}, got {alpha!r}")


@dataclass(frozen=True)
class Estimator:
    """One estimator: what it is, what theory knows of it, how it is drawn.

    Attributes
    ----------
    name : str
        Its name in configs (``estimators:``) and in the tables.
    form : Form
        How it is computed from a path.
    target : str or None
        The ``analytic.csv`` column it converges to; None for the
        probabilities, whose target is 0.
    label, colour, marker : str, int, str
        How figures show it: legend text, an index into seaborn's
        ``colorblind`` palette, a matplotlib marker.
    order : int
        Drawing order in figures that show several estimators (higher on top).
    term : callable, optional
        A :attr:`Form.MEAN` estimator's value of one observation per
        category, from the category's logarithms (:class:`Logs`): the
        estimator is (1/N) Σ_i term(X_i).
    limit : callable, optional
        A :attr:`Form.MEAN` estimator's exact mean E[term(X)] (nats) for a
        :class:`sim.distributions.Pair`, computed with full precision.
    coverage : bool
        Whether ``coverage95`` is reported for it: the share of replicates
        with |value − KL| ≤ 1.96σ/√n, σ the sd of log(p/q) (the llr's CLT
        interval; only for an estimator whose value is the llr).
    kl : bool
        A :attr:`Form.FITTED` estimator that is a KL (cross-entropy − H(p)).
    observed_penalty : float
        A :attr:`Form.PLUGIN` estimator's Miller–Madow weight w: its value
        is KL(f‖q) − w·(K̂ − 1)/N in nats, K̂ the number of categories
        observed among the N (0: the plain plug-in).
    smoothing : Smoothing or None
        A :attr:`Form.SMOOTHED` estimator's pseudo-counts, or a
        :attr:`Form.TWO_SAMPLE` estimator's (added to q's sample; its rules
        read M, q's sample size, for N).
    posterior : bool
        A :attr:`Form.SMOOTHED` estimator that is the posterior mean of
        KL(θ‖q) under Dirichlet(c + α), not KL of the smoothed frequencies.
    """

    name: str
    form: Form
    target: str | None
    label: str
    colour: int
    marker: str
    order: int = 0
    term: Callable[[Logs], np.ndarray] | None = None
    limit: Callable[[Pair], float] | None = None
    coverage: bool = False
    kl: bool = False
    observed_penalty: float = 0.0
    smoothing: Smoothing | None = None
    posterior: bool = False

    @property
    def probability(self) -> bool:
        """Whether values are probabilities (never converted to bits, target 0)."""
        return self.target is None

    @property
    def tilted(self) -> bool:
        """Whether it is drawn from paths of its own (the tilted law), not the plain ones."""
        return self.form is Form.TILTED

    @property
    def needs_llr(self) -> bool:
        """Whether computing it needs the llr of the same path."""
        return self.form is Form.WRONG

    @property
    def needs_q_sample(self) -> bool:
        """Whether it compares p's sample with a sample of q (a case's ``q_sample``), not with q itself."""
        return self.form is Form.TWO_SAMPLE

    @property
    def setting(self) -> Setting | None:
        """What it needs to estimate KL(p‖q) (:class:`Setting`); None if it does not estimate KL(p‖q)."""
        return _SETTINGS.get(self.form) if self.target == "kl_pq" else None

    def divisor(self, units: str) -> float:
        """What a value in nats is divided by to be in ``units``."""
        return 1.0 if self.probability else unit_size(units)

    def terms(self, pair: Pair) -> np.ndarray:
        """A :attr:`Form.MEAN` estimator's per-observation values on p's support (nats)."""
        if self.term is None:
            raise ValueError(f"{self.name} is not a mean of per-observation terms")
        return self.term(support_logs(pair))

    def bounds(self, pair: Pair) -> tuple[float, float]:
        """An a-priori range of its values (nats) whatever n (tilted: see :func:`sim.decision.tilted_bound`)."""
        if self.form is Form.MEAN:
            v = self.terms(pair)
            return v.min(), v.max()
        if self.form is Form.PLUGIN:  # Σ f log(f/q) ≤ Σ f log(1/q); K̂ ≤ N
            low = -self.observed_penalty  # (K̂ − 1)/N < 1
            return low, max(minus_log_q(support_logs(pair)).max(), 0.0)
        if self.form is Form.SMOOTHED:  # Σ f̃ log(f̃/q) ≤ Σ f̃ log(1/q); the posterior adds < ψ(α + 1) − log α
            return 0.0, float(np.max(-pair.q.log_probs)) + (
                self._posterior_bound(pair) if self.posterior else 0.0
            )
        if self.form in (Form.WRONG, Form.TILTED):
            return 0.0, 1.0
        raise ValueError(f"no a-priori bounds known for {self.name} whatever n: see bounds_at")

    def bounds_at(self, pair: Pair, ns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """A-priori ranges of its values (nats) at each sample size of ``ns``: (lows, highs).

        The jackknife's is [−(n − 1)·H, n·H], H the plug-in's largest value
        (each plug-in lies in [0, H]); a tilted replicate's upper bound is
        :func:`sim.decision.tilted_bound`; the others' do not depend on n
        (:meth:`bounds`).
        """
        n = np.asarray(ns, dtype=float)
        if self.form is Form.JACKKNIFE:
            top = max(minus_log_q(support_logs(pair)).max(), 0.0)
            return -(n - 1) * top, n * top
        if self.form is Form.TWO_SAMPLE:  # KL(f‖q̃) ≤ max log(f/q̃) ≤ log(1/min q̃) = log((M + Kα)/α)
            k = pair.q.k
            alphas = [self.smoothing.value(k, pair.q_sample_size(int(m))) for m in ns]
            top = [
                math.log1p(pair.q_sample_size(int(m)) / a + (k - 1)) for m, a in zip(ns, alphas, strict=True)
            ]
            return np.zeros(n.shape), np.array(top)
        low, high = self.bounds(pair)
        if self.tilted:
            from .decision import tilted_bound  # imported here: see _moments

            return np.full(n.shape, low), np.array([tilted_bound(pair, int(m)) for m in ns])
        return np.full(n.shape, low), np.full(n.shape, high)

    def _posterior_bound(self, pair: Pair) -> float:
        """What the posterior mean adds to KL(f̃‖q), at most: max over a ≥ α of ψ(a + 1) − log a, whatever n."""
        from .distributions import digamma_excess

        smallest = self.smoothing.value(pair.q.k, 1)  # the rules' α grow with n, or stay
        return float(digamma_excess(np.array([smallest]))[0])

    def summand(self, pair: Pair) -> Summand:
        """A :attr:`Form.MEAN` estimator's exact per-observation moments (nats; cached, the same at every n)."""
        return _summand(self, pair)

    def moments(self, pair: Pair, n: int) -> Moments:
        """Exact mean, sd and fourth central moment at sample size ``n`` (nats); nan where unknown."""
        return _moments(self, pair, n)


@functools.lru_cache(maxsize=1024)
def _summand(spec: Estimator, pair: Pair) -> Summand:
    """Cached per (estimator, pair): every n's moments and the check's law start from it."""
    from . import exact  # imported here: see _moments

    return exact.summand(spec.terms(pair), pair.p.probs[pair.support], spec.limit(pair))


@functools.lru_cache(maxsize=4096)
def _moments(spec: Estimator, pair: Pair, n: int) -> Moments:
    """Cached per (estimator, pair, n): a run's summary, streaming and check share them."""
    # imported here, not at the top: config validation asks this module for names,
    # and should not pay scipy.stats' import (~0.5 s) to reject a bad file
    from . import decision, exact

    if pair.parametric:  # a parametric family's pair knows its estimators' laws (sim.families.pair)
        return pair.moments(spec, n)
    if spec.form is Form.MEAN:
        return exact.mean_of(spec.summand(pair), n)
    if spec.form is Form.PLUGIN and spec.observed_penalty:
        return exact.corrected_plugin_moments(pair, n, spec.observed_penalty)
    if spec.form is Form.PLUGIN:
        return exact.plugin_moments(pair, n)
    if spec.form is Form.WRONG:
        return exact.p_wrong_moments(pair, n)
    if spec.form is Form.SMOOTHED:
        return exact.smoothed_moments(pair, n, spec.smoothing, spec.posterior)
    if spec.form is Form.JACKKNIFE:
        return exact.jackknife_moments(pair, n)
    if spec.form is Form.TWO_SAMPLE:
        return exact.two_sample_moments(pair, n, spec.smoothing)
    if spec.form is Form.TILTED:
        if pair.family != "coin" or not 0.0 < pair.p.heads < 1.0:
            return exact.Moments(math.nan, math.nan, math.nan)
        return exact.Moments(*decision.coin_tilted_moments(pair.p.heads, pair.q.heads, n))
    raise ValueError(f"{spec.name} has no moments here: see sim.fitting")


# The palette indices: 0 blue, 1 orange, 2 green, 4 purple (seaborn "colorblind").
LLR = Estimator(
    name="llr",
    form=Form.MEAN,
    target="kl_pq",
    term=log_ratio,
    limit=lambda pair: pair.kl_pq,
    coverage=True,
    label="llr (normalised log-likelihood ratio)",
    colour=0,
    marker="o",
    order=3,
)
CROSS_ENTROPY = Estimator(
    name="cross_entropy",
    form=Form.MEAN,
    target="cross_entropy_pq",
    term=minus_log_q,
    limit=lambda pair: pair.cross_entropy,
    label="cross-entropy",
    colour=1,
    marker="s",
    order=2,
)
ENTROPY = Estimator(
    name="entropy",
    form=Form.MEAN,
    target="entropy_p",
    term=minus_log_p,
    limit=lambda pair: pair.entropy_p,
    label="entropy",
    colour=2,
    marker="^",
    order=1,
)
K1 = Estimator(
    name="k1",
    form=Form.MEAN,
    target="kl_pq",
    term=log_ratio,
    limit=lambda pair: pair.kl_pq,
    label="k1 = llr",
    colour=7,
    marker="x",
    order=0,
)
K2 = Estimator(
    name="k2",
    form=Form.MEAN,
    target="kl_pq",
    term=half_square_log_ratio,
    limit=_mean_term(half_square_log_ratio),
    label="k2 = ½(log r)²",
    colour=3,
    marker="v",
    order=0,
)
K3 = Estimator(
    name="k3",
    form=Form.MEAN,
    target="kl_pq",
    term=k3_term,
    limit=_mean_term(k3_term),
    label="k3 = r − 1 − log r",
    colour=5,
    marker="P",
    order=0,
)
PLUGIN_KL = Estimator(
    name="plugin_kl", form=Form.PLUGIN, target="kl_pq", label="plug-in KL(p̂‖q)", colour=4, marker="D", order=0
)
PLUGIN_KL_MM = Estimator(
    name="plugin_kl_mm",
    form=Form.PLUGIN,
    target="kl_pq",
    observed_penalty=0.5,
    label="Miller–Madow plug-in",
    colour=6,
    marker="d",
    order=0,
)
PLUGIN_KL_JACKKNIFE = Estimator(
    name="plugin_kl_jackknife",
    form=Form.JACKKNIFE,
    target="kl_pq",
    label="jackknifed plug-in",
    colour=4,
    marker="X",
    order=0,
)
P_WRONG = Estimator(
    name="p_wrong", form=Form.WRONG, target=None, label="plain Monte Carlo", colour=0, marker="o"
)
P_WRONG_TILTED = Estimator(
    name="p_wrong_tilted",
    form=Form.TILTED,
    target=None,
    label="tilted (importance sampling)",
    colour=4,
    marker="D",
)
KL_FITTED = Estimator(
    name="kl_fitted", form=Form.FITTED, target="kl_floor", kl=True, label="KL(p‖q_θ̂)", colour=0, marker="o"
)
TRAIN_CROSS_ENTROPY = Estimator(
    name="train_cross_entropy",
    form=Form.FITTED,
    target="cross_entropy_floor",
    label="training cross-entropy",
    colour=1,
    marker="s",
)
TEST_CROSS_ENTROPY = Estimator(
    name="test_cross_entropy",
    form=Form.FITTED,
    target="cross_entropy_floor",
    label="test cross-entropy",
    colour=2,
    marker="^",
)

#: A convergence experiment's estimators by default, in table order.
CONVERGENCE = (LLR, CROSS_ENTROPY, ENTROPY, PLUGIN_KL)
#: Estimators a convergence experiment may ask for beyond the default ones.
OPTIONAL = (K1, K2, K3, PLUGIN_KL_MM, PLUGIN_KL_JACKKNIFE, P_WRONG, P_WRONG_TILTED)
#: The mean estimators whose exact mean defines their target's ``analytic.csv`` column.
DEFINING = (LLR, CROSS_ENTROPY, ENTROPY)
#: A fit experiment's estimators, in table order.
FIT = (KL_FITTED, TRAIN_CROSS_ENTROPY, TEST_CROSS_ENTROPY)
#: Every estimator.
ALL = (*CONVERGENCE, *OPTIONAL, *FIT)
#: The information estimators of convergence experiments, in drawing order (llr last, on top).
DRAWN = tuple(sorted((e for e in (*CONVERGENCE, *OPTIONAL) if not e.probability), key=lambda e: e.order))

_BY_NAME = {e.name: e for e in ALL}


def _add_alpha(family: str, label: str, colour: int, *, posterior: bool = False, form: Form = Form.SMOOTHED):
    """The builder of an add-α estimator family: KL of the smoothed frequencies, the posterior mean,
    or (``Form.TWO_SAMPLE``) KL(f‖q̃) against q's own sample smoothed, its α rules reading M."""

    def build(params: dict) -> Estimator:
        alpha = smoothing(params["alpha"])
        return Estimator(
            name=f"{family}[alpha={alpha.text}]",
            form=form,
            target="kl_pq",
            smoothing=alpha,
            posterior=posterior,
            label=f"{label}, α = {alpha.text}",
            colour=colour,
            marker=_SMOOTHING_MARKERS.get(alpha.text, "h"),
            order=0,
        )

    return build


#: Markers telling apart smoothed_kl with different α (the same colour).
_SMOOTHING_MARKERS = {"laplace": "^", "jeffreys": "v", "perks": "<", "minimax": ">"}

#: Estimators with parameters, by name: the parameters each requires, and how it is built.
#: In configs ``{smoothed_kl: {alpha: 0.5}}``; in tables ``smoothed_kl[alpha=0.5]``.
PARAMETERISED: dict[str, tuple[tuple[str, ...], Callable[[dict], Estimator]]] = {
    "smoothed_kl": (("alpha",), _add_alpha("smoothed_kl", "add-α plug-in", 9)),
    "bayes_kl": (("alpha",), _add_alpha("bayes_kl", "Bayes posterior mean", 8, posterior=True)),
    # colour 1 is the cross-entropy's, which the estimators figure never draws beside it
    "two_sample_kl": (
        ("alpha",),
        _add_alpha("two_sample_kl", "two samples KL(p̂‖q̃)", 1, form=Form.TWO_SAMPLE),
    ),
}


def parameterised(name: str, params: dict) -> Estimator:
    """The estimator ``name`` with parameters ``params`` (named ``name[key=value]`` in tables).

    Raises
    ------
    ValueError
        If ``name`` takes no parameters, a parameter is missing or unknown,
        or a value is not allowed (one sentence).
    """
    if name not in PARAMETERISED:
        raise ValueError(f"{name!r} takes no parameters")
    keys, build = PARAMETERISED[name]
    missing = [k for k in keys if k not in params]
    unknown = [k for k in params if k not in keys]
    if unknown:
        raise ValueError(f"{name} has no parameter {unknown[0]!r} (it takes {', '.join(keys)})")
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)}, e.g. {{{name}: {{{keys[0]}: 0.5}}}}")
    return build(params)


def names(estimators: Iterable[Estimator]) -> tuple[str, ...]:
    """The names of ``estimators``, in order."""
    return tuple(e.name for e in estimators)


def get(name: str) -> Estimator:
    """The estimator called ``name``.

    Raises
    ------
    ValueError
        If no estimator has that name.
    """
    if name in _BY_NAME:
        return _BY_NAME[name]
    return _labelled(name)


@functools.lru_cache(maxsize=256)
def _labelled(label: str) -> Estimator:
    """A parameterised estimator from its label ``name[key=value, …]``."""
    head, bracket, rest = label.partition("[")
    if not bracket or not rest.endswith("]") or head not in PARAMETERISED:
        raise ValueError(f"unknown estimator {label!r}")
    params = {}
    for item in rest[:-1].split(","):
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"unknown estimator {label!r}: parameters are written key=value")
        params[key.strip()] = value.strip()
    spec = parameterised(head, params)
    if spec.name != label:  # one label per estimator: e.g. alpha=1.0 is written alpha=1
        raise ValueError(f"unknown estimator {label!r}; did you mean {spec.name!r}?")
    return spec


def specs(estimator_names: Iterable[str]) -> tuple[Estimator, ...]:
    """The estimators called ``estimator_names``, in order."""
    return tuple(get(n) for n in estimator_names)


def divisors(estimator_names: Sequence[str], units: str) -> np.ndarray:
    """What each estimator's nats are divided by for ``units`` (1 for probabilities)."""
    return np.array([get(n).divisor(units) for n in estimator_names])
