"""Checks of whole tables: their row sets, ``analytic.csv``, ``replicates.csv.gz``, ``trajectory.csv``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..registry import CROSS_ENTROPY, ENTROPY, LLR, P_WRONG, P_WRONG_TILTED, PLUGIN_KL
from . import inference
from .columns import EPS, RELATIVE, _isnan, range_slack
from .report import CONSISTENCY, EXACT_TEST, RANGE, RECOMPUTED, ROW_SET, record


def row_set(table: str, frame: pd.DataFrame, keys: list[str], expected: list[tuple]) -> list[dict]:
    """Every expected key exactly once, nothing else: one record per problem, or one that passed."""
    label = ", ".join(keys)
    if _exactly_once(frame, keys, expected):  # the common case, decided without a Python loop
        return [record(table, {}, f"rows ({label})", ROW_SET, len(frame), len(expected))]
    out = []
    found = list(frame[keys].itertuples(index=False, name=None))
    want = set(expected)
    seen: dict[tuple, int] = {}
    for k in found:
        seen[k] = seen.get(k, 0) + 1
    for k in expected:
        if k not in seen:
            out.append(_row_problem(table, keys, k, "missing row"))
    for k, times in seen.items():
        if k not in want:
            out.append(_row_problem(table, keys, k, "a row the config does not ask for"))
        elif times > 1:
            out.append(_row_problem(table, keys, k, f"row appears {times} times"))
    if not out:
        out.append(record(table, {}, f"rows ({label})", ROW_SET, len(found), len(expected)))
    return out


def _exactly_once(frame: pd.DataFrame, keys: list[str], expected: list[tuple]) -> bool:
    """Whether ``frame``'s keys are ``expected``, each once (False also when unsure: the loop decides)."""
    if len(frame) != len(expected) or len(set(expected)) != len(expected):
        return False
    found = pd.MultiIndex.from_frame(frame[keys])
    return bool(found.is_unique and found.isin(expected).all())


def _complete_grid(frame: pd.DataFrame, experiment, counts: dict[str, int]) -> bool:
    """Whether the replicates' keys are every (case, replicate, n) exactly once (``counts[case]``
    replicates each), decided by array comparisons: millions of rows take a fraction of a second
    (and a Ctrl-C is heard at once), where a set of key tuples took seconds inside single C calls."""
    ns = np.asarray(experiment.checkpoints)
    if len(frame) != sum(counts[c.name] for c in experiment.cases) * ns.size:
        return False
    case = frame["case"].to_numpy()
    replicate, n = frame["replicate"].to_numpy(), frame["n"].to_numpy()
    for c in experiment.cases:
        r = counts[c.name]
        grid_replicates, grid_n = np.repeat(np.arange(r), ns.size), np.tile(ns, r)
        mine = np.flatnonzero(case == c.name)
        if mine.size != r * ns.size:
            return False
        order = np.lexsort((n[mine], replicate[mine]))
        if not (
            np.array_equal(replicate[mine][order], grid_replicates) and np.array_equal(n[mine][order], grid_n)
        ):
            return False
    return True


def _row_problem(table: str, keys: list[str], k: tuple, reason: str) -> dict:
    key = dict(zip(keys, k, strict=True))
    return record(
        table,
        {
            "case": key.get("case", ""),
            "n": int(key["n"]) if "n" in key else -1,
            "estimator": key.get("estimator", ""),
        },
        "rows",
        ROW_SET,
        ", ".join(f"{a}={b}" for a, b in key.items()),
        "each expected row once",
        passed=False,
        reason=reason,
    )


def columns_present(table: str, frame: pd.DataFrame, expected: list[str]) -> list[dict]:
    """The table has exactly the expected columns, in order."""
    found = list(frame.columns)
    if found == list(expected):
        return [record(table, {}, "columns", ROW_SET, len(found), len(expected))]
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    why = "; ".join(
        part
        for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"not written by sim: {', '.join(extra)}" if extra else "",
            "columns out of order" if not missing and not extra else "",
        )
        if part
    )
    return [
        record(table, {}, "columns", ROW_SET, ", ".join(found), ", ".join(expected), passed=False, reason=why)
    ]


