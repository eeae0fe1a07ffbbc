"""Running a ``kind: fit`` experiment: samples, fits, trajectory and tables.

Every model of the experiment is fitted to the *same* samples (common random
numbers), so differences between models are not sampling noise.  Samples are
nested sample paths as in convergence experiments: the (x, y) cell counts at
N_j are a prefix of those at N_{j+1}, drawn by :func:`sim.sampling.count_paths`
over the cells' probabilities π(x) p(y|x), in blocks of replicates whose
generators are ``SeedSequence(seed, spawn_key=(key("fit-data"), block))``.

Per replicate and N the estimators are (nats, converted to the config's
units on output):

``kl_fitted``            KL(p‖q_θ̂), inf when the fit is at infinity
``train_cross_entropy``  −(1/N) Σ c_xy log q_θ̂(y|x), the training loss
``test_cross_entropy``   H(p, q_θ̂), the loss on the population
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import fitting, registry
from .. import results as res
from ..config import FitCase, FitExperiment
from ..distributions import to_units
from ..sampling import count_paths
from ..summary import replicates_frame, summarize_fit_case
from ..tasks import BLOCKS_PER_TASK, Task, block_rng, block_size
from .base import RunTasks, Stage

TRAJECTORY_COLUMNS = [
    "case",
    "replicate",
    "n",
    "step",
    "empirical_cross_entropy",
    "empirical_kl",
    "empirical_entropy",
    registry.CROSS_ENTROPY.name,
    "kl",
    registry.ENTROPY.name,
    "gap",
    "grad_norm_empirical_cross_entropy",
    "grad_norm_empirical_kl",
]

ANALYTIC_COLUMNS = [
    "case",
    "model",
    "parameters",
    "inputs",
    "classes",
    "units",
    "entropy_p",
    "kl_floor",
    "cross_entropy_floor",
]


def analytic_table(experiment: FitExperiment) -> pd.DataFrame:
    """``analytic.csv`` of a fit experiment: one row per model."""
    truth, units = experiment.truth, experiment.units
    rows = []
    for case in experiment.cases:
        floor = fitting.floor(truth, case.model)
        rows.append(
            {
                "case": case.name,
                "model": case.model,
                "parameters": fitting.parameters(case.model, truth),
                "inputs": truth.inputs,
                "classes": truth.classes,
                "units": units,
                "entropy_p": to_units(truth.entropy, units),
                "kl_floor": to_units(floor, units),
                "cross_entropy_floor": to_units(truth.entropy + floor, units),
            }
        )
    return pd.DataFrame(rows, columns=ANALYTIC_COLUMNS)


def _cells(experiment: FitExperiment) -> tuple[np.ndarray, np.ndarray]:
    joint = experiment.truth.joint.ravel()
    support = np.flatnonzero(joint > 0)
    return support, joint[support]


def _full_counts(counts: np.ndarray, support: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    full = np.zeros((counts.shape[0], shape[0] * shape[1]), dtype=np.int64)
    full[:, support] = counts
    return full.reshape(counts.shape[0], *shape)


def evaluate(
    truth: fitting.Truth, counts: np.ndarray, log_q: np.ndarray, converged: np.ndarray
) -> np.ndarray:
    """(rows, 3) kl_fitted, train and test cross-entropy of fitted ``log_q`` (nats), in :data:`sim.registry.FIT` order."""
    n = counts.sum(axis=(1, 2))
    with np.errstate(invalid="ignore"):
        train = -np.sum(np.where(counts > 0, counts * log_q, 0.0), axis=(1, 2)) / n
    kl = np.where(converged, truth.kl(log_q), np.inf)
    test = np.where(converged, truth.cross_entropy(log_q), np.inf)
    return np.stack([kl, train, test], axis=1)


def plan(experiment: FitExperiment) -> list[Task]:
    """The tasks of a fit experiment: blocks of replicates, every model fitted to each.

    Models share their data, so a task holds all of them (its ``case`` is 0).
    """
    blocks = math.ceil(experiment.replicates / _block_size(experiment))
    return [Task(0, b, min(BLOCKS_PER_TASK, blocks - b)) for b in range(0, blocks, BLOCKS_PER_TASK)]


def _block_size(experiment: FitExperiment) -> int:
    return block_size(experiment.truth.inputs * experiment.truth.classes)


def _block_paths(experiment: FitExperiment, block: int):
    """The replicate rows of one block and their count paths (flat cells on the support)."""
    support, probs = _cells(experiment)
    size = _block_size(experiment)
    rows = slice(block * size, min(experiment.replicates, (block + 1) * size))
    rng = block_rng(experiment.seed, "fit-data", block)
    paths = count_paths(
        probs, experiment.checkpoints, rows.stop - rows.start, rng=rng, method=experiment.sampler
    )
    return rows, support, paths


def fit_task(experiment: FitExperiment, task: Task) -> dict[str, np.ndarray]:
    """Fit every model to every replicate of one task's blocks at every N.

    Returns ``{"values": (models, rows, checkpoints, 3)}`` in nats, estimators
    in :data:`sim.registry.FIT` order.
    """
    truth = experiment.truth
    designs = [fitting.design(c.model, truth) for c in experiment.cases]
    parts = []
    for b in range(task.first, task.first + task.blocks):
        rows, support, paths = _block_paths(experiment, b)
        out = np.empty((len(designs), rows.stop - rows.start, len(experiment.checkpoints), 3))
        for j, flat in enumerate(paths):
            counts = _full_counts(flat, support, truth.table.shape)
            for m, design in enumerate(designs):
                result = fitting.fit(counts, design, smoothing=experiment.smoothing)
                out[m, :, j] = evaluate(truth, counts, result.log_q, result.converged)
        parts.append(out)
    return {"values": np.concatenate(parts, axis=1)}


def trajectory(experiment: FitExperiment) -> pd.DataFrame:
    """The optimisation path of the chosen replicate at the chosen N, for every model (nats).

    Its counts are drawn again from its block's own stream: the same counts
    the block's fits saw.
    """
    rep, n = experiment.trajectory["replicate"], experiment.trajectory["n"]
    block = rep // _block_size(experiment)
    rows, support, paths = _block_paths(experiment, block)
    for checkpoint, flat in zip(experiment.checkpoints, paths, strict=True):
        if checkpoint == n:
            counts = _full_counts(flat, support, experiment.truth.table.shape)
            one = counts[rep - rows.start : rep - rows.start + 1]
            frames = [
                _trajectory(experiment, c, fitting.design(c.model, experiment.truth), one, rep)
                for c in experiment.cases
            ]
            return pd.concat(frames, ignore_index=True)
    raise ValueError(f"trajectory n = {n} is not a checkpoint")


def _trajectory(
    experiment: FitExperiment, case: FitCase, a: np.ndarray, counts: np.ndarray, replicate: int
) -> pd.DataFrame:
    """The Newton path of one fit, with the quantities of the source's identity.

    The empirical distribution p̂ is that of the (smoothed) counts the fit
    minimises; its KL to q_θ and its entropy are computed from p̂ itself, and
    the gradient of KL(p̂‖q_θ) from Σ_x π̂(x) A(x)ᵀ(q_θ(·|x) − p̂(·|x)), not
    from the counts, so that their agreement with the cross-entropy's is a
    check, not a tautology.
    """
    truth = experiment.truth
    result = fitting.fit(counts, a, smoothing=experiment.smoothing, record=True)
    weights = counts[0].astype(float) + experiment.smoothing
    total = weights.sum()
    joint_hat = weights / total
    pi_hat = joint_hat.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        table_hat = np.where(pi_hat[:, None] > 0, joint_hat / pi_hat[:, None], 1.0 / truth.classes)
    empirical = fitting.Truth(pi_hat, table_hat, truth.features)
    rows = []
    for step, point in enumerate(result.path):
        log_q = point["log_q"]
        q = np.exp(log_q)
        grad_kl = np.einsum("xkd,xk->d", a, pi_hat[:, None] * q - joint_hat)
        with np.errstate(invalid="ignore"):
            objective = -np.sum(np.where(weights > 0, weights * log_q, 0.0)) / total
        ce, kl = float(truth.cross_entropy(log_q)), float(truth.kl(log_q))
        rows.append(
            {
                "case": case.name,
                "replicate": replicate,
                "n": int(counts.sum()),
                "step": step,
                "empirical_cross_entropy": objective,
                "empirical_kl": float(empirical.kl(log_q)),
                "empirical_entropy": empirical.entropy,
                registry.CROSS_ENTROPY.name: ce,
                "kl": kl,
                registry.ENTROPY.name: truth.entropy,
                "gap": ce - kl,
                "grad_norm_empirical_cross_entropy": float(np.linalg.norm(point["grad"])),
                "grad_norm_empirical_kl": float(np.linalg.norm(grad_kl)),
            }
        )
    return pd.DataFrame(rows, columns=TRAJECTORY_COLUMNS)


def convert(frame: pd.DataFrame, units: str, columns) -> pd.DataFrame:
    """Convert the named columns from nats to ``units``."""
    out = frame.copy()
    for col in columns:
        out[col] = to_units(out[col], units)
    return out


class FitPipeline:
    """The :class:`sim.pipelines.base.Pipeline` of ``kind: fit``."""

    run_task = staticmethod(fit_task)
    streams = False  # replicates are always kept

    def replicate_rows(self, experiment: FitExperiment) -> int:
        return experiment.replicates * len(experiment.checkpoints) * len(experiment.cases)

    def mode(self, experiment: FitExperiment) -> str:
        return experiment.kind  # replicates are always kept: the kind alone decides

    def plan(self, experiment: FitExperiment) -> list[Task]:
        return plan(experiment)

    def work(self, experiment: FitExperiment) -> float:
        # a fit (a few Newton steps over every cell) counts as a hundred steps per cell
        cells = experiment.truth.inputs * experiment.truth.classes
        return experiment.replicates * len(experiment.checkpoints) * 100 * cells * len(experiment.cases)

    def effort(self, experiment: FitExperiment) -> float:
        # summary rows (each checked, most drawn) and the fits (see work)
        rows = len(experiment.cases) * len(experiment.checkpoints) * len(experiment.estimators)
        return rows + self.work(experiment) / 1e6

    def analytic(self, experiment: FitExperiment) -> pd.DataFrame:
        return analytic_table(experiment)

    def tables(self, experiment: FitExperiment, stage: Stage, run_tasks: RunTasks) -> dict[str, pd.DataFrame]:
        """Every table of a fit experiment's results folder.

        Every model is fitted to every replicate at every N; per model the
        values are ``(replicates, checkpoints, 3)`` in nats, estimators in
        :data:`sim.registry.FIT` order, converted to the config's units here.
        """
        with stage("analytic"):
            analytic = self.analytic(experiment)
        with stage("simulate"):
            parts = [arrays["values"] for _, arrays in run_tasks(self.plan(experiment), self.run_task)]
            stacked = np.concatenate(parts, axis=1)  # (models, replicates, checkpoints, 3), C order
            path = trajectory(experiment)
        with stage("summarize"):
            summaries, replicate_frames = _summaries(experiment, analytic, stacked)
        return {
            res.ANALYTIC: analytic,
            res.SUMMARY: pd.concat(summaries, ignore_index=True),
            res.REPLICATES: pd.concat(replicate_frames, ignore_index=True),
            res.TRAJECTORY: convert(path, experiment.units, _IN_UNITS),
        }


#: The trajectory columns that hold information quantities (converted to the config's units).
_IN_UNITS = [c for c in TRAJECTORY_COLUMNS if c not in ("case", "replicate", "n", "step")]


def _summaries(experiment: FitExperiment, analytic: pd.DataFrame, stacked: np.ndarray):
    """Per model, its summary rows and its replicate rows (in the config's units)."""
    summaries, replicate_frames = [], []
    order = registry.names(registry.FIT)
    chosen = [order.index(e) for e in experiment.estimators]
    rows = analytic.to_dict("records")
    for m, (case, analytic_row) in enumerate(zip(experiment.cases, rows, strict=True)):
        v = to_units(stacked[m], experiment.units)
        summaries.append(summarize_fit_case(v, case=case, experiment=experiment, analytic=analytic_row))
        replicate_frames.append(
            replicates_frame(
                v[:, :, chosen],
                case=case.name,
                checkpoints=experiment.checkpoints,
                estimators=experiment.estimators,
            )
        )
    return summaries, replicate_frames
