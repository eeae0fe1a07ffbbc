"""Fitting a softmax classifier by minimising cross-entropy: the source's second half.

The data are labelled pairs (x, y): inputs x from a finite pool with
probabilities π(x), labels from the true p(y|x).  A model family gives
logits η(x) = A(x) θ through a design matrix A(x) (K × d) per input, and
q_θ(y|x) = softmax(η(x))_y.  The families:

``saturated``
    A free logit for every input and class (d = |X|(K − 1)): it can be any
    p(y|x); its fit is the empirical conditional frequencies.
``linear``
    η_y(x) = w_y · (1, φ(x)) with the inputs' features φ (d = (K − 1)(F + 1)).
``constant``
    No input term, η_y(x) = b_y (d = K − 1): misspecified whenever p
    depends on x; its best member is the marginal p̄(y) and its smallest
    KL is the mutual information I(X; Y).
``ordinal``
    A one-parameter exponential family over ordered classes, η_y = θ·y
    (d = 1), with no input term.

The last class's logit is the reference (fixed at 0) wherever a family has a
free logit per class, so θ is identified.

Objective and optimiser
-----------------------
The fit minimises the empirical cross-entropy −(1/N) Σ (c_xy + α) log q_θ(y|x)
over the counts c_xy of the N samples, with α ≥ 0 pseudo-counts per cell
(``smoothing``; 0 is maximum likelihood).  Since −(1/N) Σ c log q =
KL(p̂‖q_θ) + H(p̂) and H(p̂) does not depend on θ, this is minimising KL to
the empirical distribution: the source's argument, exactly.

The optimiser is Newton's method with a backtracking (Armijo) line search,
batched over replicates, from θ = 0 (the uniform model).  It stops when the
squared Newton decrement gᵀH⁻¹g of the mean objective falls below
``TOLERANCE`` = 1e-26 (or, if rounding stops all progress first, below
``ROUNDING_FLOOR`` = 1e-16).  The decrement bounds the parameters' distance
to the optimum, ‖δθ‖ ≲ √(decrement/λ_min); the population KL, which is not
stationary at the fit, moves by at most ‖∇KL‖·‖δθ‖ ≈ 1e-13 (1e-8 at the
rounding floor, which is reached only in ill-conditioned fits): far below
the statistical error (K − 1)/(2N) for the N ≤ 10⁷ that
:data:`sim.config.FIT_MAX_N` allows.  When the minimum is not attained (the
maximum-likelihood fit is at infinity, e.g. a class with p > 0 never seen and
α = 0) Newton does not converge within ``MAX_ITER`` steps; such a fit is
reported with KL = inf, honestly, rather than as a large finite number.
"""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from .distributions import xlog1px_minus_x
from .exact import _window, expect

FAMILIES = ("saturated", "linear", "constant", "ordinal")
TOLERANCE = 1e-26
ROUNDING_FLOOR = 1e-16
MAX_ITER = 200
_RIDGE = 1e-12


@dataclass(frozen=True, eq=False)
class Truth:
    """The data-generating process: π(x) over inputs and p(y|x) over K classes.

    Attributes
    ----------
    input_probs : numpy.ndarray
        π(x), length X, positive.
    table : numpy.ndarray
        p(y|x), shape (X, K), rows summing to 1.
    features : numpy.ndarray
        φ(x), shape (X, F) (F may be 0).
    linear : bool
        Whether p(y|x) was given as a softmax of a linear function of the
        features (``truth: {weights: …}``), so that the ``linear`` family
        contains it.
    """

    input_probs: np.ndarray
    table: np.ndarray
    features: np.ndarray
    linear: bool = False

    @property
    def inputs(self) -> int:
        return int(self.table.shape[0])

    @property
    def classes(self) -> int:
        return int(self.table.shape[1])

    @cached_property
    def joint(self) -> np.ndarray:
        """π(x) p(y|x), shape (X, K): the cell probabilities of one sample."""
        return self.input_probs[:, None] * self.table

    @cached_property
    def entropy(self) -> float:
        """H(p) = −Σ_x π(x) Σ_y p(y|x) log p(y|x), the conditional entropy (nats)."""
        j, t = self.joint, self.table
        m = j > 0
        return math.fsum(-(j[m] * np.log(t[m])))

    def kl(self, log_q: np.ndarray) -> np.ndarray:
        """KL(p‖q) = Σ_x π(x) KL(p(·|x)‖q(·|x)) for log q of shape (..., X, K).

        Evaluated as Σ π q h(p/q − 1), a sum of non-negative terms; ``inf``
        where q = 0 on a cell with p > 0.
        """
        q = np.exp(log_q)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(q > 0, (self.table - q) / q, np.inf)
            terms = np.where(q > 0, q * xlog1px_minus_x(np.minimum(np.maximum(r, -1.0), 1e300)), 0.0)
        terms = np.where((q <= 0) & (self.table > 0), np.inf, terms)
        return np.sum(self.input_probs[:, None] * terms, axis=(-2, -1))

    def cross_entropy(self, log_q: np.ndarray) -> np.ndarray:
        """H(p, q) = −Σ_x π(x) Σ_y p(y|x) log q(y|x) for log q of shape (..., X, K)."""
        with np.errstate(invalid="ignore"):
            cells = np.where(self.joint > 0, -self.joint * log_q, 0.0)
        return np.sum(cells, axis=(-2, -1))


