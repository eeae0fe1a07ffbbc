"""Convergence experiments: estimators along nested sample paths, against exact theory.

Tasks are blocks of replicates of one case (:mod:`sim.blocks`); their arrays
merge in task order into the replicates of each case, or, with
``save_replicates: false``, into one streaming accumulator per case
(:mod:`sim.streaming`), from which the summaries are made.
"""

from __future__ import annotations

import math

import pandas as pd

from .. import blocks
from .. import results as res
from ..config import Experiment
from ..families import FamilyPair
from ..families import paths as family_paths
from ..markov import MarkovPair
from ..markov import paths as markov_paths
from ..precision import asked, first_count, next_count
from ..streaming import Accumulator
from ..summary import analytic_table, replicates_frame, stream_sd, summarize_case, summarize_stream
from ..tasks import Task, block_size, plan, tasks_between
from .base import RunTasks, Stage

#: Categories beyond this add no cost per step (the estimators visit non-zero counts only).
_WORK_K = 1000


#: Each kind of pair's sampler (categorical i.i.d. cases: :func:`sim.blocks.run_task`).
_SAMPLERS = {FamilyPair: family_paths.run_task, MarkovPair: markov_paths.run_task}


def run_task(experiment: Experiment, task: Task) -> dict:
    """One task's arrays, from the sampler of its case's kind of pair."""
    pair = experiment.cases[task.case].pair
    return _SAMPLERS.get(type(pair), blocks.run_task)(experiment, task)


class ConvergencePipeline:
    """The :class:`sim.pipelines.base.Pipeline` of ``kind: convergence``."""

    run_task = staticmethod(run_task)
    streams = True

    def replicate_rows(self, experiment: Experiment) -> int:
        if not experiment.save_replicates:
            return 0
        return experiment.replicates * len(experiment.checkpoints) * len(experiment.cases)

    def mode(self, experiment: Experiment) -> str:
        return "replicates" if experiment.save_replicates else "streaming"

    def plan(self, experiment: Experiment) -> list[Task]:
        return plan(experiment)

    def work(self, experiment: Experiment) -> float:
        steps = sum(min(c.pair.cells, _WORK_K) for c in experiment.cases)
        return experiment.replicates * len(experiment.checkpoints) * steps

    def effort(self, experiment: Experiment) -> float:
        # summary rows (each checked, most drawn), exact sums over every category at every n for
        # every estimator (a thousand categories about one row's cost), and the sampling
        rows = len(experiment.cases) * len(experiment.checkpoints) * len(experiment.estimators)
        categories = sum(c.pair.cells for c in experiment.cases) * len(experiment.checkpoints)
        categories *= len(experiment.estimators)
        return rows + categories / 1000 + self.work(experiment) / 1e6

    def analytic(self, experiment: Experiment) -> pd.DataFrame:
        return analytic_table(experiment)

    def tables(self, experiment: Experiment, stage: Stage, run_tasks: RunTasks) -> dict[str, pd.DataFrame]:
        with stage("analytic"):
            analytic = self.analytic(experiment)
        with stage("simulate"):
            if experiment.precision is None:
                per_case = _merge(experiment, run_tasks(self.plan(experiment), self.run_task))
            else:
                per_case = _by_precision(experiment, run_tasks, self.run_task)
        with stage("summarize"):
            return dict(_summaries(experiment, analytic, per_case))


def _by_precision(experiment: Experiment, run_tasks: RunTasks, fn) -> list:
    """:func:`_merge`'s per-case parts, made in rounds until each case meets its target precision
    (:mod:`sim.precision`); every decision reads the replicates made so far, in order."""
    precision = experiment.precision
    sizes = [block_size(c.pair.cells) for c in experiment.cases]
    want = {c: first_count(precision, size) for c, size in enumerate(sizes)}
    have = [0] * len(experiment.cases)
    per_case: list[list] = [[] for _ in experiment.cases]
    while want:
        tasks = [t for c, count in want.items() for t in tasks_between(c, have[c], count, sizes[c])]
        _merge(experiment, run_tasks(tasks, fn), per_case)
        for c, count in list(want.items()):
            have[c] = count
            step = next_count(precision, count, sizes[c], _asked_mcse(experiment, c, per_case[c]))
            if step is None:
                del want[c]
            else:
                want[c] = step
    return per_case


def _asked_mcse(experiment: Experiment, c: int, parts: list):
    """The MCSE of case ``c``'s rows the target precision is for, from its replicates so far."""
    if experiment.save_replicates:
        values = blocks.by_replicate(blocks.stack([p["values"] for p in parts]))
        return asked(values, experiment.estimators, experiment.precision)
    acc = parts[0]
    columns = [experiment.estimators.index(e) for e in experiment.precision.estimators]
    return stream_sd(acc, blocks.ranges_of(experiment, c))[:, columns] / math.sqrt(acc.count)


def _merge(experiment: Experiment, results, per_case: list | None = None) -> list:
    """Per case, its tasks' arrays in task order, or one accumulator they were folded into
    (added to ``per_case``'s, if given)."""
    per_case = [[] for _ in experiment.cases] if per_case is None else per_case
    for task, arrays in results:
        parts = per_case[task.case]
        if experiment.save_replicates:
            parts.append(arrays)
        elif not parts:
            parts.append(Accumulator.from_arrays(arrays))
        else:  # fold into the running accumulator, in task order
            parts[0].merge(Accumulator.from_arrays(arrays))
    return per_case


def _summaries(experiment: Experiment, analytic: pd.DataFrame, per_case: list):
    """Yield the tables (file name, frame): analytic, summary and, if kept, replicates."""
    summaries, replicate_frames = [], []
    kw = dict(checkpoints=experiment.checkpoints, estimators=experiment.estimators)
    rows = analytic.to_dict("records")
    for c, (case, analytic_row) in enumerate(zip(experiment.cases, rows, strict=True)):
        parts = per_case[c]
        if experiment.save_replicates:
            values = blocks.by_replicate(blocks.stack([p["values"] for p in parts]))
            covered = blocks.by_replicate(blocks.stack([p["covered"] for p in parts]))
            summaries.append(summarize_case(values, covered, case=case, analytic=analytic_row, **kw))
            replicate_frames.append(replicates_frame(values, case=case.name, **kw))
        else:
            ranges = blocks.ranges_of(experiment, c)
            summaries.append(summarize_stream(parts[0], ranges, case=case, analytic=analytic_row, **kw))
    yield res.ANALYTIC, analytic
    yield res.SUMMARY, pd.concat(summaries, ignore_index=True)
    if experiment.save_replicates:
        yield res.REPLICATES, pd.concat(replicate_frames, ignore_index=True)