def analytic(frame: pd.DataFrame, expected: pd.DataFrame) -> list[dict]:
    """``analytic.csv`` against its recomputation from the config, column by column."""
    table = "analytic.csv"
    out = columns_present(table, frame, list(expected.columns))
    out += row_set(table, frame, ["case"], [(c,) for c in expected.case])
    if not out[-1]["passed"] or not out[0]["passed"]:
        return out
    got = frame.set_index("case")
    for _, want in expected.iterrows():
        have = got.loc[want.case]
        for column in expected.columns[1:]:
            e, o = want[column], have[column]
            key = {"case": want.case}
            if isinstance(e, str) or isinstance(o, str):
                ok = str(o) == str(e)
                out.append(
                    record(table, key, column, RECOMPUTED, o, e, passed=ok, reason="" if ok else "differs")
                )
                continue
            e, o = (math.nan if pd.isna(v) else float(v) for v in (e, o))
            tol = RELATIVE * abs(e) if math.isfinite(e) else 0.0
            if _isnan(e) or _isnan(o):
                ok = _isnan(e) and _isnan(o)
            elif math.isinf(e) or math.isinf(o):
                ok = e == o
            else:
                ok = abs(o - e) <= tol
            out.append(
                record(
                    table,
                    key,
                    column,
                    RECOMPUTED,
                    o,
                    e,
                    tolerance=tol,
                    passed=ok,
                    reason="" if ok else "differs",
                )
            )
    return out


def tilted_against_plain(summary: pd.DataFrame, coin_cases: set[str]) -> list[dict]:
    """Where p_wrong has no exact value, its plain count must fit the tilted estimate.

    Under agreement the plain estimate is a Binomial(R, π) count over R, with
    π the tilted estimate's expectation.  The count is tested exactly against
    that Binomial at the π within the tilted estimate's Bonferroni-wide
    interval (z = 5 standard errors) that fits it best.
    """
    if not {P_WRONG.name, P_WRONG_TILTED.name} <= set(summary.estimator):
        return []
    keyed = summary.drop_duplicates(["case", "n", "estimator"]).set_index(["case", "n", "estimator"])
    out = []
    for (case, n), _ in summary.groupby(["case", "n"], sort=False):
        if (
            case in coin_cases
            or (case, n, P_WRONG.name) not in keyed.index
            or (case, n, P_WRONG_TILTED.name) not in keyed.index
        ):
            continue
        plain, tilted = keyed.loc[(case, n, P_WRONG.name)], keyed.loc[(case, n, P_WRONG_TILTED.name)]
        r = int(plain.replicates)
        if _isnan(tilted["mean"]) or _isnan(plain["mean"]):
            continue
        count = round(plain["mean"] * r)
        mcse = 0.0 if _isnan(tilted.mcse) else tilted.mcse
        # the tilted estimate's own rounding (its weights' exponents) widens the interval too
        slack = 5 * mcse + RELATIVE * tilted["mean"] * int(n)
        low = min(max(0.0, tilted["mean"] - slack), 1.0)
        high = max(min(1.0, tilted["mean"] + slack), 0.0)
        if count < low * r:
            p, sign = 2 * stats.binom.cdf(count, r, low), -1.0
        elif count > high * r:
            p, sign = (2 * stats.binom.sf(count - 1, r, high) if high > 0 else 0.0), 1.0
        else:
            p, sign = 1.0, 1.0
        p = float(min(p, 1.0))
        out.append(
            record(
                "summary.csv",
                {"case": case, "n": int(n), "estimator": P_WRONG.name},
                "mean vs p_wrong_tilted",
                EXACT_TEST,
                plain["mean"],
                tilted["mean"],
                p=p,
                z=inference.equivalent_z(p, sign),
            )
        )
    return out


