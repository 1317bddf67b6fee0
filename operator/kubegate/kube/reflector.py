"""List a collection, then watch it, forever: every change goes to a sink, every failure is survived.

On an API failure the sink is told the copy is stale (it keeps serving what it has) and the watch
resumes with a capped, jittered backoff; a watch too old to resume (410 Gone) lists everything again.
The server's validation config, the signing keys and the revocation list all stay current this way.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any, Protocol

from kubegate.kube.client import WatchEvent
from kubegate.kube.errors import ApiError, ApiUnavailable, Gone

log = logging.getLogger(__name__)
_SHORT_WATCH = 1.0


class Source(Protocol):
    """The two calls a reflector makes; `KubeClient` provides them, tests pass a fake."""

    async def list_all(
        self, path: str, *, label_selector: str | None = None, page_size: int = 500
    ) -> tuple[list[dict[str, Any]], str]: ...

    def watch(
        self, path: str, *, resource_version: str, label_selector: str | None = None, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]: ...


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


class Reflector:
    def __init__(
        self,
        *,
        client: Source,
        path: str,
        sink: Sink,
        what: str,
        label_selector: str | None = None,
        min_backoff: float = 0.5,
        max_backoff: float = 10.0,
        watch_timeout: int = 300,
    ) -> None:
        self._client = client
        self._path = path
        self._sink = sink
        self._what = what
        self._label_selector = label_selector
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._watch_timeout = watch_timeout
        self.failures = 0
        """API failures since start; tests and metrics read it."""

    async def run(self) -> None:
        """List and watch until cancelled."""
        resource_version: str | None = None
        backoff = self._min_backoff
        while True:
            try:
                if resource_version is None:
                    items, resource_version = await self._client.list_all(
                        self._path, label_selector=self._label_selector
                    )
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
        log.warning("%s: %s; serving the copy in memory, retrying in %.1fs", self._what, why, delay)
        await asyncio.sleep(delay)

    async def _watch(self, resource_version: str) -> str:
        async for event in self._client.watch(
            self._path,
            resource_version=resource_version,
            label_selector=self._label_selector,
            timeout_seconds=self._watch_timeout,
        ):
            resource_version = str((event.object.get("metadata") or {}).get("resourceVersion") or resource_version)
            if event.type in ("ADDED", "MODIFIED", "DELETED"):
                self._sink.apply(event)
            self._sink.synced(resource_version)
        # The server ended the watch on time: the copy was current until now.
        self._sink.synced(resource_version)
        return resource_version