def design(family: str, truth: Truth) -> np.ndarray:
    """The design tensor A of shape (X, K, d): logits η(x) = A[x] @ θ."""
    x, k = truth.inputs, truth.classes
    if family == "saturated":
        a = np.zeros((x, k, x * (k - 1)))
        for i in range(x):
            a[i, : k - 1, i * (k - 1) : (i + 1) * (k - 1)] = np.eye(k - 1)
        return a
    if family == "linear":
        phi = np.hstack([np.ones((x, 1)), truth.features])
        f = phi.shape[1]
        a = np.zeros((x, k, (k - 1) * f))
        for y in range(k - 1):
            a[:, y, y * f : (y + 1) * f] = phi
        return a
    if family == "constant":
        a = np.zeros((x, k, k - 1))
        a[:, : k - 1, :] = np.eye(k - 1)
        return a
    if family == "ordinal":
        return np.broadcast_to(np.arange(k, dtype=float)[None, :, None], (x, k, 1)).copy()
    raise ValueError(f"unknown model family {family!r}")


def log_softmax(eta: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, stable for large logits."""
    m = eta.max(axis=-1, keepdims=True)
    z = eta - m
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


@dataclass
class FitResult:
    """Fitted parameters of a batch of replicates.

    Attributes
    ----------
    theta : numpy.ndarray
        (R, d) parameters.
    log_q : numpy.ndarray
        (R, X, K) fitted log q_θ(y|x).
    converged : numpy.ndarray
        (R,) whether the minimum was reached to ``TOLERANCE``; where not,
        the infimum is not attained (the fit is at infinity).
    iterations : numpy.ndarray
        (R,) Newton steps taken.
    path : list of dict, optional
        With ``record=True``, one entry per step of replicate 0: θ and the
        objective's gradient.
    """

    theta: np.ndarray
    log_q: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    path: list[dict] | None = None


def _objective(theta, a, weights, total):
    log_q = log_softmax(np.einsum("xkd,rd->rxk", a, theta))
    with np.errstate(invalid="ignore"):
        value = -np.sum(np.where(weights > 0, weights * log_q, 0.0), axis=(1, 2)) / total
    return value, log_q


def fit(counts: np.ndarray, a: np.ndarray, *, smoothing: float = 0.0, record: bool = False) -> FitResult:
    """Minimise the smoothed empirical cross-entropy for each replicate.

    Parameters
    ----------
    counts : numpy.ndarray
        (R, X, K) counts c_xy of each replicate's sample.
    a : numpy.ndarray
        (X, K, d) design tensor (see :func:`design`).
    smoothing : float
        Pseudo-count α added to every cell.
    record : bool
        Record replicate 0's path (θ and gradient at every step).
    """
    weights = counts.astype(float) + smoothing
    total = weights.sum(axis=(1, 2))
    finite_minimum = (weights > 0).all(axis=(1, 2))
    per_input = weights.sum(axis=2)
    r, d = counts.shape[0], a.shape[2]
    theta = np.zeros((r, d))
    converged = np.zeros(r, dtype=bool)
    iterations = np.zeros(r, dtype=np.int64)
    path: list[dict] | None = [] if record else None
    value, log_q = _objective(theta, a, weights, total)
    for iteration in range(MAX_ITER + 1):
        grad, step = _newton_direction(a, log_q, weights, per_input, total)
        if path is not None:
            path.append({"theta": theta[0].copy(), "grad": grad[0].copy(), "log_q": log_q[0].copy()})
        decrement = np.einsum("rd,rd->r", grad, step)
        active = ~converged & (decrement > TOLERANCE)
        converged |= decrement <= TOLERANCE
        if not active.any() or iteration >= MAX_ITER:
            break
        trial = _line_search(theta, step, decrement, active, value, a, weights, total)
        converged |= _stuck_at_rounding_floor(trial, active, value, decrement, finite_minimum)
        moved = active & ~trial.stalled
        theta[moved] = trial.theta[moved]
        value[moved], log_q[moved] = trial.value[moved], trial.log_q[moved]
        iterations[moved] += 1
    return FitResult(theta, log_q, converged, iterations, path)


def _newton_direction(
    a: np.ndarray, log_q: np.ndarray, weights: np.ndarray, per_input: np.ndarray, total: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The mean objective's gradient and Newton step H⁻¹g (Hessian ridged) for each replicate."""
    q = np.exp(log_q)
    resid = per_input[:, :, None] * q - weights
    grad = np.einsum("xkd,rxk->rd", a, resid) / total[:, None]
    cov = per_input[:, :, None, None] * (
        np.einsum("rxk,kl->rxkl", q, np.eye(q.shape[2])) - q[..., :, None] * q[..., None, :]
    )
    hess = np.einsum("xkd,rxkl,xle->rde", a, cov, a) / total[:, None, None]
    hess += _RIDGE * (1.0 + np.trace(hess, axis1=1, axis2=2))[:, None, None] * np.eye(a.shape[2])
    return grad, np.linalg.solve(hess, grad[..., None])[..., 0]


@dataclass(frozen=True)
class _Trial:
    """Where a line search ended: θ, the objective and log q there, and whether it stalled."""

    theta: np.ndarray
    value: np.ndarray
    log_q: np.ndarray
    stalled: np.ndarray


def _line_search(
    theta: np.ndarray,
    step: np.ndarray,
    decrement: np.ndarray,
    active: np.ndarray,
    value: np.ndarray,
    a: np.ndarray,
    weights: np.ndarray,
    total: np.ndarray,
) -> _Trial:
    """Backtracking (Armijo): halve the step of the active replicates until the objective falls enough.

    ``stalled`` marks the active replicates where 60 halvings did not make it fall enough.
    """
    t = np.ones(theta.shape[0])
    trial_theta = theta - t[:, None] * step
    trial, trial_log_q = _objective(trial_theta, a, weights, total)
    for _halving in range(60):
        bad = active & ~(trial <= value - 0.25 * t * decrement + 1e-15 * np.abs(value))
        if not bad.any():
            break
        t[bad] /= 2
        trial_theta[bad] = theta[bad] - t[bad, None] * step[bad]
        trial[bad], trial_log_q[bad] = _objective(trial_theta[bad], a, weights[bad], total[bad])
    stalled = active & ~(trial <= value - 0.25 * t * decrement + 1e-15 * np.abs(value))
    return _Trial(trial_theta, trial, trial_log_q, stalled)


def _stuck_at_rounding_floor(
    trial: _Trial, active: np.ndarray, value: np.ndarray, decrement: np.ndarray, finite_minimum: np.ndarray
) -> np.ndarray:
    """The replicates whose line search ends the fit: no progress, with the decrement down to rounding.

    At the rounding floor the tolerance of :func:`_line_search` accepts steps
    that change nothing: a step that does not strictly lower the objective
    ends the fit there as well, once the decrement is down to rounding.
    This is safe only where every cell has positive weight (smoothing, or every
    cell seen): the objective is then coercive and its minimum finite, while a
    fit running off to infinity (an unseen class, no smoothing) also stalls.
    """
    no_progress = active & ~(trial.value < value) & finite_minimum
    return (trial.stalled | no_progress) & (decrement <= ROUNDING_FLOOR)


def population_fit(truth: Truth, family: str) -> FitResult:
    """The family's best member: minimise H(p, q_θ) (counts = π(x) p(y|x))."""
    return fit(truth.joint[None] * 1.0, design(family, truth))


def floor(truth: Truth, family: str) -> float:
    """The smallest KL(p‖q_θ) the family can reach (nats); 0 when well specified.

    The saturated family contains p (floor 0 exactly), and so does the
    linear family when p was given by softmax weights (rather than a table
    that might or might not be linear): there the floor is 0 exactly, not the
    optimiser's residue of rounding (~1e-32, which differs between CPUs).
    The constant family's best member is the marginal p̄, so its floor is
    I(X; Y) in closed form; the others are minimised numerically to
    ``TOLERANCE``.
    """
    if family == "saturated" or (family == "linear" and truth.linear):
        return 0.0
    if family == "constant":
        marginal = truth.joint.sum(axis=0)
        with np.errstate(divide="ignore"):  # a class no input can have: log 0, weighted by p = 0
            log_marginal = np.log(marginal)
        return float(truth.kl(np.broadcast_to(log_marginal, truth.table.shape)))
    return float(truth.kl(population_fit(truth, family).log_q[0]))


def parameters(family: str, truth: Truth) -> int:
    """Number of free parameters d of a family."""
    return int(design(family, truth).shape[2])


# --------------------------------------------------------------------------
# Exact expectations (saturated and constant families, α > 0)


def _expect_log(n: int, p: float, shift: float, *, times_c: bool = False) -> float:
    """E[log(C + shift)] (or E[C log(C + shift)]) for C ~ Binomial(n, p)."""
    if p <= 0.0:
        return 0.0 if times_c else math.log(shift)

    def g(c, _k):
        return c * np.log(c + shift) if times_c else np.log(c + shift)

    return float(expect(n, np.array([min(p, 1.0)]), g)[0])


class FitValues(NamedTuple):
    """One number per fit estimator (nats), in :data:`sim.registry.FIT` order; nan where unknown."""

    kl_fitted: float
    train_cross_entropy: float
    test_cross_entropy: float

    @classmethod
    def unknown(cls) -> FitValues:
        """Every value nan: not known exactly (never approximated)."""
        return cls(math.nan, math.nan, math.nan)


def exact_means(truth: Truth, family: str, smoothing: float, n: int) -> FitValues:
    """Exact E[kl_fitted], E[train_cross_entropy], E[test_cross_entropy] at n (nats).

    Known in closed form, as one-dimensional Binomial sums, for the
    saturated and constant families with smoothing α > 0, whose fits are
    the smoothed frequencies q̂(y|x) = (c_xy + α)/(N_x + Kα) and
    q̂(y) = (c_y + α)/(N + Kα); every count is Binomial marginally.  Empty
    (nan) otherwise: never approximated.
    """
    if smoothing <= 0 or family not in ("saturated", "constant"):
        return FitValues.unknown()
    k = truth.classes
    if family == "saturated":
        a = smoothing
        groups = [(truth.joint[x], truth.input_probs[x]) for x in range(truth.inputs)]
    else:  # α is added to every (x, y) cell: X·α per class once x is ignored
        a = smoothing * truth.inputs
        groups = [(truth.joint.sum(axis=0), 1.0)]
    # test CE = −Σ_cells P(cell) E[log q̂(cell)]; train CE = −(1/n) Σ E[c log q̂]
    test = 0.0
    train = 0.0
    for cells, mass in groups:
        if mass >= 1.0:
            log_norm, c_log_norm = math.log(n + k * a), n * math.log(n + k * a)
        else:
            log_norm = _expect_log(n, mass, k * a)
            c_log_norm = _expect_log(n, mass, k * a, times_c=True)
        for prob in cells:
            test -= prob * (_expect_log(n, prob, a) - log_norm) if prob > 0 else 0.0
            train -= _expect_log(n, prob, a, times_c=True) / n if prob > 0 else 0.0
        train += c_log_norm / n
    return FitValues(test - truth.entropy, train, test)


# --------------------------------------------------------------------------
# Exact standard deviations (saturated and constant families, α > 0)
#
# Each estimator is T = Σ_u σ_u·φ_u(A_u) + const over terms u, each a function
# of one count A_u ~ Binomial(N, P_u) (a cell, a row sum N_x, or a class's
# column sum): φ = P log(A + β) for the test cross-entropy and
# (1/N) A log(A + β) for the training one.  Each term is split at its mean
# m = N P into its tangent and a remainder of second order,
#
#     log(A + β)   = tangent − (1 + t) h(−t/(1 + t)),
#     A log(A + β) = tangent + (m + β) h(t) + β (1 + t) h(−t/(1 + t)),
#
# with t = (A − m)/(m + β) and h(r) = (1 + r) log(1 + r) − r.  The tangents
# add up to a linear form Λ = Σ_i W_i c_i in the cell counts, whose variance
# and covariances are closed forms of the multinomial; what is left are
# remainders of the size of the fluctuation itself, so nothing cancels (the
# terms of the test cross-entropy are each of order N^(−1/2) while it
# fluctuates by order 1/N).  Then
#
#     Var T = Var Λ + 2 Σ_u Cov(Λ, R_u) + Σ_u Var R_u + 2 Σ_{u<v} Cov(R_u, R_v),
#
# where Cov(Λ, R_u) is a multiple of Cov(A_u, R_u(A_u)) (E[c_i | A_u] is
# linear in A_u), and each Cov(R_u, R_v) is a sum over the pair's joint
# trinomial law: of (A_u, A_v) when the two sets of cells are disjoint, of
# (c_xy, N_x − c_xy) when a cell lies in the row of the other term.
#
# A trinomial pmf is a product of three Poisson pmfs and a constant,
# P(a, b) = e^κ(N) π(a; N p_A) π(b; N p_B) π(N − a − b; N p_C), each taken in
# Loader's saddle-point form (:func:`log_poisson`): accurate to ~1e-15 where
# gammaln-based log-pmfs lose 1e-16·N log N (1e-10 at N = 10⁵).  Lattice
# strides are powers of two, so a + b runs over one lattice and the third
# factor is one vector read through a strided view.  The cost is a few
# hundred points per count, and their product per pair of counts, whatever
# N is.


#: Strided lattice sums of :func:`exact_sds` evaluate at least this many points per sd.
SD_POINTS_PER_SD = 5
#: Lattice points (over all pairs of counts) beyond which :func:`exact_sds` gives nan
#: (at the budget one call takes about a quarter of a second).
SD_BUDGET = 10_000_000
#: The fixed cost of one pair of counts, in lattice points.
_PAIR_COST = 2_000
_STIRLING_TABLE_TOP = 15
_PI = "3.14159265358979323846264338327950288419716939937510"
# Stirling series se(x) = Σ_k B_2k / (2k (2k − 1) x^(2k − 1)), k = 1..7: for
# x > 15 its first omitted term is below 1e-19.
_STIRLING_SERIES = np.array([1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156])


def _stirling_table(top: int) -> np.ndarray:
    """se(k) = log k! − (k + ½) log k + k − ½ log 2π for k = 1..top (index 0: nan), in 50-digit decimals."""
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        half_log_two_pi = (2 * decimal.Decimal(_PI)).ln() / 2
        values = [math.nan]
        log_factorial = decimal.Decimal(0)
        for k in range(1, top + 1):
            d = decimal.Decimal(k)
            log_factorial += d.ln()
            values.append(float(log_factorial - (d + decimal.Decimal("0.5")) * d.ln() + d - half_log_two_pi))
    return np.array(values)


_STIRLING = _stirling_table(_STIRLING_TABLE_TOP)


def stirling_error(x: np.ndarray) -> np.ndarray:
    """se(x) = log x! − (x + ½) log x + x − ½ log 2π for integer-valued x ≥ 1.

    The error of Stirling's formula, log x! minus its leading terms: a table
    computed in 50-digit decimals up to x = 15, the asymptotic series beyond.
    Unlike ``gammaln(x + 1)`` (about x log x, so an absolute error of order
    1e-16·x log x) it is accurate to the last bits of its own small size.
    """
    x = np.asarray(x, dtype=float)
    small = x <= _STIRLING_TABLE_TOP
    out = _STIRLING[np.where(small, x, 0).astype(np.int64)]
    big = ~small
    if big.any():
        inv = 1.0 / x[big]
        inv2 = inv * inv
        series = np.zeros_like(inv)
        for c in _STIRLING_SERIES[::-1]:
            series = series * inv2 + c
        out[big] = series * inv
    return out


def log_poisson(x: np.ndarray, m) -> np.ndarray:
    """log(e^(−m) m^x / x!) for integer-valued x ≥ 0 and m > 0, accurate to ~1e-15 absolute.

    Evaluated in Loader's saddle-point form −m h((x − m)/m) − ½ log 2πx − se(x)
    (−m at x = 0), whose terms are of the size of the result rather than of
    x log x.  A multinomial's log-pmf is log_poisson summed over its cells
    plus :func:`log_poisson_norm`, exactly when the cells' means m add up
    to N, and to second order in their excess otherwise (so that rounded
    means still give a law normalised to ~1e-32).

    Parameters
    ----------
    x : numpy.ndarray
        Counts.
    m : float or numpy.ndarray
        Means, broadcast against ``x``.
    """
    x, m = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(m, dtype=float))
    out = -m.copy()
    pos = x > 0
    xp, mp = x[pos], m[pos]
    out[pos] = -mp * xlog1px_minus_x((xp - mp) / mp) - 0.5 * np.log(2 * math.pi * xp) - stirling_error(xp)
    return out


