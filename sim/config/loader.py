"""Entry points: parse, load and resolve experiment configs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import registry
from ..errors import ConfigError, ConfigIssue
from ..families import FamilyPair
from ..markov import MarkovPair
from . import families, markov
from .cases import _cases, _check_against_cases, _check_q_sample_sizes, _checkpoints, _estimators
from .checker import _Checker, _describe
from .common import _build, _check_sampler, _common_keys, read_precision
from .families import check_family_cases
from .fit import _fit_experiment
from .grids import entries, read_grid, read_sweep
from .markov import check_markov_cases
from .model import (
    _FIT_KEYS,
    _TOP_KEYS,
    ESTIMATORS,
    FIT_ESTIMATORS,
    KINDS,
    OPTIONAL_ESTIMATORS,
    PARAMETERISED_ESTIMATORS,
    Experiment,
    FitExperiment,
    KeyPath,
)
from .yamlnodes import _compose, _parse_key, format_path


def _experiment(data: Any, checker: _Checker) -> Experiment | FitExperiment | None:
    """Validate the composed config of either kind of experiment, and build it."""
    if data is None:
        checker.error((), "the config is empty; it needs at least 'name', 'n' and 'cases'")
        return None
    kind = checker.choice(
        data.get("kind", "convergence") if isinstance(data, dict) else "convergence", ("kind",), KINDS
    )
    fit = kind == "fit"
    top = checker.mapping(data, (), _FIT_KEYS if fit else _TOP_KEYS, "experiment keys")
    if top is None:
        return None
    for key in ("name", "n") + (("truth",) if fit else ()):
        if key not in top:
            checker.error((), f"missing key '{key}'")
    if "cases" not in top and (fit or "grid" not in top):
        checker.error((), "missing key 'cases'" + ("" if fit else " (or 'grid', a grid of cases)"))
    common = _common_keys(top, checker)
    grid = _checkpoints(top["n"], ("n",), checker) if "n" in top else None
    names = FIT_ESTIMATORS if fit else (*ESTIMATORS, *OPTIONAL_ESTIMATORS)
    default = FIT_ESTIMATORS if fit else ESTIMATORS
    parameterised = () if fit else PARAMETERISED_ESTIMATORS
    parsed: dict[int, str] = {}
    estimators = _estimators(top.get("estimators", list(default)), checker, names, parameterised, parsed)
    _check_sampler(common["sampler"], grid, checker)
    save = top.get("save_replicates", True)
    if not isinstance(save, bool):
        checker.error(("save_replicates",), f"must be true or false, got {_describe(save)}")
    if fit:
        return _fit_experiment(top, checker, common, grid, estimators)
    valid_cases: list = []
    cases = _all_cases(top, checker, valid_cases)
    _check_against_cases(parsed, valid_cases, checker)
    _check_q_sample_sizes(valid_cases, grid, common["sampler"], checker)
    ckpts = grid.checkpoints if grid is not None else ()
    check_family_cases(top, valid_cases, parsed, common["sampler"], ckpts, checker)
    check_markov_cases(top, valid_cases, parsed, ckpts, checker)
    if "estimators" not in top and cases and common["sampler"] is not None:
        estimators, left_out = _default_estimators(cases, common["sampler"], ckpts)
        checker.notes.extend(left_out)
    grids = tuple(entries(top["grid"])) if "grid" in top else ()
    precision = read_precision(top, estimators, common["replicates"], checker)
    sweep = read_sweep(top, estimators, grid.checkpoints if grid else None, checker)
    fields = {"cases": cases, "estimators": estimators, "kind": kind, "save_replicates": save, "grids": grids}
    return _build(Experiment, checker, common, grid, precision=precision, sweep=sweep, **fields)


def _all_cases(top: dict, checker: _Checker, valid: list) -> tuple | None:
    """The written cases, then the grid's (None if any is invalid); ``valid`` gets those that are."""
    cases = _cases(top["cases"], checker, valid) if "cases" in top else ()
    if "grid" not in top:
        return cases
    written = top.get("cases") if isinstance(top.get("cases"), list) else []
    taken = [c["name"] for c in written if isinstance(c, dict) and isinstance(c.get("name"), str)]
    gridded = read_grid(top["grid"], checker, taken)
    valid.extend(gridded or ())
    return None if cases is None or gridded is None else cases + gridded


def _default_estimators(cases, sampler: str, checkpoints) -> tuple[tuple[str, ...], list[str]]:
    """The default estimators less those some case cannot have, and a note per one left out."""
    keep, notes = [], []
    for spec in registry.CONVERGENCE:
        why = next(((c.name, r) for c in cases if (r := _why_not(c, spec, sampler, checkpoints))), None)
        if why is None:
            keep.append(spec.name)
        else:
            notes.append(f"estimators: {spec.name} left out of the defaults: case '{why[0]}': {why[1]}")
    return tuple(keep), notes


