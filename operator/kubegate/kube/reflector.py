"""List a collection, then watch it, forever: every change goes to a sink, every failure is survived.

On an API failure the sink is told the copy is stale (it keeps serving what it has) and the watch
resumes with a capped, jittered backoff; a watch too old to resume (410 Gone) lists everything again.
The server's validation config, the signing keys and the revocation list all stay current this way.

The backoff is capped low (1 s by default) so that a copy catches up within about 2 s of the API
coming back, whatever the length of the outage. Retrying that often must not flood the log: an outage
is logged when it starts, then at most once every `report_every` seconds, and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from kubegate.kube.client import WatchEvent
from kubegate.kube.errors import ApiError, ApiUnavailable, Gone

log = logging.getLogger(__name__)
_SHORT_WATCH = 1.0
MIN_BACKOFF = 0.25
MAX_BACKOFF = 1.0
REPORT_EVERY = 60.0


class Source(Protocol):
    """The two calls a reflector makes; `KubeClient` provides them, tests pass a fake."""

    async def list_all(
        self,
        path: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[dict[str, Any]], str]: ...

    def watch(
        self,
        path: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]: ...


class _Selectors(TypedDict, total=False):
    label_selector: str | None
    field_selector: str


class Sink(Protocol):
    """Where a reflector delivers what it sees."""

    async def replace(self, items: list[dict[str, Any]]) -> None:
        """The whole collection, after a (re)list."""

    def apply(self, event: WatchEvent) -> None:
        """One change (ADDED, MODIFIED, DELETED)."""

    def synced(self, resource_version: str) -> None:
        """The copy is complete and current at `resource_version`."""

    def stale(self) -> None:
        """The connection is lost; the copy ages until the next `synced`."""


@dataclass
class _Outage:
    started: float
    reported: float
    attempts: int = 1


class Reflector:
    def __init__(
        self,
        *,
        client: Source,
        path: str,
        sink: Sink,
        what: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        min_backoff: float = MIN_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        watch_timeout: int = 300,
        report_every: float = REPORT_EVERY,
    ) -> None:
        self._client = client
        self._path = path
        self._sink = sink
        self._what = what
        # Passed only when set: sources that know no field selectors (test fakes) keep working.
        self._selectors: _Selectors = {"label_selector": label_selector}
        if field_selector:
            self._selectors["field_selector"] = field_selector
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._watch_timeout = watch_timeout
        self._report_every = report_every
        self._outage: _Outage | None = None
        self.failures = 0
        """API failures since start (tests read it)."""

    async def run(self) -> None:
        """List and watch until cancelled."""
        resource_version: str | None = None
        backoff = self._min_backoff
        while True:
            try:
                if resource_version is None:
                    items, resource_version = await self._client.list_all(self._path, **self._selectors)
                    self._recovered()
                    await self._sink.replace(items)
                    self._sink.synced(resource_version)
                started = asyncio.get_running_loop().time()
                resource_version = await self._watch(resource_version)
                if asyncio.get_running_loop().time() - started < _SHORT_WATCH:
                    # A watch the server ends at once, again and again, must not become a busy loop.
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                else:
                    backoff = self._min_backoff
            except Gone:
                log.info("%s: the watch is too old; listing again", self._what)
                resource_version = None
            except (ApiUnavailable, ApiError) as exc:
                await self._pause(backoff, f"Kubernetes API call failed ({exc})")
                backoff = min(backoff * 2, self._max_backoff)
            except Exception as exc:  # the watch must outlive any one bad answer
                log.exception("%s: unexpected failure", self._what)
                await self._pause(backoff, f"unexpected {type(exc).__name__}")
                backoff = min(backoff * 2, self._max_backoff)

    async def _pause(self, backoff: float, why: str) -> None:
        self.failures += 1
        self._sink.stale()
        delay = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
        now = asyncio.get_running_loop().time()
        outage = self._outage
        if outage is None:
            self._outage = _Outage(started=now, reported=now)
            log.warning("%s: %s; serving the copy in memory and retrying", self._what, why)
        else:
            outage.attempts += 1
            if now - outage.reported >= self._report_every:
                outage.reported = now
                log.warning(
                    "%s: still failing after %.0fs and %d attempts (%s); serving the copy in memory",
                    self._what,
                    now - outage.started,
                    outage.attempts,
                    why,
                )
        await asyncio.sleep(delay)

    def _recovered(self) -> None:
        """The API answered again: say once how long the outage lasted."""
        outage, self._outage = self._outage, None
        if outage is not None:
            took = asyncio.get_running_loop().time() - outage.started
            log.info("%s: the Kubernetes API answers again after %.1fs; catching up", self._what, took)

    async def _watch(self, resource_version: str) -> str:
        async for event in self._client.watch(
            self._path,
            resource_version=resource_version,
            timeout_seconds=self._watch_timeout,
            **self._selectors,
        ):
            self._recovered()
            resource_version = str((event.object.get("metadata") or {}).get("resourceVersion") or resource_version)
            if event.type in ("ADDED", "MODIFIED", "DELETED"):
                self._sink.apply(event)
            self._sink.synced(resource_version)
        # The server ended the watch on time: the copy was current until now.
        self._recovered()
        self._sink.synced(resource_version)
        return resource_version