def log_poisson_norm(n: int) -> float:
    """log(N! e^N / N^N) = ½ log 2πN + se(N): completes Σ log_poisson to a multinomial log-pmf."""
    return 0.5 * math.log(2 * math.pi * n) + float(stirling_error(np.array([float(n)]))[0])


def _lattice_stride(sd: float) -> int:
    """The largest power of two s with sd/s ≥ SD_POINTS_PER_SD (1 for narrow laws)."""
    if sd < 2 * SD_POINTS_PER_SD:
        return 1
    return 1 << math.floor(math.log2(sd / SD_POINTS_PER_SD))


def _lattice(n: int, p: float, stride: int) -> np.ndarray:
    """Every stride-th count of Binomial(n, p)'s window (that of :func:`sim.exact.expect`)."""
    _, lo, hi = _window(n, np.array([p]))
    lo, hi = float(lo[0]), float(hi[0])
    return lo + stride * np.arange(math.floor((hi - lo) / stride) + 1, dtype=float)


@dataclass(frozen=True, eq=False)
class _Term:
    """σ·P log(A + β) (test) and σ·(1/N) A log(A + β) (train) for one count A ~ Binomial(N, P).

    ``cells`` (X × K, boolean) marks the cells whose counts add up to A;
    ``rest`` is 1 − P as the sum of the other cells' probabilities.
    """

    cells: np.ndarray
    prob: float
    rest: float
    sign: float
    shift: float

    def tangent(self, n: int) -> np.ndarray:
        """Slopes at A = N P of the (test, train) terms, less σ/N (which add up to a constant)."""
        u0 = n * self.prob + self.shift
        return self.sign * np.array([-self.shift / (n * u0), (math.log(u0 / n) - self.shift / u0) / n])


