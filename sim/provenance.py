"""What made a results folder: package versions, the platform and the CPU paths numpy takes.

numpy evaluates log and exp through different SIMD kernels on different CPUs
(with AVX-512, without, on arm64), and BLAS picks kernels per CPU model, so
the last bits of a run's numbers depend on the machine.  :func:`machine`
records what decides them, so that a results folder says which machine's
bits it holds; :func:`same_machine` tells whether two records would give the
same bytes (see README, "Reproducibility").
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from . import __version__

#: Distributions whose versions ``run.json`` records.
PACKAGES = ("numpy", "pandas", "scipy", "pyyaml", "click", "matplotlib", "seaborn", "orjson", "isal")


def versions() -> dict[str, str | None]:
    """sim, Python and every package a run depends on, by name (None if not installed)."""
    out: dict[str, str | None] = {"sim": __version__, "python": platform.python_version()}
    for dist in PACKAGES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _numpy_simd() -> dict[str, list[str]]:
    """The SIMD targets numpy was built for (baseline) and dispatches to on this CPU."""
    try:
        from numpy._core import _multiarray_umath as umath  # numpy ≥ 2
    except ImportError:  # pragma: no cover - numpy 1.26
        from numpy.core import _multiarray_umath as umath  # type: ignore[no-redef]
    found = getattr(umath, "__cpu_features__", {})
    return {
        "baseline": list(getattr(umath, "__cpu_baseline__", [])),
        "dispatched": sorted(f for f in getattr(umath, "__cpu_dispatch__", []) if found.get(f)),
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = _cpuinfo_model(f)
    except OSError:
        model = None
    if model is not None:
        return model
    return platform.processor() or "unknown"


def _cpuinfo_model(lines: Iterable[str]) -> str | None:
    """The value of the first "model name", "Model" or "CPU part" line of /proc/cpuinfo, if any."""
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "CPU part"):
            return value.strip()
    return None


def machine() -> dict[str, Any]:
    """What decides a run's last bits on this machine.

    The architecture, the CPU model (BLAS kernels follow it), the SIMD
    targets numpy dispatches to (its log/exp kernels follow them), the C
    library (its libm evaluates the scalar logs) and ``OPENBLAS_CORETYPE``
    when set.
    """
    libc = " ".join(v for v in platform.libc_ver() if v)
    return {
        "architecture": platform.machine(),
        "cpu": _cpu_model(),
        "numpy_simd": _numpy_simd(),
        "libc": libc or platform.system(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def same_machine(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two ``run.json`` records promise byte-identical results.

    True when the numpy versions (the draws and the last bits of the
    numbers), the isal versions (the bytes of ``.csv.gz`` files, see
    :mod:`sim.results`) and every field of :func:`machine` agree.  Records
    written before ``machine`` was recorded never match.
    """
    if "machine" not in a or "machine" not in b or a["machine"] != b["machine"]:
        return False
    va, vb = a.get("versions", {}), b.get("versions", {})
    return all(va.get(package) == vb.get(package) for package in ("numpy", "isal"))
