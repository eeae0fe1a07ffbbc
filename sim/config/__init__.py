"""Experiment configs: YAML in, validated frozen :class:`Experiment` out.

All validation lives here.  :func:`load_config` reads one YAML file,
applies ``--set`` overrides and returns an :class:`Experiment`, or raises
:class:`~sim.errors.ConfigError` listing *every* problem found, each with the
file, line and key path (``coin.yaml:7: cases[1].q: …``).

The YAML is composed with PyYAML's safe loader and converted by hand, so
that a key given twice is an error (PyYAML keeps the last silently), any tag
that would construct an object is refused, and each value keeps its line.

The keys of an experiment::

    name: coin-demo            # required; letters, digits, '.', '_', '-'
    description: …             # optional, one line
    kind: convergence          # optional; or fit (see sim.config.fit and the README)
    seed: 2026                 # optional, default 0
    replicates: 2000           # optional, default 1000
    units: nats                # nats (default) | bits
    n: {min: 1, max: 1000000, points: 25}   # or a list: [1, 10, 100]
    estimators: [llr, cross_entropy, entropy, plugin_kl]   # default: all
    sampler: counts            # counts (default) | per-sample
    save_replicates: true      # false: bounded memory, no replicates.csv.gz
    cases:                     # required, at least one
      - name: fair-vs-biased
        p: 0.5                 # a coin: P(heads)
        q: 0.8
      - name: die
        p: [0.1, 0.2, 0.3, 0.4]
        q: {uniform: 4}        # or {zipf: {k, s}}, {dirichlet: {k, alpha, seed}}
    grid:                      # optional: one case per combination of the lists
      p: [0.5, 0.7]            # (see sim.config.grids; cases or grid is required)
      q: [0.55, 0.6, 0.8]
    sweep: {x: q, y: mean}     # optional, with a grid: what its sweep figure shows

Modules: :mod:`.model` (the validated objects, limits and resolved form),
:mod:`.yamlnodes` (YAML with line numbers), :mod:`.checker` (located issues,
scalar readers), :mod:`.cases` and :mod:`.fit` (each kind's validation),
:mod:`.grids` (a ``grid:``'s expansion into cases), :mod:`.common` (the keys both kinds share, and the one builder of the
experiment object) and :mod:`.loader` (the entry points re-exported here).
"""

from .loader import load_all, load_config, parse_config, resolve_paths
from .model import (
    DEFAULT_POINTS,
    ESTIMATORS,
    FIT_ESTIMATORS,
    FIT_MAX_N,
    KINDS,
    MAX_CELLS,
    MAX_DEPTH,
    MAX_K,
    MAX_N,
    MAX_NODES,
    MAX_PARAMETERS,
    MAX_REPLICATES,
    OPTIONAL_ESTIMATORS,
    PARAMETERISED_ESTIMATORS,
    PER_SAMPLE_MAX_N,
    SAMPLERS,
    SUM_TOLERANCE,
    UNITS,
    Case,
    Experiment,
    FitCase,
    FitExperiment,
    checkpoint_grid,
    dump_config,
    experiment_type,
)
from .yamlnodes import format_path

__all__ = [
    "DEFAULT_POINTS",
    "ESTIMATORS",
    "FIT_ESTIMATORS",
    "FIT_MAX_N",
    "KINDS",
    "MAX_CELLS",
    "MAX_DEPTH",
    "MAX_K",
    "MAX_N",
    "MAX_NODES",
    "MAX_PARAMETERS",
    "MAX_REPLICATES",
    "OPTIONAL_ESTIMATORS",
    "PARAMETERISED_ESTIMATORS",
    "PER_SAMPLE_MAX_N",
    "SAMPLERS",
    "SUM_TOLERANCE",
    "UNITS",
    "Case",
    "Experiment",
    "FitCase",
    "FitExperiment",
    "checkpoint_grid",
    "dump_config",
    "experiment_type",
    "format_path",
    "load_all",
    "load_config",
    "parse_config",
    "resolve_paths",
]
