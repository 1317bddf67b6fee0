"""Readiness per source: each mirror says whether it holds a complete copy yet. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceStatus:
    name: str
    ready: bool
    required: bool
    """A required source keeps the whole process not ready until it is; the others only their own kind of
    credential (a client token before the signing keys are loaded gets 503, not 401)."""


class Readiness:
    def __init__(self) -> None:
        self._sources: list[tuple[str, Callable[[], bool], bool]] = []

    def add(self, name: str, ready: Callable[[], bool], *, required: bool) -> None:
        self._sources.append((name, ready, required))

    def statuses(self) -> list[SourceStatus]:
        return [SourceStatus(name=name, ready=ready(), required=required) for name, ready, required in self._sources]

    def ready(self) -> bool:
        """Whether every required source is ready."""
        return all(ready() for _, ready, required in self._sources if required)
