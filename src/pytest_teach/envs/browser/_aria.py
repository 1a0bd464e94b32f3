"""Reading Playwright's ``aria_snapshot(mode="ai")`` text: elements, refs, and targets.

A snapshot is YAML-like, one element per line::

    - navigation "Account" [ref=e7]:
      - link "Cart (0)" [ref=e8] [cursor=pointer]:
        - /url: cart.html

Plans and scripts name their targets by role and accessible name (``{"role": "link", "name":
"Cart", "match": "prefix"}``); :func:`find` turns such a target into the ``ref`` of the current
snapshot, so the ref is always fresh.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MATCH_MODES",
    "Node",
    "describe_target",
    "find",
    "parse_snapshot",
    "refs_of",
    "resolve_action",
]

MATCH_MODES = ("exact", "prefix", "contains")
_REF = re.compile(r"\[ref=([^\]\s]+)\]")
_HEAD = re.compile(
    r"""^(?P<role>[A-Za-z][\w-]*)
        (?:\ (?P<name>"(?:[^"\\]|\\.)*"|/(?:[^/\\]|\\.)*/))?
        (?P<attrs>(?:\ \[[^\]]*\])*)
        (?::\ ?(?P<text>.*))?$""",
    re.VERBOSE,
)
_ATTR = re.compile(r"\[([^\]=]+)(?:=([^\]]*))?\]")


@dataclass
class Node:
    """One element line of a snapshot."""

    role: str
    name: str
    ref: str | None
    attrs: dict[str, str] = field(default_factory=dict)
    text: str = ""
    depth: int = 0
    parent: int | None = None  # index of the enclosing node
    index: int = 0


def refs_of(snapshot: str) -> set[str]:
    """Every ``ref`` that appears in ``snapshot``."""
    return set(_REF.findall(snapshot))


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def parse_snapshot(snapshot: str) -> list[Node]:
    """The element lines of ``snapshot`` as :class:`Node` objects, in document order.

    ``text:`` and ``/url:`` property lines are skipped; a node's ``parent`` is the index of the
    closest less-indented node.
    """
    nodes: list[Node] = []
    stack: list[tuple[int, int]] = []  # (indent, node index)
    for raw in snapshot.splitlines():
        stripped = raw.lstrip(" ")
        if not stripped.startswith("- "):
            continue
        indent = len(raw) - len(stripped)
        body = stripped[2:].rstrip()
        if body.startswith("'"):
            end = body.rfind("'")
            if end > 0:
                rest = body[end + 1 :]
                body = body[1:end].replace("''", "'") + rest
        match = _HEAD.match(body)
        if match is None or match.group("role") in ("text",):
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        attrs = {k: (v or "") for k, v in _ATTR.findall(match.group("attrs") or "")}
        name = match.group("name") or ""
        text = match.group("text") or ""
        node = Node(
            role=match.group("role"),
            name=_unquote(name) if name.startswith('"') else name,
            ref=attrs.pop("ref", None),
            attrs=attrs,
            text=_unquote(text) if text else "",
            depth=indent // 2,
            parent=stack[-1][1] if stack else None,
            index=len(nodes),
        )
        nodes.append(node)
        stack.append((indent, node.index))
    return nodes


def _norm(text: str) -> str:
    return " ".join(text.split())


def _name_matches(node: Node, name: str | None, mode: str) -> bool:
    if name is None:
        return True
    have, want = _norm(node.name or node.text), _norm(name)
    if mode == "exact":
        return have == want
    if mode == "prefix":
        return have.startswith(want)
    return want.lower() in have.lower()


def _inside(nodes: list[Node], node: Node, container: Mapping[str, Any]) -> bool:
    parent = node.parent
    while parent is not None:
        candidate = nodes[parent]
        if candidate.role == container.get("role") and _name_matches(
            candidate, container.get("name"), container.get("match", "exact")
        ):
            return True
        parent = candidate.parent
    return False


def find(nodes: list[Node], target: Mapping[str, Any]) -> Node | None:
    """The node ``target`` names, or None.

    ``target`` has ``role`` and optionally ``name`` (the accessible name, else the node's text),
    ``match`` (``exact``, ``prefix`` or ``contains``; default exact), ``within`` (a target for
    an enclosing node) and ``nth`` (which of several matches, default 0). Only nodes that carry
    a ``ref`` can be targets.
    """
    role = target.get("role")
    name = target.get("name")
    mode = target.get("match", "exact")
    if mode not in MATCH_MODES:
        raise ValueError(f"target match {mode!r}: use one of {', '.join(MATCH_MODES)}")
    within = target.get("within")
    hits = [
        n
        for n in nodes
        if n.ref is not None
        and (role is None or n.role == role)
        and _name_matches(n, name, mode)
        and (within is None or _inside(nodes, n, within))
    ]
    nth = int(target.get("nth", 0))
    return hits[nth] if 0 <= nth < len(hits) else None


_TARGET_KEYS = ("target", "role", "name", "match", "within", "nth")


def resolve_action(step: Mapping[str, Any], snapshot: str | list[Node]) -> dict[str, Any] | None:
    """An action in the session's format from a plan or script step.

    A step with a ``ref`` is returned as it is; a step naming its target (``"target": {"role",
    "name"}`` or top-level ``role``/``name``) gets the ref of that element in ``snapshot``.
    Returns None when the target is not on the page. Plan-only keys (``decoy``, ``note``...)
    are dropped.
    """
    action = {
        k: v
        for k, v in step.items()
        if k not in _TARGET_KEYS and k not in ("decoy", "note", "answer_pattern")
    }
    target = step.get("target")
    if target is None and "role" in step:
        target = {k: step[k] for k in ("role", "name", "match", "within", "nth") if k in step}
    if target is None or "ref" in step:
        return action
    nodes = parse_snapshot(snapshot) if isinstance(snapshot, str) else snapshot
    node = find(nodes, target)
    if node is None:
        return None
    kind = action.pop("type", None)
    return {"type": kind, "ref": node.ref, **action}


def describe_target(target: Mapping[str, Any]) -> str:
    """``button "Accept all"`` for messages."""
    name = target.get("name")
    return (
        f'{target.get("role", "element")} "{name}"'
        if name is not None
        else str(target.get("role", "element"))
    )
