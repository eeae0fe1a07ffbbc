"""Figures drawn from a results folder's tables alone.

Every figure is built from DataFrames (``summary.csv``, ``analytic.csv``,
``replicates.csv.gz``) and the resolved config, never from a simulation, so
``sim plot`` can redraw them in a fresh process.  A streamed run
(``save_replicates: false``) has no ``replicates.csv.gz``: its figures are
those its summary supports (:func:`figure_kinds`, :func:`figure_notes`).

Each kind has an axes-level function that draws one case, takes the tables
and keyword-only options, accepts ``ax=None`` and returns the Axes, and a
figure-level function that facets the cases and returns the Figure:

==================  ================================  =======================
kind                axes level                        figure level
==================  ================================  =======================
``convergence``     :func:`plot_convergence`          :func:`convergence_figure`
``paths``           :func:`plot_paths`                :func:`paths_figure`
``error``           :func:`plot_error`                :func:`error_figure`
``clt``             :func:`plot_clt`                  :func:`clt_figure`
``decomposition``   :func:`plot_decomposition`        :func:`decomposition_figure`
``estimators``      :func:`plot_estimators`           :func:`estimators_figure`
``testing``         :func:`plot_p_wrong`,             :func:`testing_figure`
                    :func:`plot_stein`
``sweep``           :func:`plot_sweep`                :func:`sweep_figure`
==================  ================================  =======================

The ``sweep`` figure is drawn for a grid of cases (``grid:``); its panels are sample sizes, not
cases (see :mod:`.sweep`).

A fit experiment has ``fit_trajectory`` (:func:`plot_fit_trajectory`,
:func:`fit_trajectory_figure`) and ``fit_convergence``
(:func:`plot_fit_convergence`, :func:`fit_convergence_figure`).

Every estimator keeps one colour in every figure (seaborn's colourblind
palette, from :mod:`sim.registry`); exact theory is drawn in black, dashed.
Modules: :mod:`.style`, :mod:`.convergence`, :mod:`.estimators` (which
estimator of KL), :mod:`.decision` (the testing figure), :mod:`.sweep` (a grid's sweep), :mod:`.fit`, :mod:`.layout` (margins measured once, so that each
figure is drawn once) and :mod:`.folders` (reading results, building and
saving figures).
"""

from .convergence import (
    clt_figure,
    convergence_figure,
    decomposition_figure,
    error_figure,
    paths_figure,
    plot_clt,
    plot_convergence,
    plot_decomposition,
    plot_error,
    plot_paths,
)
from .decision import plot_p_wrong, plot_stein, testing_figure
from .estimators import estimators_figure, plot_estimators
from .fit import fit_convergence_figure, fit_trajectory_figure, plot_fit_convergence, plot_fit_trajectory
from .folders import (
    FigureReport,
    build_figures,
    draw_figures,
    figure_kinds,
    figure_notes,
    load_tables,
    save_figure,
    warm_up,
)
from .style import (
    COLOURS,
    DPI,
    FIT_KINDS,
    FORMATS,
    KINDS,
    LABELS,
    MARKERS,
    case_titles,
    describe_distribution,
)
from .sweep import plot_sweep, sweep_figure

__all__ = [
    "COLOURS",
    "DPI",
    "FIT_KINDS",
    "FORMATS",
    "KINDS",
    "LABELS",
    "MARKERS",
    "FigureReport",
    "build_figures",
    "case_titles",
    "clt_figure",
    "convergence_figure",
    "decomposition_figure",
    "describe_distribution",
    "draw_figures",
    "error_figure",
    "estimators_figure",
    "figure_kinds",
    "figure_notes",
    "fit_convergence_figure",
    "fit_trajectory_figure",
    "load_tables",
    "paths_figure",
    "plot_clt",
    "plot_convergence",
    "plot_decomposition",
    "plot_error",
    "plot_estimators",
    "plot_fit_convergence",
    "plot_fit_trajectory",
    "plot_p_wrong",
    "plot_paths",
    "plot_stein",
    "plot_sweep",
    "save_figure",
    "sweep_figure",
    "testing_figure",
    "warm_up",
]