def _why_not(case, spec, sampler: str, checkpoints) -> str | None:
    """Why a case cannot have ``spec`` (parametric families and Markov cases restrict them)."""
    if isinstance(case.pair, FamilyPair):
        return families.why_not(case, spec, sampler, checkpoints)
    if isinstance(case.pair, MarkovPair):
        return markov.why_not(case, spec, checkpoints)
    return None


def _apply_override(data: Any, item: str, overrides: dict[KeyPath, str]) -> list[ConfigIssue]:
    source = f"--set {item.split('=', 1)[0]}"
    if "=" not in item:
        return [ConfigIssue(source, None, "", "must be KEY=VALUE, e.g. --set replicates=500")]
    key, text = item.split("=", 1)
    path = _parse_key(key.strip())
    if path is None:
        return [ConfigIssue(source, None, "", f"{key!r} is not a key path like n.max or cases[0].p")]
    value, _, issues = _compose(text, source)
    if issues:
        return issues
    if not isinstance(data, dict):
        return [ConfigIssue(source, None, "", "the config is not a mapping of keys")]
    target: Any = data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(target, dict) and isinstance(part, str):
            target = target.setdefault(part, [] if isinstance(nxt, int) else {})
        elif isinstance(target, list) and isinstance(part, int) and part < len(target):
            target = target[part]
        else:
            return [ConfigIssue(source, None, format_path(path[: i + 1]), "no such key to set")]
    last = path[-1]
    if isinstance(target, dict) and isinstance(last, str):
        target[last] = value
    elif isinstance(target, list) and isinstance(last, int) and last <= len(target):
        if last == len(target):
            target.append(value)
        else:
            target[last] = value
    else:
        return [ConfigIssue(source, None, format_path(path), "no such key to set")]
    overrides[path] = source
    return []


def parse_config(text: str, source: str = "<config>", overrides: Sequence[str] = ()) -> Experiment:
    """Validate YAML ``text`` (named ``source`` in messages) into an Experiment.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        The name used in error messages, normally the file's path.
    overrides : sequence of str
        ``KEY=VALUE`` items as given to ``--set``; ``KEY`` is a dotted path
        (``n.max``, ``cases[0].q``) and ``VALUE`` is parsed as YAML.

    Raises
    ------
    sim.errors.ConfigError
        Listing every problem found: in the YAML, in the overrides and in
        the values.  A value that could not be read is reported once.
    """
    data, lines, issues = _compose(text, source)
    overridden: dict[KeyPath, str] = {}
    for item in overrides:
        issues += _apply_override(data, item, overridden)
    if data is None and any(i.line is not None or not i.path for i in issues):
        raise ConfigError(issues)  # nothing readable to validate
    checker = _Checker(source, lines, overridden, skip={_parse_key(i.path) or () for i in issues if i.path})
    experiment = _experiment(data, checker)
    issues += checker.issues
    if issues or experiment is None:
        raise ConfigError(issues)
    return experiment


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """Read and validate the YAML experiment at ``path``.

    See :func:`parse_config`; errors name ``path`` as it was given.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(source, None, "", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(source, None, "", "is a folder, not a YAML file")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(source, None, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(source, None, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return parse_config(text, source, overrides)


def resolve_paths(configs: Iterable[str | Path], default_dir: str | Path = "configs") -> list[Path]:
    """The config files to run: those given, or every ``*.yaml`` in ``default_dir``."""
    paths = [Path(c) for c in configs]
    if paths:
        return paths
    found = sorted(Path(default_dir).glob("*.yaml"))
    if not found:
        raise ConfigError(
            [ConfigIssue(str(default_dir), None, "", "no CONFIG given and no *.yaml files here to run")]
        )
    return found


def load_all(configs: Iterable[str | Path], overrides: Sequence[str] = ()) -> list[Experiment]:
    """Load every config, collecting the problems of all of them before raising.

    Also refuses two configs that share an experiment ``name``, since they
    would write to the same results folder.
    """
    experiments: list[Experiment] = []
    issues: list[ConfigIssue] = []
    for path in configs:
        try:
            experiments.append(load_config(path, overrides))
        except ConfigError as exc:
            issues += exc.issues
    seen: dict[str, str] = {}
    for e in experiments:
        if e.name in seen:
            issues.append(
                ConfigIssue(
                    e.source,
                    None,
                    "name",
                    f"'{e.name}' is also the name of {seen[e.name]}; results would collide",
                )
            )
        seen.setdefault(e.name, e.source)
    if issues:
        raise ConfigError(issues)
    return experiments
