"""Finding the route of a request: a dictionary for fixed paths, then the templates with parameters.

A template's `{name}` matches one path segment and `{name:.*}` the rest of the path (the only two forms the
routes use). Matching runs on the path with each segment percent-decoded once (`/auth/v1/%76erify` is
`/auth/v1/verify`, as clients and proxies expect), except that an encoded `/` stays `%2F`: it never splits a
segment, and nothing is decoded twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")
ANY_METHOD = "*"
_PARAMETER = re.compile(r"\{(\w+)(?::([^{}]*))?\}")
_REST = ".*"


@dataclass(slots=True)
class Match(Generic[T]):
    """Not frozen (a frozen dataclass takes a microsecond to make); never changed once made. A fixed path's
    match is made once, at start."""

    target: T
    params: dict[str, str]


class Router(Generic[T]):
    """Routes (method, path template) to targets. Adding the same method and template twice is an error."""

    def __init__(self, routes: Iterable[tuple[str, str, T]]) -> None:
        self._fixed: dict[str, dict[str, Match[T]]] = {}
        self._templates: list[tuple[re.Pattern[str], dict[str, T]]] = []
        by_pattern: dict[str, dict[str, T]] = {}
        for method, template, target in routes:
            if _PARAMETER.search(template) is None:
                fixed = self._fixed.setdefault(template, {})
                if method in fixed:
                    raise ValueError(f"two routes for {method} {template}")
                fixed[method] = Match(target, {})
                continue
            pattern = compile_template(template)
            if pattern.pattern not in by_pattern:
                by_pattern[pattern.pattern] = {}
                self._templates.append((pattern, by_pattern[pattern.pattern]))
            methods = by_pattern[pattern.pattern]
            if method in methods:
                raise ValueError(f"two routes for {method} {template}")
            methods[method] = target

    def match(self, method: str, path: str) -> Match[T] | frozenset[str]:
        """The target and parameters for `method` on `path` (as sent); otherwise the methods the path accepts
        (empty: no route has this path, a 404; else a 405 with these in `Allow`)."""
        if "%" in path:
            path = decoded(path)
        fixed = self._fixed.get(path)
        if fixed is not None:
            match = fixed.get(method) or fixed.get(ANY_METHOD)
            if match is not None:
                return match
        allowed = set(fixed or ())
        for pattern, methods in self._templates:
            found = pattern.fullmatch(path)
            if found is None:
                continue
            target = methods.get(method) or methods.get(ANY_METHOD)
            if target is not None:
                return Match(target, found.groupdict())
            allowed |= methods.keys()
        return frozenset(allowed)


def decoded(path: str) -> str:
    """`path` with each segment percent-decoded once, an encoded `/` kept as `%2F`."""
    return "/".join(unquote(segment).replace("/", "%2F") for segment in path.split("/"))


def compile_template(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for parameter in _PARAMETER.finditer(template):
        parts.append(re.escape(template[position : parameter.start()]))
        name, expression = parameter.group(1), parameter.group(2)
        if expression not in (None, _REST):
            raise ValueError(f"{template}: only {{name}} and {{name:.*}} are supported")
        parts.append(f"(?P<{name}>{'.*' if expression == _REST else '[^/]+'})")
        position = parameter.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts))


def label_of(template: str) -> str:
    """The template without its expressions (`/auth/v1/verify/{tail}`): the route label of metrics and logs."""
    return _PARAMETER.sub(lambda m: "{" + m.group(1) + "}", template)