def replicates(
    frame: pd.DataFrame, experiment, laws, coin_heads: dict, counts: dict[str, int]
) -> tuple[list[dict], dict | None]:
    """``replicates.csv.gz``: its rows, the values each estimator can take, identities per replicate.

    ``laws[(case, n, estimator)]`` gives each value's bounds; ``coin_heads``
    maps a coin case to the (v_T, v_H) of its llr, from which every
    replicate's number of heads is recovered and checked to be a nested path
    (never decreasing, never growing faster than n).  Returns the records and,
    when the rows are complete, each summary row's R values in replicate
    order (keyed by (case, n, estimator)), for the summary's checks.
    """
    table = "replicates.csv.gz"
    columns = ["case", "replicate", "n", *experiment.estimators]
    out = columns_present(table, frame, columns)
    keys = ["case", "replicate", "n"]
    if all(r["passed"] for r in out) and _complete_grid(frame, experiment, counts):
        out.append(record(table, {}, f"rows ({', '.join(keys)})", ROW_SET, len(frame), len(frame)))
    else:  # something is missing or extra: the general check names it
        expected = [
            (c.name, rep, n)
            for c in experiment.cases
            for rep in range(counts[c.name])
            for n in experiment.checkpoints
        ]
        out += row_set(table, frame, keys, expected)
    if not all(r["passed"] for r in out):
        return out, None
    by_row = {}
    for case in experiment.cases:
        part = frame[frame.case == case.name].sort_values(["replicate", "n"], kind="stable")
        for est in experiment.estimators:
            x = part[est].to_numpy(dtype=float).reshape(-1, len(experiment.checkpoints))
            at_n = {n: x[:, j] for j, n in enumerate(experiment.checkpoints)}
            by_row.update({(case.name, n, est): col for n, col in at_n.items()})
            out.append(_values_in_range(table, case.name, est, at_n, laws))
        out += _identities(table, case, part, experiment, laws, coin_heads)
    return out, by_row


def _values_in_range(table: str, case: str, est: str, at_n: dict[int, np.ndarray], laws) -> dict:
    """One estimator of one case: every replicate value within the values it can take.

    ``at_n`` maps each n, in increasing order, to the R values at that n;
    an indicator's values must also be exactly 0 or 1.
    """
    bad = 0
    first = None
    for n, col in at_n.items():
        law = laws[(case, n, est)]
        slack = range_slack(law)
        outside = ~((col >= law.low - slack) & (col <= law.high + slack))
        if law.indicator:
            outside |= ~np.isin(col, (0.0, 1.0))
        if outside.any():
            bad += int(outside.sum())
            first = first or (int(np.flatnonzero(outside)[0]), n, float(col[outside][0]))
    return record(
        table,
        {"case": case, "estimator": est},
        est,
        RANGE,
        bad,
        0,
        passed=bad == 0,
        reason=""
        if not bad
        else f"{bad} values outside the possible ones (first: replicate {first[0]}, n = {first[1]}: {first[2]:.10g})",
    )


def _identities(table: str, case, part: pd.DataFrame, experiment, laws, coin_heads: dict) -> list[dict]:
    """The identities each replicate of one case must satisfy, for the estimators it records."""
    out = []
    names = set(experiment.estimators)
    if {LLR.name, CROSS_ENTROPY.name, ENTROPY.name} <= names:
        bad = _decomposition_broken(case, part, experiment, laws)
        out.append(_identity(table, case.name, "cross_entropy − entropy = llr", bad, part))
    if {LLR.name, PLUGIN_KL.name} <= names and case.pair.plugin_bounds_llr:
        bad = _plugin_below_llr(case, part, experiment, laws)
        out.append(_identity(table, case.name, "plugin_kl ≥ llr", bad, part))
    if case.name in coin_heads and LLR.name in names:
        out.append(_coin_paths(table, case.name, part, coin_heads[case.name], experiment))
    return out


def _decomposition_broken(case, part: pd.DataFrame, experiment, laws) -> np.ndarray:
    """Rows where cross-entropy − entropy ≠ llr beyond rounding."""
    ce, h, llr = (part[c].to_numpy(dtype=float) for c in (CROSS_ENTROPY.name, ENTROPY.name, LLR.name))
    # the llr's log-ratios are computed directly, not as log p − log q: they
    # differ from that difference by rounding of the logs' size
    n0 = experiment.checkpoints[0]
    logs = laws[(case.name, n0, CROSS_ENTROPY.name)].scale + laws[(case.name, n0, ENTROPY.name)].scale
    tol = 16 * EPS * (np.abs(ce) + np.abs(h) + logs)
    return ~(np.abs(ce - h - llr) <= tol)


