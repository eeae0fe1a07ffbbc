"""Checking a results folder against exact theory.

:func:`check_summary` tests every row of a summary table against exact values
recomputed from the experiment (not read from the table's own ``exact_*``
columns, which are themselves checked):

``mean``
    z = (mean − exact mean)/(sd/√R), with the exact sd where it is known and
    the replicates' own sd otherwise (the plug-in KL of a categorical case
    whose exact variance is too costly: see :func:`sim.exact.plugin_variance`).
``sd``
    z = (sd − exact sd)/se(sd), where Var(s²) = μ4/R − σ⁴(R − 3)/(R(R − 1))
    uses the exact fourth central moment and se(sd) = √Var(s²)/(2σ) (for the
    plug-in KL of a categorical case, whose μ4 is not known exactly, a
    rigorous upper bound on μ4: a conservative test).  An
    estimator that takes only two values (``p_wrong``; any estimator of a coin
    at n = 1) has a sample sd that is a function of its sample mean,
    √(R/(R − 1)·(mean − a)(b − mean)): that is checked exactly instead, since
    the mean's test already covers it and the normal approximation of s²
    fails for such laws near p = 1/2.
``coverage95``
    z = (c − c_exact)/√(c_exact(1 − c_exact)/R), for coins.

All z-tests of one folder share one Bonferroni correction: with m tests and
family-wise level α, a test fails when |z| > Φ⁻¹(1 − α/(2m)); no standard
error is taken below the values' rounding (relative 1e-10).  A quantity
whose exact spread is 0 (p = q, σ = 0, a constant estimator) is not a
statistical test: it passes when the value equals the exact one up to
rounding (relative 1e-10) and fails otherwise.  Where the exact spread is
unknown and every replicate gave the same value, the mean is tested only if
it equals the exact one (a deterministic estimator); otherwise the sample
cannot tell, and the row is left untested.  z-tests rely on the normal
approximation of a mean of R replicates, which is rough for few replicates
of a very skewed estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import exact
from . import results as res
from .config import Experiment, load_config
from .errors import ConfigError, ResultsError

#: Default family-wise false-alarm rate of one folder's tests.
ALPHA = 1e-3
#: Relative tolerance for quantities that are exact up to rounding.
ROUNDING = 1e-10

_COLUMNS = ["case", "n", "estimator", "quantity", "observed", "expected", "se", "z", "passed"]


@dataclass
class CheckReport:
    """The outcome of checking one results table.

    Attributes
    ----------
    name : str
        What was checked (the experiment or folder).
    tests : pandas.DataFrame
        One row per test: case, n, estimator, quantity (``mean``, ``sd``,
        ``coverage95`` or ``exact_mean column``), observed, expected, se, z
        (empty for exact comparisons) and passed.
    alpha : float
        Family-wise level.
    z_crit : float
        The Bonferroni critical |z|.
    """

    name: str
    tests: pd.DataFrame
    alpha: float
    z_crit: float

    def extended(self, tests: pd.DataFrame) -> CheckReport:
        """This report with more (exact) tests appended; the critical z is unchanged."""
        return CheckReport(
            self.name, pd.concat([self.tests, tests], ignore_index=True), self.alpha, self.z_crit
        )

    @property
    def passed(self) -> bool:
        return bool(self.tests.passed.all())

    @property
    def failures(self) -> pd.DataFrame:
        return self.tests[~self.tests.passed]

    @property
    def statistical(self) -> int:
        """Number of z-tests (the m of the Bonferroni correction)."""
        return int(self.tests.se.gt(0).sum())

    def headline(self) -> str:
        """One line: does it agree with theory?"""
        z = self.tests.z.abs()
        worst = f"; largest |z| = {z.max():.2f}" if z.notna().any() else ""
        basis = (
            f"{len(self.tests)} tests, {self.statistical} of them z-tests at family-wise "
            f"α = {self.alpha:g} (Bonferroni: |z| ≤ {self.z_crit:.2f}){worst}"
        )
        if self.passed:
            return f"{self.name}: agrees with theory ({basis})"
        return f"{self.name}: DISAGREES with theory: {len(self.failures)} of {basis} fail"

    def table(self) -> str:
        """A readable table: tests per case × estimator × quantity, then every failure."""
        t = self.tests
        grouped = (
            t.assign(absz=t.z.abs(), failed=~t.passed)
            .groupby(["case", "estimator", "quantity"], sort=False)
            .agg(tests=("passed", "size"), max_abs_z=("absz", "max"), failed=("failed", "sum"))
            .reset_index()
        )
        grouped["max_abs_z"] = grouped.max_abs_z.map(lambda v: "exact" if pd.isna(v) else f"{v:.2f}")
        lines = [self.headline(), "", grouped.to_string(index=False)]
        if not self.passed:
            lines += ["", "Failures:"]
            for _, row in self.failures.iterrows():
                z = "" if pd.isna(row.z) else f", z = {row.z:+.2f}"
                lines.append(
                    f"  case {row.case}, n = {row.n:,}, {row.estimator} {row.quantity}: "
                    f"{row.observed:.10g} vs exact {row.expected:.10g}{z}"
                )
        return "\n".join(lines)


def _reference(experiment, case, est: str, n: int) -> exact.Moments:
    """Exact moments of a summary row (nats); nan where not known."""
    if experiment.kind == "fit":
        from .fitting import exact_means

        mean = exact_means(experiment.truth, case.model, experiment.smoothing, n)[est]
        return exact.Moments(mean, math.nan, math.nan)
    return exact.moments(case.pair, est, n)


def check_summary(
    summary: pd.DataFrame, experiment: Experiment, *, alpha: float = ALPHA, name: str = ""
) -> CheckReport:
    """Test a summary table against the exact theory of ``experiment``.

    Rows whose exact mean is not known (the fitted KL of linear and ordinal
    models) are not tested.
    """
    cases = {c.name: c for c in experiment.cases}
    units = experiment.units
    scale = 1.0 if units == "nats" else 1.0 / math.log(2.0)
    rows: list[dict] = []
    for _, row in summary.iterrows():
        case = cases.get(row.case)
        if case is None:
            raise ResultsError(f"summary.csv names case {row.case!r}, which config.yaml does not define")
        n, est, r = int(row.n), str(row.estimator), int(row.replicates)
        m = _reference(experiment, case, est, n)
        k = 1.0 if est.startswith("p_wrong") else scale  # a probability has no units
        mean, sd, mu4 = m.mean * k, m.sd * k, m.mu4 * k**4
        if math.isnan(mean):
            continue
        key = {"case": row.case, "n": n, "estimator": est}
        if "exact_mean" in row and not _close(row.exact_mean, mean):
            rows.append(key | _exact("exact_mean column", row.exact_mean, mean))
        spread = sd if not math.isnan(sd) else row.sd
        if math.isnan(sd) and row.sd <= ROUNDING * max(1.0, abs(mean)):
            # Every replicate gave the same value but the exact spread is unknown:
            # a deterministic estimator must match exactly, while a rare outcome
            # that no replicate drew leaves nothing to test the mean against.
            if _close(row["mean"], mean):
                rows.append(key | _exact("mean", row["mean"], mean))
        elif spread > 0:
            rows.append(key | _z("mean", row["mean"], mean, spread / math.sqrt(r), mean))
        else:
            rows.append(key | _exact("mean", row["mean"], mean))
        two = _two_values(experiment, case, est, n)
        if not math.isnan(sd) and sd > 0 and two is not None and r > 1:
            # Two possible values: the sample sd is a function of the sample mean
            # (and its z-test's normal approximation fails near p = 1/2).
            rows.append(key | _sd_from_mean(row.sd, row["mean"], sorted(v * k for v in two), r))
        elif not math.isnan(sd):
            if sd > 0:
                if math.isnan(mu4) and est == "plugin_kl" and experiment.kind != "fit":
                    # exact sd, μ4 only bounded (categorical plug-in KL): a conservative se
                    mu4 = exact.plugin_mu4_upper(case.pair, n) * k**4
                var_s2 = mu4 / r - sd**4 * (r - 3) / (r * (r - 1))
                rows.append(key | _z("sd", row.sd, sd, math.sqrt(max(var_s2, 0.0)) / (2 * sd), mean))
            else:
                rows.append(key | _exact("sd", row.sd, 0.0, reference=abs(mean)))
        if est == "llr" and "coverage95" in row and not pd.isna(row.coverage95):
            c = exact.coverage95(case.pair, n)
            if not math.isnan(c):
                if 0.0 < c < 1.0:
                    rows.append(key | _z("coverage95", row.coverage95, c, math.sqrt(c * (1 - c) / r), 1.0))
                else:
                    rows.append(key | _exact("coverage95", row.coverage95, c))
    rows += _tilted_against_plain(summary, cases)
    tests = pd.DataFrame(rows, columns=_COLUMNS)
    m_tests = max(1, int(tests.se.gt(0).sum()))
    z_crit = float(stats.norm.isf(alpha / (2 * m_tests)))
    stochastic = tests.se.gt(0)
    tests.loc[stochastic, "passed"] = tests.loc[stochastic, "z"].abs() <= z_crit
    tests["passed"] = tests.passed.astype(bool)
    return CheckReport(name or experiment.name, tests, alpha, z_crit)


def _two_values(experiment, case, est: str, n: int) -> tuple[float, float] | None:
    """The two values an estimator can take at n (nats), if it takes only two.

    ``p_wrong`` is an indicator; at n = 1 every estimator of a two-category
    case is a function of the one observation.
    """
    if est == "p_wrong":
        return (0.0, 1.0)
    if experiment.kind == "fit" or n != 1 or case.pair.support.size != 2 or est.startswith("p_wrong"):
        return None
    from .estimators import SupportArrays, estimate

    arrays = SupportArrays.from_pair(case.pair)
    values = estimate(np.array([[1, 0], [0, 1]]), 1, arrays, [est])[est]
    return float(values[0]), float(values[1])


def _sd_from_mean(sd: float, mean: float, values, r: int) -> dict:
    """Exact test of the sd of R draws of a two-valued estimator against its mean.

    s² = R/(R − 1)·(mean − a)(b − mean).  Compared as variances, with the
    mean's own rounding allowance (ROUNDING relative) carried through: near
    a or b the square root would magnify it.
    """
    a, b = values
    variance = max(r / (r - 1) * (mean - a) * (b - mean), 0.0)
    allowance = ROUNDING * ((b - a) * max(1.0, abs(mean)) + variance)
    return {
        "quantity": "sd from the mean",
        "observed": sd,
        "expected": math.sqrt(variance),
        "se": 0.0,
        "z": math.nan,
        "passed": abs(sd * sd - variance) <= allowance,
    }


def _tilted_against_plain(summary: pd.DataFrame, cases) -> list[dict]:
    """Where p_wrong has no exact value, its plain count must fit the tilted estimate.

    Under agreement the plain estimate is a Binomial(R, π) count over R, with
    π the tilted estimate (far more precise).  The count is tested exactly
    against that Binomial, at the value of π within two of the tilted
    estimate's standard errors that fits it best, and the two-sided p-value
    enters the folder's Bonferroni correction as the equivalent |z|.  (The
    plain estimate's own standard error would be no basis: after one or two
    events it is mostly chance.)
    """
    if not {"p_wrong", "p_wrong_tilted"} <= set(summary.estimator):
        return []
    keyed = summary.set_index(["case", "n", "estimator"])
    rows = []
    for (case, n), _ in summary.groupby(["case", "n"], sort=False):
        if cases[case].pair.family == "coin":
            continue  # both are tested against the exact value instead
        plain, tilted = keyed.loc[(case, n, "p_wrong")], keyed.loc[(case, n, "p_wrong_tilted")]
        r = int(plain.replicates)
        if plain["mean"] == 0 and tilted["mean"] == 0:
            continue
        count = round(plain["mean"] * r)
        mcse = 0.0 if pd.isna(tilted.mcse) else tilted.mcse
        low, high = max(0.0, tilted["mean"] - 2 * mcse), min(1.0, tilted["mean"] + 2 * mcse)
        if count < low * r:
            p_value, sign = 2 * stats.binom.cdf(count, r, low), -1.0
        elif count > high * r:
            p_value, sign = 2 * stats.binom.sf(count - 1, r, high), 1.0
        else:
            p_value, sign = 1.0, 1.0
        z = sign * float(stats.norm.isf(min(p_value, 1.0) / 2))
        pi = min(max(tilted["mean"], 1.0 / r), 1.0)
        rows.append(
            {
                "case": case,
                "n": int(n),
                "estimator": "p_wrong",
                "quantity": "agrees with p_wrong_tilted (Binomial)",
                "observed": plain["mean"],
                "expected": tilted["mean"],
                "se": math.sqrt(pi * (1 - pi) / r),
                "z": z,
                "passed": True,  # decided once the number of tests is known
            }
        )
    return rows


def _z(quantity: str, observed: float, expected: float, se: float, scale: float) -> dict:
    """A z-test whose standard error is never below the values' rounding.

    ``se`` is combined with ROUNDING·max(1, scale), the precision to which
    values of size ``scale`` are evaluated in floating point, so a spread
    smaller than rounding (σ/√n at n = 10¹⁵) is not mistaken for an error.
    """
    se = math.hypot(se, ROUNDING * max(1.0, abs(scale)))
    return {
        "quantity": quantity,
        "observed": observed,
        "expected": expected,
        "se": se,
        "z": (observed - expected) / se,
        "passed": True,  # decided once the number of tests is known
    }


def _exact(quantity: str, observed: float, expected: float, *, reference: float | None = None) -> dict:
    ref = abs(expected) if reference is None else reference
    return {
        "quantity": quantity,
        "observed": observed,
        "expected": expected,
        "se": 0.0,
        "z": math.nan,
        "passed": _close(observed, expected, ref),
    }


def _close(observed: float, expected: float, reference: float | None = None) -> bool:
    """Equal up to rounding; two nans (unknown) are equal."""
    if pd.isna(observed) and pd.isna(expected):
        return True
    if pd.isna(observed) or pd.isna(expected):
        return False
    ref = abs(expected) if reference is None else reference
    return abs(observed - expected) <= ROUNDING * max(1.0, ref)


def check_trajectory(trajectory: pd.DataFrame) -> pd.DataFrame:
    """Exact tests of the source's identity along an optimisation path.

    At every step: H(p, q_θ) − KL(p‖q_θ) = H(p) (the term that does not
    depend on θ); the empirical cross-entropy = KL(p̂‖q_θ) + H(p̂); and the
    gradients of the empirical cross-entropy and of KL(p̂‖q_θ) have equal norms.
    """
    rows = []
    for _, t in trajectory.iterrows():
        key = {"case": t.case, "n": int(t.n), "estimator": f"trajectory step {int(t.step)}"}
        rows.append(key | _exact("gap = H(p)", t.gap, t.entropy))
        rows.append(
            key
            | _exact("CE = KL(p̂‖q) + H(p̂)", t.empirical_cross_entropy, t.empirical_kl + t.empirical_entropy)
        )
        rows.append(
            key
            | _exact(
                "gradient norms equal",
                t.grad_norm_empirical_cross_entropy,
                t.grad_norm_empirical_kl,
                reference=1.0,
            )
        )
    return pd.DataFrame(rows, columns=_COLUMNS).astype({"passed": bool})


def check_results(folder: str | Path, *, alpha: float = ALPHA) -> CheckReport:
    """Check the results folder ``folder`` (its ``summary.csv`` and ``config.yaml``).

    Raises
    ------
    sim.errors.ResultsError
        If the folder lacks those files or they cannot be read.
    """
    folder = Path(folder)
    for name in (res.SUMMARY, res.CONFIG):
        if not (folder / name).is_file():
            raise ResultsError(f"{folder}: missing {name} (is it a results folder written by sim run?)")
    try:
        experiment = load_config(folder / res.CONFIG)
    except ConfigError as exc:
        raise ResultsError(f"{folder}: its config.yaml is not valid:\n{exc}") from None
    try:
        summary = res.read_csv(folder / res.SUMMARY)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{folder}: cannot read summary.csv: {exc}") from None
    needed = {"case", "n", "estimator", "mean", "sd", "replicates"}
    if not needed <= set(summary.columns):
        raise ResultsError(
            f"{folder}: summary.csv lacks columns {', '.join(sorted(needed - set(summary.columns)))}"
        )
    report = check_summary(summary, experiment, alpha=alpha, name=str(folder))
    if (folder / res.TRAJECTORY).is_file():
        try:
            trajectory = res.read_csv(folder / res.TRAJECTORY)
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{folder}: cannot read trajectory.csv: {exc}") from None
        report = report.extended(check_trajectory(trajectory))
    return report
