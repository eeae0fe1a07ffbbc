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

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .distributions import xlog1px_minus_x
from .exact import expect

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
    for _ in range(MAX_ITER + 1):
        q = np.exp(log_q)
        resid = per_input[:, :, None] * q - weights
        grad = np.einsum("xkd,rxk->rd", a, resid) / total[:, None]
        if path is not None:
            path.append({"theta": theta[0].copy(), "grad": grad[0].copy(), "log_q": log_q[0].copy()})
        cov = per_input[:, :, None, None] * (
            np.einsum("rxk,kl->rxkl", q, np.eye(q.shape[2])) - q[..., :, None] * q[..., None, :]
        )
        hess = np.einsum("xkd,rxkl,xle->rde", a, cov, a) / total[:, None, None]
        hess += _RIDGE * (1.0 + np.trace(hess, axis1=1, axis2=2))[:, None, None] * np.eye(d)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        decrement = np.einsum("rd,rd->r", grad, step)
        active = ~converged & (decrement > TOLERANCE)
        converged |= decrement <= TOLERANCE
        if not active.any() or _ >= MAX_ITER:
            break
        t = np.ones(r)
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
        # At the rounding floor the tolerance above accepts steps that change
        # nothing: a step that does not strictly lower the objective ends the fit
        # there as well, once the decrement is down to rounding.
        # This is safe only where every cell has positive weight (smoothing, or every
        # cell seen): the objective is then coercive and its minimum finite, while a
        # fit running off to infinity (an unseen class, no smoothing) also stalls.
        no_progress = active & ~(trial < value) & finite_minimum
        converged |= (stalled | no_progress) & (decrement <= ROUNDING_FLOOR)
        moved = active & ~stalled
        theta[moved] = trial_theta[moved]
        value[moved], log_q[moved] = trial[moved], trial_log_q[moved]
        iterations[moved] += 1
    return FitResult(theta, log_q, converged, iterations, path)


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
        return float(truth.kl(np.broadcast_to(np.log(marginal), truth.table.shape)))
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


def exact_means(truth: Truth, family: str, smoothing: float, n: int) -> dict[str, float]:
    """Exact E[kl_fitted], E[train_cross_entropy], E[test_cross_entropy] at n (nats).

    Known in closed form, as one-dimensional Binomial sums, for the
    saturated and constant families with smoothing α > 0, whose fits are
    the smoothed frequencies q̂(y|x) = (c_xy + α)/(N_x + Kα) and
    q̂(y) = (c_y + α)/(N + Kα); every count is Binomial marginally.  Empty
    (nan) otherwise: never approximated.
    """
    nan = {"kl_fitted": math.nan, "train_cross_entropy": math.nan, "test_cross_entropy": math.nan}
    if smoothing <= 0 or family not in ("saturated", "constant"):
        return nan
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
    return {"kl_fitted": test - truth.entropy, "train_cross_entropy": train, "test_cross_entropy": test}