def _terms(truth: Truth, family: str, smoothing: float) -> list[_Term]:
    """The terms of the test and train cross-entropies of a smoothed-frequency fit."""
    joint = truth.joint
    terms = []

    def add(mask, sign, shift):
        if joint[mask].sum() > 0:
            terms.append(_Term(mask, math.fsum(joint[mask]), math.fsum(joint[~mask]), sign, shift))

    for x in range(truth.inputs) if family == "saturated" else ():
        for y in range(truth.classes):  # −Σ_y J log(c + α) and −(1/N) Σ_y c log(c + α)
            add(_mask(joint.shape, x, y), -1.0, smoothing)
        add(_mask(joint.shape, x, None), 1.0, truth.classes * smoothing)  # the row's normaliser
    for y in range(truth.classes) if family == "constant" else ():
        add(_mask(joint.shape, None, y), -1.0, truth.inputs * smoothing)
    return terms


def _mask(shape, x, y) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[slice(None) if x is None else x, slice(None) if y is None else y] = True
    return mask


def _remainders(a, n, prob, sign, shift) -> np.ndarray:
    """The (test, train) terms at counts a less their tangents at N P, shape (len(a), 2)."""
    m = n * prob
    u0 = m + shift
    ab = a + shift
    back = xlog1px_minus_x((m - a) / ab) * (ab / u0)  # (1 + t) h(−t/(1 + t))
    test = -sign * prob * back
    train = sign / n * (u0 * xlog1px_minus_x((a - m) / u0) + shift * back)
    return np.stack([test, train], axis=-1)


