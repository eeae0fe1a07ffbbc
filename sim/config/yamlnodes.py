"""YAML text to plain data, with the line of every key path; tags and duplicates refused."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from ..errors import ConfigIssue
from .model import MAX_DEPTH, MAX_NODES, KeyPath

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("null", "bool", "int", "float", "str")}


def _tag(tag: str) -> str:
    return "!!" + tag[len(_STD) :] if tag.startswith(_STD) else tag


def _compose(text: str, source: str) -> tuple[Any, dict[KeyPath, int], list[ConfigIssue]]:
    """Parse YAML text into plain data, a map key-path → line, and issues."""
    issues: list[ConfigIssue] = []
    lines: dict[KeyPath, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        issues.append(ConfigIssue(source, None, "", "invalid YAML: nested too deeply"))
        return None, lines, issues
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        issues.append(ConfigIssue(source, line, "", f"invalid YAML: {problem}"))
        return None, lines, issues
    except yaml.YAMLError as exc:  # reader errors: bad bytes, control characters
        issues.append(ConfigIssue(source, None, "", f"invalid YAML: {exc}"))
        return None, lines, issues
    if node is None:
        return None, lines, issues
    constructor = yaml.constructor.SafeConstructor()
    budget = [MAX_NODES]

    class TooLarge(Exception):
        pass

    def issue(n: yaml.Node, path: KeyPath, msg: str) -> None:
        issues.append(ConfigIssue(source, n.start_mark.line + 1, format_path(path), msg))

    def convert(n: yaml.Node, path: KeyPath) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or len(path) > MAX_DEPTH:
            raise TooLarge(n)
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            if n.tag != _STD + "map":
                issue(n, path, f"the tag {_tag(n.tag)} is not allowed")
                return None
            out: dict[str, Any] = {}
            first: dict[str, int] = {}
            for k, v in n.value:
                if k.tag == _STD + "merge":
                    issue(k, path, "merge keys (<<) are not supported; write the keys out")
                    continue
                if not isinstance(k, yaml.ScalarNode) or k.tag != _STD + "str":
                    issue(k, path, f"keys must be names, not {k.value!r}")
                    continue
                key = k.value
                line = k.start_mark.line + 1
                if key in first:
                    issue(k, path + (key,), f"key given twice (first on line {first[key]})")
                    continue
                first[key] = line
                lines[path + (key,)] = line
                out[key] = convert(v, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            if n.tag != _STD + "seq":
                issue(n, path, f"the tag {_tag(n.tag)} is not allowed")
                return None
            return [convert(v, path + (i,)) for i, v in enumerate(n.value)]
        if n.tag not in _SCALAR_TAGS:
            what = "dates are" if n.tag == _STD + "timestamp" else f"the tag {_tag(n.tag)} is"
            issue(n, path, f"{what} not allowed here; quote the value if it is text")
            return None
        try:
            return constructor.construct_object(n)
        except (yaml.YAMLError, ValueError) as exc:
            issue(n, path, f"cannot read {n.value!r}: {exc}")
            return None

    try:
        return convert(node, ()), lines, issues
    except TooLarge as exc:
        at = exc.args[0].start_mark.line + 1
        what = f"more than {MAX_NODES:,} values (aliases expand)" if budget[0] < 0 else "nested too deeply"
        return (
            None,
            lines,
            [ConfigIssue(source, at, "", f"the document holds {what}; a config is far smaller")],
        )


def format_path(path: Iterable[str | int]) -> str:
    """``("cases", 1, "q")`` → ``"cases[1].q"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _parse_key(key: str) -> KeyPath | None:
    """``"cases[1].q"`` or ``"cases.1.q"`` → ``("cases", 1, "q")``."""
    parts: list[str | int] = []
    for token in re.sub(r"\[(\d+)\]", r".\1", key).split("."):
        if not token:
            return None
        parts.append(int(token) if token.isdigit() else token)
    return tuple(parts) if parts and isinstance(parts[0], str) else None
