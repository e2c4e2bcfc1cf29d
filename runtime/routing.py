"""Route patterns and matching. Pure: no I/O, no framework.

A pattern is ``/``-separated segments: literals, ``:name`` parameters and one trailing
``*name`` wildcard. Matching walks a trie, preferring at each segment a literal, then a
parameter, then a wildcard, and backtracks when a branch dead-ends. That makes the most
specific route win, comparing left to right. Two patterns are ambiguous when they differ
only by parameter names (``/u/:id`` and ``/u/:name``); registering both fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from trace_store.errors import RoutingError

T = TypeVar("T")

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """A parsed route: ``segments`` keep ``:name``/``*name`` markers as written."""

    text: str
    segments: tuple[str, ...]

    @property
    def shape(self) -> tuple[str, ...]:
        """The pattern with parameter names erased: equal shapes are ambiguous."""
        return tuple(":" if s[0] == ":" else "*" if s[0] == "*" else "=" + s for s in self.segments)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(s[1:] for s in self.segments if s[0] in ":*")


def parse_route(text: str) -> RoutePattern:
    """Parse and validate a route pattern, raising :class:`RoutingError` if malformed."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise RoutingError(f"route {text!r} must start with '/'")
    segments = tuple(s for s in text.split("/") if s)
    names: set[str] = set()
    for i, seg in enumerate(segments):
        if seg[0] in ":*":
            name = seg[1:]
            if not _PARAM_NAME.fullmatch(name):
                raise RoutingError(f"route {text!r}: invalid parameter name {name!r}")
            if name in names:
                raise RoutingError(f"route {text!r}: parameter {name!r} appears twice")
            names.add(name)
            if seg[0] == "*" and i != len(segments) - 1:
                raise RoutingError(f"route {text!r}: a '*' wildcard must be the last segment")
        elif any(c in seg for c in ":*"):
            raise RoutingError(f"route {text!r}: ':' and '*' may only start a segment")
    return RoutePattern(text, segments)


def split_path(path: str) -> list[str]:
    """Path segments as matched: empty segments (``//``, trailing ``/``) are ignored."""
    return [s for s in path.split("/") if s]


@dataclass
class _Node(Generic[T]):
    literals: dict[str, _Node[T]] = field(default_factory=dict)
    param: _Node[T] | None = None
    wildcard: tuple[RoutePattern, T] | None = None
    value: T | None = None
    pattern: RoutePattern | None = None


class Router(Generic[T]):
    """Maps (method, path) to a registered value and its path parameters."""

    def __init__(self) -> None:
        self._roots: dict[str, _Node[T]] = {}
        self._shapes: dict[tuple[str, tuple[str, ...]], RoutePattern] = {}

    def add(self, method: str, route: str, value: T) -> RoutePattern:
        """Register ``value``; ambiguous or malformed routes raise :class:`RoutingError`."""
        method = method.upper()
        if method not in METHODS:
            raise RoutingError(f"unsupported HTTP method {method!r} for route {route!r}")
        pattern = parse_route(route)
        taken = self._shapes.get((method, pattern.shape))
        if taken is not None:
            raise RoutingError(
                f"ambiguous routes: {method} {route!r} and {method} {taken.text!r} match the "
                "same paths"
            )
        self._shapes[(method, pattern.shape)] = pattern
        node = self._roots.setdefault(method, _Node())
        for seg in pattern.segments:
            if seg[0] == "*":
                node.wildcard = (pattern, value)
                return pattern
            if seg[0] == ":":
                if node.param is None:
                    node.param = _Node()
                # Each branch keeps its own name: /a/:x/b and /a/:y/c can coexist.
                node = node.param
                continue
            node = node.literals.setdefault(seg, _Node())
        node.value = value
        node.pattern = pattern
        return pattern

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        """The most specific match for ``path`` and its parameters, or ``None``."""
        root = self._roots.get(method)
        if root is None:
            return None
        segments = split_path(path)
        found = self._walk(root, segments, 0)
        if found is None:
            return None
        value, pattern, captured = found
        names = pattern.param_names
        params = dict(zip(names, captured, strict=True))
        return value, params

    def _walk(
        self, node: _Node[T], segments: list[str], i: int
    ) -> tuple[T, RoutePattern, list[str]] | None:
        if i == len(segments):
            if node.pattern is not None and node.value is not None:
                return node.value, node.pattern, []
            if node.wildcard is not None:
                return node.wildcard[1], node.wildcard[0], [""]
            return None
        seg = segments[i]
        child = node.literals.get(seg)
        if child is not None:
            found = self._walk(child, segments, i + 1)
            if found is not None:
                return found
        if node.param is not None:
            found = self._walk(node.param, segments, i + 1)
            if found is not None:
                found[2].insert(0, seg)
                return found
        if node.wildcard is not None:
            return node.wildcard[1], node.wildcard[0], ["/".join(segments[i:])]
        return None
