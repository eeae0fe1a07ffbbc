"""sim: Monte Carlo experiments on the likelihood ratio, KL divergence and cross-entropy.

The public API is imported lazily, so ``sim --help`` stays fast::

    import sim
    experiment = sim.load_config("configs/coin.yaml")
    report = sim.run_experiment(experiment, "results")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "ConfigError": "errors",
    "ConfigIssue": "errors",
    "Distribution": "distributions",
    "Execution": "runner",
    "Experiment": "config",
    "OutputError": "errors",
    "Pair": "distributions",
    "ResultsError": "errors",
    "RunError": "errors",
    "SimError": "errors",
    "categorical": "distributions",
    "chernoff": "decision",
    "coin_p_wrong": "decision",
    "coin": "distributions",
    "count_paths": "sampling",
    "dirichlet": "distributions",
    "load_config": "config",
    "p_wrong_tilted": "decision",
    "parse_config": "config",
    "run_experiment": "runner",
    "uniform": "distributions",
    "zipf": "distributions",
}

__all__ = sorted([*_API, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
