"""YAML text to plain data, with the line of every key path; tags and duplicates refused."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

import yaml

from ..errors import ConfigIssue
from .model import MAX_DEPTH, MAX_NODES, KeyPath

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("null", "bool", "int", "float", "str")}


def _tag(tag: str) -> str:
    return "!!" + tag[len(_STD) :] if tag.startswith(_STD) else tag


class Composed(NamedTuple):
    """A YAML document read into plain data.

    Attributes
    ----------
    data : object
        The document as plain dicts, lists and scalars (None if unreadable).
    lines : dict
        The line of every key path read, for locating later issues.
    issues : list of sim.errors.ConfigIssue
        What was refused while reading: bad YAML, tags, duplicate keys.
    """

    data: Any
    lines: dict[KeyPath, int]
    issues: list[ConfigIssue]


def _compose(text: str, source: str) -> Composed:
    """Parse YAML text into plain data, a map key-path → line, and issues."""
    issues: list[ConfigIssue] = []
    node = _parse(text, source, issues)
    if node is None:
        return Composed(None, {}, issues)
    sizes: dict[int, int] = {}
    if _expanded_size(node, sizes, 0) > MAX_NODES:  # refused before converting millions of values
        return Composed(None, {}, [_too_large(source, _exhausted_at(node, MAX_NODES, sizes), "values")])
    converter = _Converter(source)
    try:
        return Composed(converter.convert(node, ()), converter.lines, converter.issues)
    except _TooLarge as exc:
        what = "values" if converter.remaining < 0 else "depth"
        return Composed(None, converter.lines, [_too_large(source, exc.node, what)])


def _too_large(source: str, node: yaml.Node, what: str) -> ConfigIssue:
    """The issue for a document that holds too many values or nests too deeply, at ``node``'s line."""
    held = f"more than {MAX_NODES:,} values (aliases expand)" if what == "values" else "nested too deeply"
    return ConfigIssue(
        source, node.start_mark.line + 1, "", f"the document holds {held}; a config is far smaller"
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [value for _, value in node.value]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


def _expanded_size(node: yaml.Node, sizes: dict[int, int], depth: int) -> int:
    """How many values ``node`` holds once aliases expand; memoised by node in ``sizes``.

    An alias is the same node object as its anchor, so each distinct node is
    counted once: a "billion laughs" document of a few lines costs a few
    steps.  Below :data:`MAX_DEPTH` nothing is counted (the conversion
    refuses that depth itself).
    """
    if id(node) not in sizes:
        below = _children(node) if depth <= MAX_DEPTH else []
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes, depth + 1) for child in below)
    return sizes[id(node)]


def _exhausted_at(node: yaml.Node, budget: int, sizes: dict[int, int]) -> yaml.Node:
    """The node at which a depth-first count of ``budget`` values runs out (as the conversion counts)."""
    while True:
        budget -= 1
        if budget < 0:
            return node
        for child in _children(node):
            if sizes[id(child)] > budget:
                node = child
                break
            budget -= sizes[id(child)]
        else:
            return node


def _parse(text: str, source: str, issues: list[ConfigIssue]) -> yaml.Node | None:
    """Compose YAML text into its node tree, or None (an empty document or an issue)."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        issues.append(ConfigIssue(source, None, "", "invalid YAML: nested too deeply"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        issues.append(ConfigIssue(source, line, "", f"invalid YAML: {problem}"))
    except yaml.YAMLError as exc:  # reader errors: bad bytes, control characters
        issues.append(ConfigIssue(source, None, "", f"invalid YAML: {exc}"))
    return None


class _TooLarge(Exception):
    """The document holds more than MAX_NODES values or nests deeper than MAX_DEPTH."""

    def __init__(self, node: yaml.Node):
        super().__init__(node)
        self.node = node


class _Converter:
    """Converts a node tree to plain data, noting each key path's line and every issue.

    Attributes
    ----------
    lines : dict
        Key path → line (1-based) where it was first seen.
    issues : list of sim.errors.ConfigIssue
        Tags, merge keys, non-name keys, duplicates and unreadable scalars.
    remaining : int
        How many more values may be converted; aliases expand, so a small
        text can hold a huge document, and this bounds it.
    """

    def __init__(self, source: str):
        self.source = source
        self.lines: dict[KeyPath, int] = {}
        self.issues: list[ConfigIssue] = []
        self.remaining = MAX_NODES
        self._constructor = yaml.constructor.SafeConstructor()

    def issue(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        self.issues.append(ConfigIssue(self.source, node.start_mark.line + 1, format_path(path), message))

    def convert(self, node: yaml.Node, path: KeyPath) -> Any:
        """The plain value of ``node`` found at ``path``; None where an issue was noted."""
        self.remaining -= 1
        if self.remaining < 0 or len(path) > MAX_DEPTH:
            raise _TooLarge(node)
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return self._sequence(node, path)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any] | None:
        if node.tag != _STD + "map":
            self.issue(node, path, f"the tag {_tag(node.tag)} is not allowed")
            return None
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        for k, v in node.value:
            if k.tag == _STD + "merge":
                self.issue(k, path, "merge keys (<<) are not supported; write the keys out")
                continue
            if not isinstance(k, yaml.ScalarNode) or k.tag != _STD + "str":
                self.issue(k, path, f"keys must be names, not {k.value!r}")
                continue
            key = k.value
            line = k.start_mark.line + 1
            if key in first:
                self.issue(k, path + (key,), f"key given twice (first on line {first[key]})")
                continue
            first[key] = line
            self.lines[path + (key,)] = line
            out[key] = self.convert(v, path + (key,))
        return out

    def _sequence(self, node: yaml.SequenceNode, path: KeyPath) -> list[Any] | None:
        if node.tag != _STD + "seq":
            self.issue(node, path, f"the tag {_tag(node.tag)} is not allowed")
            return None
        return [self.convert(v, path + (i,)) for i, v in enumerate(node.value)]

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        if node.tag not in _SCALAR_TAGS:
            what = "dates are" if node.tag == _STD + "timestamp" else f"the tag {_tag(node.tag)} is"
            self.issue(node, path, f"{what} not allowed here; quote the value if it is text")
            return None
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            self.issue(node, path, f"cannot read {node.value!r}: {exc}")
            return None


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
