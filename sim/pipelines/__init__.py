"""One pipeline per kind of experiment, behind one interface (:class:`Pipeline`).

=================  =============================  ==========================
kind               experiment class               pipeline
=================  =============================  ==========================
``convergence``    :class:`sim.config.Experiment`     :class:`ConvergencePipeline`
``fit``            :class:`sim.config.FitExperiment`  :class:`FitPipeline`
=================  =============================  ==========================

:func:`pipeline_for` picks the pipeline by the experiment's class (the
config decides the class from ``kind:``); nothing else tells kinds apart.
"""

from __future__ import annotations

from ..config import Experiment, FitExperiment
from .base import Pipeline, RunTasks, Stage
from .convergence import ConvergencePipeline
from .fit import FitPipeline

_PIPELINES: dict[type, Pipeline] = {Experiment: ConvergencePipeline(), FitExperiment: FitPipeline()}

__all__ = ["ConvergencePipeline", "FitPipeline", "Pipeline", "RunTasks", "Stage", "pipeline_for"]


def pipeline_for(experiment: Experiment | FitExperiment) -> Pipeline:
    """The pipeline that runs ``experiment``.

    Raises
    ------
    TypeError
        If ``experiment`` is not a validated experiment object.
    """
    try:
        return _PIPELINES[type(experiment)]
    except KeyError:
        raise TypeError(f"not a validated experiment: {type(experiment).__name__}") from None
