"""Every column of every row of ``summary.csv``, checked by the strongest test available.

For one row (case, n, estimator) with the law of one replicate (see
:mod:`sim.check.laws`) and, when the folder keeps them, that row's R
replicate values:

``units``, ``replicates``, ``target``, ``exact_mean``, ``exact_sd``, ``coverage95_exact``
    Recomputed from the config; numbers within :data:`RELATIVE` of their
    own size (of the terms they are sums of, for a difference such as the
    fitted KL), never an absolute floor.
``mean``, ``sd``, ``rmse``, ``q05``, ``q50``, ``q95``, ``coverage95``, ``infinite_fraction``
    Recomputed from the replicates where they exist, within the rounding of
    the sums that make them (a few ulps per replicate of the values' size).
``mcse``, ``bias``, ``rmse``, ``z``, ``coverage95_mcse``, quantile order, ``quantile_error``
    Consistent with the row's other columns, within a few ulps.
``mean`` (and ``sd``, ``coverage95``) against theory
    Statistical tests ending in a p-value (see :mod:`sim.check.inference`):
    an exact Binomial test where the mean is a count in disguise (``p_wrong``;
    a coin's llr, cross-entropy and entropy, whose mean over R replicates is
    a function of the Binomial(R·n, p) total of heads; coverage95 of a coin),
    a z-test with the exact sd where a normal approximation of the mean of R
    replicates is adequate, and otherwise Bernstein's bound, valid whatever
    the law (rare events included).  Where neither the sd nor a bound on it
    is known: a z-test with the sd the replicates estimate, labelled as
    approximate, when at least :data:`MIN_ESTIMATED_R` were kept and their
    skewness and kurtosis look normal; else Bernstein's bound with Popoviciu's
    sd ≤ (high − low)/2.  Means and quantiles must also lie
    within the values the estimator can take.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import registry
from ..streaming import TINY
from . import inference
from .laws import Law
from .report import (
    BOUND_TEST,
    CHEBYSHEV_TEST,
    CONSISTENCY,
    ESTIMATED_TEST,
    EXACT_TEST,
    FROM_REPLICATES,
    NORMAL_TEST,
    RANGE,
    RECOMPUTED,
    UNTESTABLE,
    record,
)

EPS = float(np.finfo(float).eps)
#: Relative tolerance of values recomputed from the config (about 4,500 ulps):
#: what evaluating the same formulas on another CPU, or in another order, can move.
RELATIVE = 1e-12
#: Relative rounding allowed per replicate in a statistic recomputed from replicates.
PER_REPLICATE = 4 * EPS
#: Added to every tolerance: 64 steps of the smallest double, the grid subnormal
#: values (a tilted probability of 1e-316) are rounded to whatever their size.
SUBNORMAL = 64 * math.ulp(0.0)

TABLE = "summary.csv"
#: Fewest replicates for a mean to be z-tested with the sd they estimate (no exact sd or bound), and
#: only when they look normal: for a nearly normal law the estimate's relative error, about 1/√(2R),
#: moves a 4σ threshold by about 0.4σ (a law with a rare large mode can do worse: approximate).
MIN_ESTIMATED_R = 50


def _isnan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (not isinstance(v, str) and pd.isna(v))


def _compare(
    key: dict, column: str, test: str, observed, expected, tolerance: float, reason: str = ""
) -> dict:
    """An exact comparison: equal within ``tolerance``; two empties are equal."""
    if _isnan(observed) or _isnan(expected):
        ok = _isnan(observed) and _isnan(expected)
        why = (
            ""
            if ok
            else (
                "empty where a value is expected" if _isnan(observed) else "a value where empty is expected"
            )
        )
    elif isinstance(expected, str) or isinstance(observed, str):
        ok, why = str(observed) == str(expected), ""
    elif math.isinf(expected) or math.isinf(observed):
        ok, why = observed == expected, ""
    else:
        tolerance += SUBNORMAL
        ok, why = abs(observed - expected) <= tolerance, ""
    return record(
        TABLE,
        key,
        column,
        test,
        observed,
        expected,
        tolerance=tolerance,
        passed=ok,
        reason=why or ("" if ok else reason),
    )


def _statistical(key, column, test, observed, expected, p: float, sign: float, reason: str = "") -> dict:
    return record(
        TABLE,
        key,
        column,
        test,
        observed,
        expected,
        p=p,
        z=inference.equivalent_z(p, sign),
        reason=reason,
    )


def range_slack(law: Law) -> float:
    """Rounding allowed beyond a law's bounds: 64 ulps of the larger finite one."""
    low, high = law.low, law.high
    return 64 * EPS * max(abs(low) if math.isfinite(low) else 0.0, abs(high) if math.isfinite(high) else 0.0)