@dataclass
class _Pair:
    """Cov(R_u, R_v) over the law of (A, B): A = u's count, B = v's or (``nested``) v's row less A.

    ``kind`` is ``"same"`` when B is 0 (v's row holds no other cell),
    ``"complement"`` when B = N − A, else ``"joint"``: a sum over B's
    lattice for every point of A's.
    """

    u: int
    v: int
    nested: bool
    p_b: float
    p_c: float
    kind: str = "joint"
    stride: int = 1
    counts_b: np.ndarray | None = None
    t: np.ndarray | None = None  # A + B on its lattice (or, flattened, on the grid)
    steps: tuple[int, int] = (0, 1)  # a[i] + b[j] = t[i·steps[0] + j·steps[1]]
    cost: int = _PAIR_COST

    def grid(self, values: np.ndarray, size_a: int) -> np.ndarray:
        """values[t(i, j)] for every (i, j), a read-only view (no copy): shape (size_a, len(b), ...)."""
        ra, rb = self.steps
        if ra == 0:
            ra = self.counts_b.size
        s = values.strides[0]
        shape = (size_a, self.counts_b.size, *values.shape[1:])
        return np.lib.stride_tricks.as_strided(
            values, shape, (ra * s, rb * s, *values.strides[1:]), writeable=False
        )


