"""The interface every kind of experiment implements, and what the runner gives it.

A :class:`Pipeline` turns a validated experiment into its results tables.
The runner (:mod:`sim.runner`) does only what every kind shares: it takes
the results folder's lock, runs the pipeline's stages with a stopwatch and
an executor, checks the tables and publishes the folder.  Everything that
depends on the kind of experiment lives behind this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..tasks import Task

#: ``stage(name)`` times a stage of the run (``with stage("simulate"): …``).
Stage = Callable[[str], AbstractContextManager[Any]]
#: ``run_tasks(tasks, fn)`` yields ``(task, fn(experiment, task))`` in task order,
#: on whatever executor the run uses (see :func:`sim.runner.task_results`).
RunTasks = Callable[[Sequence[Task], Callable], Iterator[tuple[Task, dict[str, np.ndarray]]]]


class Pipeline(Protocol):
    """One kind of experiment: its tasks, its tables and its exact references.

    ``run_task`` must be a module-level function (it is sent to worker
    processes by reference); everything else runs in the main process.
    """

    #: Whether ``save_replicates: false`` applies: the run can keep summaries without replicates.
    streams: bool

    def replicate_rows(self, experiment) -> int:
        """Rows ``replicates.csv.gz`` will have (one per case, replicate and n; 0 when not written)."""

    def mode(self, experiment) -> str:
        """What, beyond the config, decides the tasks' results (part of the resume fingerprint)."""

    def plan(self, experiment) -> list[Task]:
        """Every task of the run, in merge order; depends only on the experiment."""

    #: The arrays of one task: a module-level, deterministic function of
    #: ``(experiment, task)``, held as a ``staticmethod`` (a bound method would
    #: pickle the pipeline into every worker).
    run_task: Callable[[Any, Task], dict[str, np.ndarray]]

    def work(self, experiment) -> float:
        """The run's cost in replicate × checkpoint × category steps (chooses the default workers)."""

    def effort(self, experiment) -> float:
        """A relative estimate of the whole run's cost, sampling, references, check and figures.

        Only compared between experiments, to start the heaviest first when
        several run side by side (:func:`sim.runner.heaviest_first`).
        """

    def analytic(self, experiment) -> pd.DataFrame:
        """``analytic.csv``: the exact quantities the summaries are compared with."""

    def tables(self, experiment, stage: Stage, run_tasks: RunTasks) -> dict[str, pd.DataFrame]:
        """Every table of the results folder, keyed by file name (see :mod:`sim.results`)."""
