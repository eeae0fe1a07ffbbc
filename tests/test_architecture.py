"""The code's shape: one place per idea, short functions (see ARCHITECTURE.md).

These read the source of ``sim/`` with :mod:`ast`; they fail when an
estimator's name is written outside the registry, when the kind of an
experiment is tested outside ``sim/config``, or when a function grows past
50 lines or 3 levels of nesting without a comment saying why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sim import registry

SIM = Path(__file__).resolve().parents[1] / "sim"
MODULES = sorted(SIM.rglob("*.py"))
#: Longest function (lines, docstring included) and deepest nesting of blocks.
MAX_LINES, MAX_DEPTH = 50, 3
#: A comment with this tag on the line above a ``def`` (or its first line) says why it is longer.
WHY = "# shape:"
_BLOCKS = (
    ast.If,
    ast.For,
    ast.While,
    ast.With,
    ast.Try,
    ast.AsyncFor,
    ast.AsyncWith,
    ast.Match,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, value) of every string constant that is not a docstring."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def _depth(node: ast.AST, depth: int = 0) -> int:
    """Deepest nesting of blocks under ``node`` (an ``elif`` is the level of its ``if``)."""
    best = depth
    for field, value in ast.iter_fields(node):
        children = value if isinstance(value, list) else [value]
        for child in children:
            if not isinstance(child, ast.AST):
                continue
            is_elif = (
                isinstance(node, ast.If)
                and field == "orelse"
                and len(children) == 1
                and isinstance(child, ast.If)
            )
            step = isinstance(child, _BLOCKS) and not is_elif
            best = max(best, _depth(child, depth + step))
    return best


def test_each_estimator_name_is_written_only_in_the_registry():
    names = set(registry.names(registry.ALL))
    # sim/__init__.py maps the public function sim.p_wrong_tilted to its module: a
    # function's name, not the estimator's
    allowed = {SIM / "registry.py", SIM / "__init__.py"}
    found = [
        f"{path.relative_to(SIM.parent)}:{line}: {value!r}"
        for path in MODULES
        if path not in allowed
        for line, value in _strings(ast.parse(path.read_text(encoding="utf-8")))
        if value in names
    ]
    assert not found, "estimator names outside sim/registry.py:\n" + "\n".join(found)


def test_the_kind_of_an_experiment_is_named_only_in_config():
    kinds = {"fit"}  # "convergence" is also a figure's name
    found = [
        f"{path.relative_to(SIM.parent)}:{line}: {value!r}"
        for path in MODULES
        if (SIM / "config") not in path.parents
        for line, value in _strings(ast.parse(path.read_text(encoding="utf-8")))
        if value in kinds
    ]
    assert not found, "kind names outside sim/config:\n" + "\n".join(found)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SIM.parent)))
def test_functions_are_short_and_shallow(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    too_big = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        said_why = any(WHY in lines[i - 1] for i in (first - 1, node.lineno) if i >= 1)
        length, depth = node.end_lineno - node.lineno + 1, _depth(node)  # decorators not counted
        if (length > MAX_LINES or depth > MAX_DEPTH) and not said_why:
            too_big.append(f"{node.name} (line {node.lineno}): {length} lines, nested {depth} deep")
    assert not too_big, f"{path.name}: " + "; ".join(too_big)


def test_every_pipeline_sends_a_module_level_function_to_workers():
    import pickle

    from sim.pipelines import _PIPELINES

    for pipeline in _PIPELINES.values():
        fn = pipeline.run_task
        assert not hasattr(fn, "__self__"), type(pipeline).__name__  # not a bound method
        assert pickle.loads(pickle.dumps(fn)) is fn


def test_the_fit_values_are_the_registry_fit_estimators_in_order():
    from sim.fitting import FitValues

    assert FitValues._fields == registry.names(registry.FIT)


def test_a_results_folder_of_an_unknown_kind_is_refused():
    from sim.config import KINDS, Experiment, FitExperiment, experiment_type

    assert [experiment_type({"kind": k}) for k in KINDS] == [Experiment, FitExperiment]
    with pytest.raises(ValueError, match="unknown kind of experiment 'markov'"):
        experiment_type({"kind": "markov"})