def _plan(pair: _Pair, n: int, a: np.ndarray, stride_a: int) -> None:
    """Choose B's lattice and the points of A + B; set the pair's cost."""
    if pair.p_b <= 0 or pair.p_c <= 0:
        pair.kind = "same" if pair.p_b <= 0 else "complement"
        pair.cost += a.size
        return
    p = pair.p_b / (pair.p_b + pair.p_c)  # B | A = a ~ Binomial(N − a, p)
    pair.stride = _lattice_stride(math.sqrt(max(n - a[-1], 0.0) * p * (1 - p)))
    b = pair.counts_b = _lattice(n, pair.p_b, pair.stride)
    step = min(stride_a, pair.stride)
    ra, rb = stride_a // step, pair.stride // step
    length = (a.size - 1) * ra + (b.size - 1) * rb + 1
    if length <= a.size * b.size:  # A + B on one lattice: the grid is a strided view of it
        pair.t = a[0] + b[0] + step * np.arange(length, dtype=float)
        pair.steps = (ra, rb)
    else:
        pair.t = (a[:, None] + b[None, :]).ravel()
    pair.cost += a.size * b.size


@dataclass
class _Marginals:
    """Every random term's count on its own lattice, concatenated, with its exact moments.

    ``owner`` maps lattice points to terms, ``starts`` terms to their first
    point.  Per point: the Binomial pmf times the stride (``weights``), the
    Poisson factor of the count alone times the stride (``own``, for the
    pair sums) and the (test, train) remainders less their means
    (``centred``).  Per term: ``mean``, ``var`` and ``cov_count`` = Cov(A, R(A)).
    """

    counts: np.ndarray
    owner: np.ndarray
    starts: np.ndarray
    weights: np.ndarray
    own: np.ndarray
    centred: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    cov_count: np.ndarray

    @classmethod
    def of(cls, units: list[_Term], lattices: list[np.ndarray], strides: list[int], n: int, norm: float):
        prob, rest, sign, shift = (
            np.array([getattr(t, f) for t in units]) for f in ("prob", "rest", "sign", "shift")
        )
        sizes = [x.size for x in lattices]
        owner = np.repeat(np.arange(len(units)), sizes)
        a = np.concatenate(lattices) if units else np.zeros(0)
        stride = np.array(strides, dtype=float)[owner]
        own = log_poisson(a, n * prob[owner])
        with np.errstate(under="ignore"):
            weights = np.exp(norm + own + log_poisson(n - a, n * rest[owner])) * stride
            own = np.exp(own) * stride
        r = _remainders(a, n, prob[owner], sign[owner], shift[owner])

        def per_term(values):
            return np.stack([np.bincount(owner, v, minlength=len(units)) for v in values.T], axis=-1)

        mean = per_term(weights[:, None] * r)
        centred = r - mean[owner]
        return cls(
            a,
            owner,
            np.cumsum([0, *sizes]),
            weights,
            own,
            centred,
            mean,
            per_term(weights[:, None] * centred**2),
            per_term((weights * (a - n * prob[owner]))[:, None] * centred),
        )

    def of_term(self, u: int) -> slice:
        return slice(self.starts[u], self.starts[u + 1])