class _Moments(NamedTuple):
    """Mean, sd (ddof = 1) and rmse about a target of R replicate values, as the summary computes them."""

    mean: float
    sd: float
    rmse: float


def _moments(x: np.ndarray, target: float, *, blank: bool) -> _Moments:
    """The replicates' :class:`_Moments`; all empty (NaN) when ``blank``.

    sd and rmse are computed from the values scaled by a power of two (exactly), so
    that tiny values' squares do not underflow, as the summary computes them.
    """
    top = float(np.max(np.abs(x[np.isfinite(x)]), initial=0.0))
    k = math.frexp(top)[1] if 0.0 < top < TINY else 0
    xs, ts = np.ldexp(x, -k), math.ldexp(target, -k)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(np.mean(x)) if not blank else math.nan
        sd = math.ldexp(float(np.std(xs, ddof=1)), k) if not blank else math.nan
        rmse = math.ldexp(float(np.sqrt(np.mean((xs - ts) ** 2))), k) if not blank else math.nan
    return _Moments(mean, sd, rmse)


class Row(dict):
    """A summary row as a dict with attribute access (much faster than a pandas Series)."""

    __getattr__ = dict.__getitem__

    @property
    def index(self):
        return self.keys()


class RowCheck:
    """The checks of one summary row: call :meth:`run` to get its test records."""

    def __init__(
        self,
        row: pd.Series,
        law: Law,
        *,
        target: float,
        replicates: int,
        units: str,
        values: np.ndarray | None,
        coverage: Callable[[np.ndarray], tuple[int, int]] | None = None,
        coverage_exact: float = math.nan,
        hit_probability: float = math.nan,
        fitted: bool = False,
        finite_expected: bool = False,
    ):
        self.row = row
        self.law = law
        self.target = target
        self.r = replicates
        self.units = units
        self.values = values
        self.coverage = coverage
        self.coverage_exact = coverage_exact
        self.hit_probability = hit_probability
        self.fitted = fitted
        self.finite_expected = finite_expected
        self.key = {"case": row.case, "n": int(row.n), "estimator": str(row.estimator)}
        self.out: list[dict] = []

    # ------------------------------------------------------------------
    def run(self) -> list[dict]:
        row, law, key = self.row, self.law, self.key
        self.out.append(_compare(key, "units", RECOMPUTED, row.units, self.units, 0.0))
        self.out.append(_compare(key, "replicates", RECOMPUTED, int(row.replicates), self.r, 0.0))
        self.out.append(
            _compare(key, "target", RECOMPUTED, row.target, self.target, RELATIVE * abs(self.target))
        )
        mean_scale = law.scale if self.fitted else abs(law.mean)
        self.out.append(
            _compare(key, "exact_mean", RECOMPUTED, row.exact_mean, law.mean, RELATIVE * mean_scale)
        )
        self.out.append(_compare(key, "exact_sd", RECOMPUTED, row.exact_sd, law.sd, RELATIVE * abs(law.sd)))
        self._from_replicates()
        self._consistency()
        self._mean_against_theory()
        self._sd_against_theory()
        self._coverage()
        return self.out

    # ------------------------------------------------------------------
    def _from_replicates(self) -> None:
        """Every statistic the replicates determine, recomputed from them."""
        x = self.values
        if x is None:
            return
        reason = "not what the replicates give"
        self._moments_from_replicates(x, reason)
        self._quantiles_from_replicates(x, reason)
        if "infinite_fraction" in self.row.index:
            frac = float(np.mean(~np.isfinite(x)))
            self.out.append(
                _compare(
                    self.key,
                    "infinite_fraction",
                    FROM_REPLICATES,
                    self.row.infinite_fraction,
                    frac,
                    0.0,
                    reason,
                )
            )
        if self.coverage is not None and not _isnan(self.row.get("coverage95", math.nan)):
            self._coverage_from_replicates(x, reason)

    def _moments_from_replicates(self, x: np.ndarray, reason: str) -> None:
        """``mean``, ``sd`` and ``rmse``, within the rounding of the sums that make them."""
        row, key = self.row, self.key
        finite = np.isfinite(x).all()
        size = float(np.mean(np.abs(x[np.isfinite(x)]))) if np.isfinite(x).any() else 0.0
        spread_tol = (x.size + 4) * PER_REPLICATE
        no_hits = self.law.blank_if_all_zero and bool(np.all(x == 0.0))
        m = _moments(x, self.target, blank=no_hits)
        self.out.append(
            _compare(key, "mean", FROM_REPLICATES, row["mean"], m.mean, spread_tol * size, reason)
        )
        # the mean's own rounding (up to spread_tol·size) enters every residual: the sd of
        # a column of near-equal values is that rounding, whichever order summed it
        sd_tol = spread_tol * ((0.0 if _isnan(m.sd) else m.sd) + size) + 8 * EPS * float(
            np.max(np.abs(x), initial=0.0)
        )
        self.out.append(_compare(key, "sd", FROM_REPLICATES, row.sd, m.sd, sd_tol if finite else 0.0, reason))
        rmse_tol = spread_tol * (0.0 if _isnan(m.rmse) else m.rmse) + 8 * EPS * abs(self.target)
        self.out.append(_compare(key, "rmse", FROM_REPLICATES, row.rmse, m.rmse, rmse_tol, reason))

    def _quantiles_from_replicates(self, x: np.ndarray, reason: str) -> None:
        """``q05``, ``q50``, ``q95`` (nearest values where some are infinite)."""
        if np.isfinite(x).all():
            qs = np.quantile(x, [0.05, 0.5, 0.95])
        else:
            qs = np.quantile(x, [0.05, 0.5, 0.95], method="nearest")
        q_tol = 8 * EPS * float(np.max(np.abs(x[np.isfinite(x)]), initial=0.0))
        for name, q in zip(("q05", "q50", "q95"), qs, strict=True):
            self.out.append(
                _compare(self.key, name, FROM_REPLICATES, self.row[name], float(q), q_tol, reason)
            )

    def _coverage_from_replicates(self, x: np.ndarray, reason: str) -> None:
        """``coverage95``: the count of covering replicates, or within its range for boundary ties."""
        r, row = x.size, self.row
        low, high = self.coverage(x)
        count = row.coverage95 * r
        ok = low - 1e-6 <= count <= high + 1e-6
        self.out.append(
            record(
                TABLE,
                self.key,
                "coverage95",
                FROM_REPLICATES,
                row.coverage95,
                low / r if low == high else f"{low / r:.6g}..{high / r:.6g}",
                tolerance=(high - low) / r,
                passed=ok,
                reason="" if ok else reason,
            )
        )

    # ------------------------------------------------------------------
    def _consistency(self) -> None:
        """Every column that follows from the row's other columns, one relation each."""
        self._mcse_is_sd_over_root_r()
        self._bias_is_mean_minus_target()
        self._rmse_from_bias_and_sd()
        self._quantiles_ordered()
        self._ranges()
        self._z_from_exact()
        if "coverage95_mcse" in self.row.index:
            self._coverage_mcse()
        if "quantile_error" in self.row.index:
            self._quantile_error_bound()
        if "infinite_fraction" in self.row.index:
            self._infinite_fraction_possible()

    def _mcse_is_sd_over_root_r(self) -> None:
        """``mcse`` = sd/√R."""
        row = self.row
        mcse = row.sd / math.sqrt(self.r) if not _isnan(row.sd) else math.nan
        self.out.append(
            _compare(
                self.key,
                "mcse",
                CONSISTENCY,
                row.mcse,
                mcse,
                4 * EPS * abs(mcse) if not _isnan(mcse) else 0.0,
                "≠ sd/√R",
            )
        )

    def _bias_is_mean_minus_target(self) -> None:
        """``bias`` = mean − target."""
        row, mean = self.row, self.row["mean"]
        bias = mean - row.target if not _isnan(mean) else math.nan
        self.out.append(
            _compare(
                self.key,
                "bias",
                CONSISTENCY,
                row.bias,
                bias,
                4 * EPS * (abs(mean) + abs(row.target)) if not _isnan(mean) else 0.0,
                "≠ mean − target",
            )
        )

    def _rmse_from_bias_and_sd(self) -> None:
        """``rmse``² = bias² + sd²·(R − 1)/R, where all three are given and rmse is finite."""
        row, r, sd = self.row, self.r, self.row.sd
        if any(_isnan(v) for v in (row.rmse, row.bias, sd)) or not math.isfinite(row.rmse):
            return
        # in units of 2^k near the largest, so that tiny values' squares do not underflow
        k = math.frexp(max(abs(row.rmse), abs(row.bias), sd, abs(row.target)))[1]
        rm, bi, sdk, tg = (math.ldexp(v, -k) for v in (row.rmse, row.bias, sd, row.target))
        lhs = rm**2
        rhs = bi**2 + sdk**2 * (r - 1) / r
        tol2 = (r + 8) * PER_REPLICATE * 4 * (lhs + bi**2 + sdk**2) + 8 * EPS * tg**2
        expected = math.ldexp(math.sqrt(rhs), k)
        # compared as rmse (|a − b| = |a² − b²|/(a + b)), so the tolerance is in its units
        tol = (math.ldexp(tol2 / (rm + math.sqrt(rhs)), k) if rm + rhs > 0 else 0.0) + SUBNORMAL
        self.out.append(
            record(
                TABLE,
                self.key,
                "rmse",
                CONSISTENCY,
                row.rmse,
                expected,
                tolerance=tol,
                passed=abs(row.rmse - expected) <= tol,
                reason="rmse² ≠ bias² + sd²·(R − 1)/R",
            )
        )

    def _quantiles_ordered(self) -> None:
        """q05 ≤ q50 ≤ q95, within rounding, where all three are given."""
        row = self.row
        qs = [row.q05, row.q50, row.q95]
        if any(_isnan(q) for q in qs):
            return
        slack = (
            8 * EPS * max(abs(q) for q in qs if math.isfinite(q))
            if any(math.isfinite(q) for q in qs)
            else 0.0
        )
        ordered = qs[0] <= qs[1] + slack and qs[1] <= qs[2] + slack
        self.out.append(
            record(
                TABLE,
                self.key,
                "q05 ≤ q50 ≤ q95",
                CONSISTENCY,
                f"{qs[0]:.6g}, {qs[1]:.6g}, {qs[2]:.6g}",
                "ordered",
                passed=ordered,
                reason="" if ordered else "quantiles out of order",
            )
        )

    def _z_from_exact(self) -> None:
        """``z`` = (mean − exact_mean)/(exact_sd/√R); empty where that is not defined."""
        row, r, mean = self.row, self.r, self.row["mean"]
        z = math.nan
        em, es = row.exact_mean, row.exact_sd
        se = es / math.sqrt(r) if not _isnan(es) else math.nan
        if not any(_isnan(v) for v in (mean, em, es)) and se > 0:
            z = (mean - em) / se
            tol = 8 * EPS * ((abs(mean) + abs(em)) / se + abs(z))
        else:
            tol = 0.0
        self.out.append(
            _compare(self.key, "z", CONSISTENCY, row.z, z, tol, "≠ (mean − exact_mean)/(exact_sd/√R)")
        )

    def _coverage_mcse(self) -> None:
        """``coverage95_mcse`` = √(c(1 − c)/R)."""
        row = self.row
        c = row.coverage95
        cm = math.sqrt(c * (1 - c) / self.r) if not _isnan(c) else math.nan
        self.out.append(
            _compare(
                self.key,
                "coverage95_mcse",
                CONSISTENCY,
                row.coverage95_mcse,
                cm,
                4 * EPS * (cm if not _isnan(cm) else 0.0),
                "≠ √(c(1 − c)/R)",
            )
        )

    def _quantile_error_bound(self) -> None:
        """``quantile_error`` (streamed runs): a finite bound ≥ 0."""
        qe = self.row.quantile_error
        ok = not _isnan(qe) and math.isfinite(qe) and qe >= 0
        self.out.append(
            record(
                TABLE,
                self.key,
                "quantile_error",
                CONSISTENCY,
                qe,
                "≥ 0",
                passed=ok,
                reason="" if ok else "must be a finite bound ≥ 0",
            )
        )

    def _infinite_fraction_possible(self) -> None:
        """``infinite_fraction``: a multiple of 1/R in [0, 1]; 0 where the fits are smoothed."""
        f, r = self.row.infinite_fraction, self.r
        ok = not _isnan(f) and 0.0 <= f <= 1.0 and abs(f * r - round(f * r)) <= 1e-9 * r
        if ok and self.finite_expected:
            ok = f == 0.0
        self.out.append(
            record(
                TABLE,
                self.key,
                "infinite_fraction",
                CONSISTENCY,
                f,
                "0 (smoothed fits are finite)" if self.finite_expected else "a multiple of 1/R in [0, 1]",
                passed=ok,
                reason="" if ok else "impossible value",
            )
        )

    def _ranges(self) -> None:
        row, law, key = self.row, self.law, self.key
        low, high = law.low, law.high
        slack = range_slack(law)
        for column in ("mean", "q05", "q50", "q95"):
            v = row[column]
            if _isnan(v):
                continue
            ok = low - slack <= v <= high + slack
            self.out.append(
                record(
                    TABLE,
                    key,
                    column,
                    RANGE,
                    v,
                    f"[{low:.6g}, {high:.6g}]",
                    tolerance=slack,
                    passed=ok,
                    reason="" if ok else "outside the values the estimator can take",
                )
            )

    # ------------------------------------------------------------------
    def _allowance(self) -> float:
        """Rounding a mean of R values and its exact reference can carry (values' scale)."""
        law = self.law
        scale = max(law.scale, abs(law.mean)) if not _isnan(law.mean) else law.scale
        mean = abs(law.mean) if not _isnan(law.mean) else 0.0
        return RELATIVE * scale + (self.r + 4) * PER_REPLICATE * mean + 2 * law.reference_rounding

    def _mean_against_theory(self) -> None:
        """The mean against the exact one, by the strongest test the law allows."""
        law, mean = self.law, self.row["mean"]
        if _isnan(law.mean):
            return
        if _isnan(mean):
            self._empty_mean()
            return
        dev = mean - law.mean
        if law.sd == 0.0:
            self.out.append(
                _compare(
                    self.key,
                    "mean",
                    RECOMPUTED,
                    mean,
                    law.mean,
                    self._allowance(),
                    "an estimator with no spread must equal its exact value",
                )
            )
            return
        if law.indicator:
            self._indicator_mean(mean, dev)
            return
        if law.linear is not None and 0.0 < law.heads < 1.0 and self._binomial_mean(mean, dev):
            return
        self._approximate_mean(mean, dev)

    def _indicator_mean(self, mean: float, dev: float) -> None:
        """An indicator's mean is a count over R: an exact Binomial test."""
        law, r = self.law, self.r
        count = mean * r
        nearest = round(count)
        if abs(count - nearest) > 1e-9 * r:
            self.out.append(
                record(
                    TABLE,
                    self.key,
                    "mean",
                    CONSISTENCY,
                    mean,
                    f"a multiple of 1/{r}",
                    passed=False,
                    reason="an indicator's mean must be a count over R",
                )
            )
            return
        p = inference.binomial(int(nearest), r, law.mean)
        self.out.append(_statistical(self.key, "mean", EXACT_TEST, mean, law.mean, p, dev))

    def _approximate_mean(self, mean: float, dev: float) -> None:
        """A z-test with the exact sd where the normal law is adequate, else Bernstein's bound."""
        law, key, r = self.law, self.key, self.r
        allow = self._allowance()
        eff = math.copysign(max(0.0, abs(dev) - allow), dev)
        if not _isnan(law.sd) and inference.normal_is_adequate(law.skew, law.kurtosis, r):
            p = inference.normal(eff, law.sd / math.sqrt(r))
            self.out.append(_statistical(key, "mean", NORMAL_TEST, mean, law.mean, p, dev))
            return
        bound = law.sd if not _isnan(law.sd) else law.sd_bound
        if not _isnan(bound) and math.isfinite(law.low) and math.isfinite(law.high):
            p = inference.bernstein(eff, r, bound, law.high - law.mean, law.mean - law.low)
            self.out.append(_statistical(key, "mean", BOUND_TEST, mean, law.mean, p, dev))
            return
        if not _isnan(law.sd):  # unbounded values, a skewed law: Chebyshev's inequality with the exact sd
            p = inference.chebyshev(eff, law.sd / math.sqrt(r))
            self.out.append(_statistical(key, "mean", CHEBYSHEV_TEST, mean, law.mean, p, dev))
            return
        sd = self.row["sd"]
        if self._looks_normal() and not _isnan(sd) and sd > 0.0:
            p = inference.normal(eff, sd / math.sqrt(r))
            self.out.append(_statistical(key, "mean", ESTIMATED_TEST, mean, law.mean, p, dev))
            return
        if math.isfinite(law.low) and math.isfinite(law.high):  # Popoviciu: sd ≤ (high − low)/2
            spread = (law.high - law.low) / 2.0
            p = inference.bernstein(eff, r, spread, law.high - law.mean, law.mean - law.low)
            self.out.append(_statistical(key, "mean", BOUND_TEST, mean, law.mean, p, dev))
            return
        self.out.append(
            record(
                TABLE,
                key,
                "mean",
                UNTESTABLE,
                mean,
                law.mean,
                reason="the exact sd is unknown and no bound on it is known: a mean of R replicates cannot be tested",
            )
        )

    def _looks_normal(self) -> bool:
        """Whether the replicates (kept, at least :data:`MIN_ESTIMATED_R`) look normal enough for
        their own sd to z-test their mean: their sample skewness and kurtosis pass the bounds the
        exact ones would (:func:`sim.check.inference.normal_is_adequate`).  A law with a rare, large
        mode that no replicate drew still passes: the test is labelled approximate."""
        x = self.values
        if x is None or self.r < MIN_ESTIMATED_R:
            return False
        x = x[np.isfinite(x)]
        centred = x - x.mean()
        var = float(np.mean(centred**2))
        if x.size < MIN_ESTIMATED_R or var <= 0.0:
            return False
        skew = float(np.mean(centred**3)) / var**1.5
        kurtosis = float(np.mean(centred**4)) / var**2 - 3.0
        return inference.normal_is_adequate(skew, kurtosis, self.r)

    def _binomial_mean(self, mean: float, dev: float) -> bool:
        """A coin's llr, cross-entropy or entropy: the mean is the Binomial total of heads."""
        law, key, r, n = self.law, self.key, self.r, int(self.row.n)
        v_t, v_h = law.linear
        step = v_h - v_t
        if step == 0.0:
            return False
        trials = r * n
        heads = trials * (mean - v_t) / step
        # rounding of a mean of R values, as a random walk of R roundings (8 sd of it)
        walk = (8 * math.sqrt(r) + 8) * EPS
        rounding = trials * (walk * max(abs(v_t), abs(v_h)) + 4 * EPS * abs(mean)) / abs(step)
        if not (rounding <= 0.05 and trials < 2**53):
            return False
        nearest = round(heads)
        if abs(heads - nearest) > max(5 * rounding, 1e-9):
            self.out.append(
                record(
                    TABLE,
                    key,
                    "mean",
                    CONSISTENCY,
                    mean,
                    "(H·v_H + (R·n − H)·v_T)/(R·n) for an integer H",
                    tolerance=rounding * abs(step) / trials,
                    passed=False,
                    reason=f"not a possible mean of R = {r} coin paths (H = {heads:.6g} heads)",
                )
            )
            return True
        h = int(min(max(nearest, 0), trials))
        p = inference.binomial(h, trials, law.heads)
        self.out.append(_statistical(key, "mean", EXACT_TEST, mean, law.mean, p, dev))
        return True

    def _empty_mean(self) -> None:
        """An empty mean: only a tilted (p_wrong_tilted) row whose replicates never saw the event."""
        key, r = self.key, self.r
        if not registry.get(self.row.estimator).tilted:
            self.out.append(
                record(
                    TABLE,
                    key,
                    "mean",
                    CONSISTENCY,
                    math.nan,
                    self.law.mean,
                    passed=False,
                    reason="empty mean",
                )
            )
            return
        pi = self.hit_probability
        if _isnan(pi):
            self.out.append(
                record(
                    TABLE,
                    key,
                    "mean",
                    UNTESTABLE,
                    math.nan,
                    self.law.mean,
                    reason=f"no replicate of {r} saw the event (no exact chance of that to test)",
                )
            )
            return
        p = math.exp(r * math.log1p(-pi)) if pi < 1 else 0.0  # P(no tilted replicate sees the event)
        self.out.append(
            _statistical(
                key,
                "mean",
                EXACT_TEST,
                math.nan,
                self.law.mean,
                p,
                -1.0,
                reason="" if p > 0 else "the event cannot be missed",
            )
        )

    # ------------------------------------------------------------------
    def _sd_against_theory(self) -> None:
        """The sd against the exact one (or its bound), by the strongest test the law allows."""
        law, sd, mean = self.law, self.row.sd, self.row["mean"]
        if _isnan(sd) or self.r < 2:
            return
        if law.two_values is not None and law.sd != 0.0 and not _isnan(mean):
            self._two_valued_sd(sd, mean)
            return
        if law.sd == 0.0:
            tol = 8 * EPS * max(law.scale, abs(law.mean) if not _isnan(law.mean) else 0.0) * math.sqrt(self.r)
            self.out.append(
                _compare(self.key, "sd", RECOMPUTED, sd, 0.0, tol, "an estimator with no spread has sd 0")
            )
            return
        value_range = law.high - law.low
        if not _isnan(law.sd):
            if self._sd_against_exact(sd, value_range):
                return
        elif not _isnan(law.sd_bound) and math.isfinite(value_range):
            self._sd_against_bound(sd, value_range)
            return
        self.out.append(
            record(
                TABLE, self.key, "sd", UNTESTABLE, sd, law.sd, reason="no exact sd (or bound) to test against"
            )
        )

    def _two_valued_sd(self, sd: float, mean: float) -> None:
        """An estimator taking two values a < b: its sd is fixed by its mean."""
        r = self.r
        a, b = self.law.two_values
        variance = max(r / (r - 1) * (mean - a) * (b - mean), 0.0)
        allowance = (
            (r + 8) * PER_REPLICATE * ((b - a) * max(abs(a), abs(b)) + variance)
            + RELATIVE * (b - a) ** 2
            + (16 * EPS * max(abs(a), abs(b))) ** 2  # equal values: the sd of their roundings
        )
        ok = abs(sd * sd - variance) <= allowance
        self.out.append(
            record(
                TABLE,
                self.key,
                "sd",
                CONSISTENCY,
                sd,
                math.sqrt(variance),
                tolerance=allowance,
                passed=ok,
                reason="" if ok else "a two-valued estimator's sd is fixed by its mean",
            )
        )

    def _sd_against_exact(self, sd: float, value_range: float) -> bool:
        """A z-test on the sample variance where it is nearly normal, else Bernstein's bound.

        Returns False when neither applies (no fourth moment and unbounded values).
        """
        law, key, r = self.law, self.key, self.r
        fourth = law.sd**4
        beta2 = law.mu4 / fourth if fourth > 0.0 and not _isnan(law.mu4) else math.nan
        if not _isnan(beta2) and inference.variance_is_normal(law.skew, law.kurtosis, r):
            var_s2 = law.mu4 / r - fourth * (r - 3) / (r * (r - 1))
            se = math.sqrt(max(var_s2, 0.0)) / (2 * law.sd)
            dev = sd - law.sd
            allow = RELATIVE * law.sd + (r + 8) * PER_REPLICATE * sd
            eff = math.copysign(max(0.0, abs(dev) - allow), dev)
            self.out.append(_statistical(key, "sd", NORMAL_TEST, sd, law.sd, inference.normal(eff, se), dev))
            return True
        if math.isfinite(value_range):
            p = inference.bernstein_variance(sd, law.sd, beta2, value_range, r)
            self.out.append(_statistical(key, "sd", BOUND_TEST, sd, law.sd, p, sd - law.sd))
            return True
        if not _isnan(beta2):  # unbounded values: Chebyshev's inequality on s², whose variance μ4 gives
            var_s2 = law.mu4 / r - fourth * (r - 3) / (r * (r - 1))
            p = inference.chebyshev(sd * sd - fourth**0.5, math.sqrt(max(var_s2, 0.0)))
            self.out.append(_statistical(key, "sd", CHEBYSHEV_TEST, sd, law.sd, p, sd - law.sd))
            return True
        return False

    def _sd_against_bound(self, sd: float, value_range: float) -> None:
        """Only an upper bound on the sd: an sd above it is the one thing that can be refuted."""
        bound = self.law.sd_bound
        p = inference.bernstein_variance(sd, bound, math.nan, value_range, self.r) if sd > bound else 1.0
        self.out.append(_statistical(self.key, "sd", BOUND_TEST, sd, f"≤ {bound:.6g}", p, sd - bound))

    # ------------------------------------------------------------------
    def _coverage(self) -> None:
        """``coverage95_exact`` recomputed and ``coverage95`` against it (llr rows only)."""
        row = self.row
        if "coverage95" not in row.index:
            return
        reports_coverage = registry.get(row.estimator).coverage
        expected_exact = self.coverage_exact if reports_coverage else math.nan
        self.out.append(
            _compare(
                self.key,
                "coverage95_exact",
                RECOMPUTED,
                row.coverage95_exact,
                expected_exact,
                RELATIVE * abs(expected_exact) if not _isnan(expected_exact) else 0.0,
            )
        )
        c = row.coverage95
        if not reports_coverage:
            self.out.append(
                _compare(self.key, "coverage95", CONSISTENCY, c, math.nan, 0.0, "only llr rows have coverage")
            )
            return
        self._coverage_against_theory(c)

    def _coverage_against_theory(self, c: float) -> None:
        """An llr row's coverage rate: a count over R, tested exactly where its chance is known."""
        key, r = self.key, self.r
        if _isnan(c):
            self.out.append(
                record(TABLE, key, "coverage95", CONSISTENCY, c, "a rate", passed=False, reason="empty")
            )
            return
        count = c * r
        nearest = round(count)
        if abs(count - nearest) > 1e-9 * r or not 0 <= nearest <= r:
            self.out.append(
                record(
                    TABLE,
                    key,
                    "coverage95",
                    CONSISTENCY,
                    c,
                    f"a multiple of 1/{r}",
                    passed=False,
                    reason="a rate must be a count over R",
                )
            )
            return
        if _isnan(self.coverage_exact):
            self.out.append(
                record(
                    TABLE,
                    key,
                    "coverage95",
                    UNTESTABLE,
                    c,
                    math.nan,
                    reason="no exact coverage for this case (known for coins only)",
                )
            )
            return
        p = inference.binomial(int(nearest), r, self.coverage_exact)
        self.out.append(
            _statistical(key, "coverage95", EXACT_TEST, c, self.coverage_exact, p, c - self.coverage_exact)
        )