def _plugin_below_llr(case, part: pd.DataFrame, experiment, laws) -> np.ndarray:
    """Rows where the plug-in KL falls below the llr beyond rounding (it is llr + KL(p̂‖p))."""
    llr, plug = part[LLR.name].to_numpy(dtype=float), part[PLUGIN_KL.name].to_numpy(dtype=float)
    law = laws[(case.name, experiment.checkpoints[0], LLR.name)]
    scale = max(abs(law.low), abs(law.high))  # the log-ratios the llr sums
    return ~(plug >= llr - 16 * EPS * (np.abs(llr) + np.abs(plug) + scale))


def _identity(table, case, what, bad, part) -> dict:
    count = int(bad.sum())
    where = ""
    if count:
        i = int(np.flatnonzero(bad)[0])
        where = f": {count} rows break it (first: replicate {part.replicate.iloc[i]}, n = {part.n.iloc[i]})"
    return record(
        table, {"case": case}, what, CONSISTENCY, count, 0, passed=count == 0, reason=where.lstrip(": ")
    )


def _coin_paths(table, case, part, linear, experiment) -> dict:
    """Each replicate's llr must be (h·v_H + (n − h)·v_T)/n for integer heads h along a nested path."""
    v_t, v_h = linear
    step = v_h - v_t
    if step == 0.0:  # p = q: the llr is the same for every path, heads cannot be read off it
        return record(
            table, {"case": case}, "heads along each path", CONSISTENCY, 0, 0, reason="not recoverable"
        )
    ns = np.asarray(experiment.checkpoints, dtype=float)
    x = part[LLR.name].to_numpy(dtype=float).reshape(-1, ns.size)
    heads = ns * (x - v_t) / step
    rounding = ns * 16 * EPS * max(abs(v_t), abs(v_h)) / abs(step)
    usable = rounding <= 0.25
    if not usable.any():
        return record(
            table, {"case": case}, "heads along each path", CONSISTENCY, 0, 0, reason="not recoverable"
        )
    h = np.round(heads[:, usable])
    off = np.abs(heads[:, usable] - h) > np.maximum(rounding[usable], 1e-9)
    steps = np.diff(h, axis=1)
    dn = np.diff(ns[usable])
    broken = off.any(axis=1) | (h < 0).any(axis=1) | (h > ns[usable]).any(axis=1)
    if steps.size:
        broken |= ((steps < 0) | (steps > dn)).any(axis=1)
    count = int(broken.sum())
    return record(
        table,
        {"case": case, "estimator": LLR.name},
        "heads along each path",
        CONSISTENCY,
        count,
        0,
        passed=count == 0,
        reason=""
        if not count
        else f"{count} replicates are not nested coin paths (first: {int(np.flatnonzero(broken)[0])})",
    )


def trajectory(frame: pd.DataFrame) -> list[dict]:
    """Exact tests of the source's identity along an optimisation path.

    At every step: H(p, q_θ) − KL(p‖q_θ) = H(p); the empirical cross-entropy
    = KL(p̂‖q_θ) + H(p̂); the gradients of the empirical cross-entropy and of
    KL(p̂‖q_θ) have equal norms.  Tolerances are relative to the terms (for
    the gradients, differences of probabilities: of order 1).
    """
    table = "trajectory.csv"
    out = []
    for _, t in frame.iterrows():
        key = {"case": t.case, "n": int(t.n), "estimator": f"step {int(t.step)}"}
        checks = (
            ("gap = H(p)", t.gap, t.entropy, abs(t.cross_entropy) + abs(t.kl) + abs(t.entropy)),
            (
                "CE = KL(p̂‖q) + H(p̂)",
                t.empirical_cross_entropy,
                t.empirical_kl + t.empirical_entropy,
                abs(t.empirical_cross_entropy) + abs(t.empirical_kl) + abs(t.empirical_entropy),
            ),
            (
                "gradient norms equal",
                t.grad_norm_empirical_cross_entropy,
                t.grad_norm_empirical_kl,
                1.0 + abs(t.grad_norm_empirical_cross_entropy) + abs(t.grad_norm_empirical_kl),
            ),
        )
        for what, o, e, scale in checks:
            tol = RELATIVE * scale
            ok = abs(o - e) <= tol if math.isfinite(o) and math.isfinite(e) else o == e
            out.append(
                record(
                    table,
                    key,
                    what,
                    CONSISTENCY,
                    o,
                    e,
                    tolerance=tol,
                    passed=ok,
                    reason="" if ok else "identity broken",
                )
            )
    return out