def _pairs(units: list[_Term], joint: np.ndarray) -> list[_Pair]:
    """Every pair of random terms, with the probabilities of B and of the cells outside A and B."""
    pairs = []
    for u in range(len(units)):
        for v in range(u + 1, len(units)):
            cu, cv = units[u].cells, units[v].cells
            if (cu & cv).any():  # a cell and its row: A = the cell, B = the rest of the row
                cell, row = (u, v) if cu.sum() < cv.sum() else (v, u)
                inside = units[row].cells & ~units[cell].cells
                p_c = math.fsum(joint[~units[row].cells])
                pairs.append(_Pair(cell, row, True, math.fsum(joint[inside]), p_c))
            else:
                pairs.append(_Pair(u, v, False, units[v].prob, math.fsum(joint[~(cu | cv)])))
    return pairs


def exact_sds(truth: Truth, family: str, smoothing: float, n: int) -> FitValues:
    """Exact standard deviations of the fit experiment's estimators at sample size n (nats).

    Known for the saturated and constant families with smoothing α > 0 (as
    :func:`exact_means`): every estimator is a sum of functions of single
    Binomial counts, so its variance is a sum over pairs of counts of sums
    over their joint trinomial law (see the notes above
    :data:`SD_POINTS_PER_SD` in the source), taken on strided lattices
    (:func:`_plan_lattices`).  kl_fitted = test cross-entropy − H(p)
    shares its sd.  At n = 1 the training loss is
    −log((1 + α)/(1 + Kα)) (−log((1 + Xα)/(1 + KXα)) for the constant
    family) whatever the sample: its sd is 0 exactly.

    Parameters
    ----------
    truth : Truth
        The data-generating process.
    family : str
        The model family; only ``saturated`` and ``constant`` are known.
    smoothing : float
        The pseudo-count α; only α > 0 is known.
    n : int
        The sample size N ≥ 1.

    Returns
    -------
    FitValues
        The sd of ``kl_fitted``, ``train_cross_entropy``, ``test_cross_entropy``
        (nats); nan for other families or α = 0, or when the sums would
        take more than ``SD_BUDGET`` lattice points (many cells): never
        approximated.
    """
    if smoothing <= 0 or family not in ("saturated", "constant"):
        return FitValues.unknown()
    parts = _variance_parts(truth, _terms(truth, family, smoothing), n)
    if parts is None:
        return FitValues.unknown()
    test, train = (math.sqrt(max(math.fsum(v), 0.0)) for v in parts)
    if n == 1:
        train = 0.0
    return FitValues(test, train, test)


def _variance_parts(truth: Truth, terms: list[_Term], n: int) -> list[list[float]] | None:
    """The summands of the (test, train) variances, or None beyond ``SD_BUDGET``.

    The linear part Λ = Σ_i W_i c_i (the terms' tangents at their means), the
    remainders' variances and their covariances with Λ, and twice the
    covariances of every pair of remainders.
    """
    joint = truth.joint
    # The linear part Λ = Σ_i W_i c_i: Var Λ = N Σ_i J_i (W_i − W̄)², W̄ = Σ_i J_i W_i.
    slopes = np.zeros((*joint.shape, 2))
    for t in terms:
        slopes[t.cells] += t.tangent(n)
    slopes -= np.sum(joint[..., None] * slopes, axis=(0, 1))
    parts = [[n * math.fsum((joint * slopes[..., e] ** 2).ravel())] for e in (0, 1)]
    units = [t for t in terms if t.rest > 0]  # the others are constant
    plan = _plan_lattices(units, joint, n)
    if plan is None:
        return None
    norm = log_poisson_norm(n)
    marginals = _Marginals.of(units, plan.lattices, plan.strides, n, norm)
    for i, t in enumerate(units):
        # Cov(Λ, R) = Cov(A, R) · Σ_{i∈A} J_i (W_i − W̄) / (P (1 − P)): E[c_i | A] is linear in A
        share = np.sum(joint[t.cells][:, None] * slopes[t.cells], axis=0)
        cross = 2 * share * marginals.cov_count[i] / (t.prob * t.rest)
        for e in (0, 1):
            parts[e] += [float(cross[e]), float(marginals.var[i, e])]
    for chunk in _chunks(plan.pairs):
        for c in _pair_covariances(chunk, n, norm, units, marginals):
            for e in (0, 1):
                parts[e].append(2 * float(c[e]))
    return parts


@dataclass(frozen=True)
class _LatticePlan:
    """Each random term's lattice stride and points, and every pair of terms with its plan."""

    strides: list[int]
    lattices: list[np.ndarray]
    pairs: list[_Pair]


def _plan_lattices(units: list[_Term], joint: np.ndarray, n: int) -> _LatticePlan | None:
    """The lattices of the terms' counts and of their pairs, or None beyond ``SD_BUDGET``.

    Sums over a count with sd ≥ 2·``SD_POINTS_PER_SD`` are taken on every
    s-th point (s a power of two, sd/s between 5 and 10) and multiplied by s.
    For C ~ Binomial(n, p) the sum of the pmf over a residue class mod s is
    1/s plus terms bounded by |E e^(2πiC/s)| ≤ exp(−8 sd²/s²) ≤ e^(−200)
    (the discrete Poisson summation formula), and likewise, times powers of
    the sd, for the smooth factors summed here.  Over a pair (A, B) the
    outer stride follows A's sd and the inner one the sd of B given A (its
    least over A's window), so each inner sum is a Binomial sum of that
    kind, and the outer summand, P(A = a) times functions of a smooth on
    that scale, is one too.  Windows are :func:`sim.exact.expect`'s (12 sd
    + 15 either side of the mean).
    """
    if len(units) ** 2 * _PAIR_COST > 2 * SD_BUDGET:
        return None
    strides = [_lattice_stride(math.sqrt(n * t.prob * t.rest)) for t in units]
    lattices = [_lattice(n, t.prob, s) for t, s in zip(units, strides, strict=True)]
    pairs = _pairs(units, joint)
    for p in pairs:
        _plan(p, n, lattices[p.u], strides[p.u])
    if sum(p.cost for p in pairs) > SD_BUDGET:
        return None
    return _LatticePlan(strides, lattices, pairs)


#: Points evaluated at once by :func:`_pair_covariances` (bounds memory).
_CHUNK_POINTS = 1 << 20


def _chunks(pairs: list[_Pair]):
    """Consecutive groups of pairs whose lattices hold at most about ``_CHUNK_POINTS`` points."""
    start, size = 0, 0
    for i, p in enumerate(pairs):
        extra = (0 if p.t is None else p.t.size + p.counts_b.size) + p.cost - _PAIR_COST
        if size and size + extra > _CHUNK_POINTS:
            yield pairs[start:i]
            start, size = i, 0
        size += extra
    if start < len(pairs):
        yield pairs[start:]


def _pair_covariances(pairs: list[_Pair], n: int, norm: float, units, marginals: _Marginals) -> list:
    """Cov(R_u, R_v) (test, train) for every pair: each function evaluated once for all of them."""
    b_pieces, b_means, g_pieces, g_units, c_pieces, c_means = [], [], [], [], [], []
    for p in pairs:
        a = marginals.counts[marginals.of_term(p.u)]
        if p.kind == "same":
            g_pieces.append(a)
        elif p.kind == "complement":
            g_pieces.append(n - a)
        else:
            b_pieces.append(p.counts_b)
            b_means.append(np.full(p.counts_b.size, n * p.p_b))
            g_pieces.append(np.minimum(p.t, n) if p.nested else p.counts_b)
            c_pieces.append(np.maximum(n - p.t, -1.0))  # −1: A + B > N, no mass
            c_means.append(np.full(p.t.size, n * p.p_c))
        g_units.append(np.full(g_pieces[-1].size, p.v))
    g_x, g_u = np.concatenate(g_pieces), np.concatenate(g_units)
    prob, sign, shift = (np.array([getattr(t, f) for t in units]) for f in ("prob", "sign", "shift"))
    g_all = _remainders(g_x, n, prob[g_u], sign[g_u], shift[g_u]) - marginals.mean[g_u]
    g_all = np.split(g_all, np.cumsum([x.size for x in g_pieces])[:-1])
    if b_pieces:
        c_x = np.concatenate(c_pieces)
        valid = c_x >= 0
        log_b = log_poisson(np.concatenate(b_pieces), np.concatenate(b_means))
        log_c = log_poisson(np.where(valid, c_x, 0.0), np.concatenate(c_means))
        with np.errstate(under="ignore"):
            wb_all = np.split(np.exp(log_b), np.cumsum([x.size for x in b_pieces])[:-1])
            rest_all = np.split(
                np.where(valid, np.exp(norm + log_c), 0.0), np.cumsum([x.size for x in c_pieces])[:-1]
            )
    out = []
    k = 0
    for p, g in zip(pairs, g_all, strict=True):
        u = marginals.of_term(p.u)
        f = marginals.centred[u]
        if p.kind != "joint":
            out.append(marginals.weights[u] @ (f * g))
            continue
        # P(A = a, B = b) = e^norm · Poisson(a) · Poisson(b) · Poisson(N − a − b), each × stride
        wb, rest = wb_all[k] * p.stride, rest_all[k]
        k += 1
        if p.nested:
            inner = np.einsum("ijk,j->ik", p.grid(rest[:, None] * g, f.shape[0]), wb)
        else:
            inner = p.grid(rest, f.shape[0]) @ (wb[:, None] * g)
        out.append(marginals.own[u] @ (f * inner))
    return out
