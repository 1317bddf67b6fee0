"""Keeps `ConfigState` in line with the validation-config Secrets: list, then watch, forever.

On any API failure the last good copy stays in memory and keeps serving; the watch resumes with a
capped, jittered backoff, and a full list replaces everything when the watch is too old (410 Gone).
Shards whose digest annotation did not change are not decoded again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any, Protocol

from kubegate.kube import ApiError, ApiUnavailable, Gone, WatchEvent
from kubegate.kube.client import path_for
from kubegate.server.config_state import ConfigState
from kubegate.validation_config.shards import DATA_KEY, DIGEST_ANNOTATION, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard

log = logging.getLogger(__name__)

LABEL_SELECTOR = f"{SHARD_LABEL}={SHARD_LABEL_VALUE}"
_SHORT_WATCH = 1.0


class SecretSource(Protocol):
    """The two calls the watcher makes; `KubeClient` provides them, tests pass a fake."""

    async def list_all(
        self, path: str, *, label_selector: str | None = None, page_size: int = 500
    ) -> tuple[list[dict[str, Any]], str]: ...

    def watch(
        self, path: str, *, resource_version: str, label_selector: str | None = None, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]: ...


class ConfigWatcher:
    def __init__(
        self,
        *,
        client: SecretSource,
        namespace: str,
        state: ConfigState,
        min_backoff: float = 0.5,
        max_backoff: float = 10.0,
        watch_timeout: int = 300,
    ) -> None:
        self._client = client
        self._path = path_for(plural="secrets", namespace=namespace)
        self._namespace = namespace
        self._state = state
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
                    resource_version = await self._list()
                started = asyncio.get_running_loop().time()
                resource_version = await self._watch(resource_version)
                if asyncio.get_running_loop().time() - started < _SHORT_WATCH:
                    # A watch the server ends at once, again and again, must not become a busy loop.
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                else:
                    backoff = self._min_backoff
            except Gone:
                log.info("validation config: the watch is too old; listing again")
                resource_version = None
            except (ApiUnavailable, ApiError) as exc:
                await self._pause(backoff, f"Kubernetes API call failed ({exc})")
                backoff = min(backoff * 2, self._max_backoff)
            except Exception as exc:  # the watch must outlive any one bad answer
                log.exception("validation config: unexpected failure")
                await self._pause(backoff, f"unexpected {type(exc).__name__}")
                backoff = min(backoff * 2, self._max_backoff)

    async def _pause(self, backoff: float, why: str) -> None:
        self.failures += 1
        self._state.stale()
        delay = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
        log.warning(
            "validation config: %s; serving the copy in memory (age %.0fs), retrying in %.1fs",
            why,
            self._state.age,
            delay,
        )
        await asyncio.sleep(delay)

    async def _list(self) -> str:
        secrets, resource_version = await self._client.list_all(self._path, label_selector=LABEL_SELECTOR)
        present = set()
        for secret in secrets:
            present.add(secret["metadata"]["name"])
            self._apply(secret)
            await asyncio.sleep(0)  # decoding a shard takes milliseconds: let requests through between shards
        for gone in set(self._state.index.sources()) - present:
            self._state.remove_source(gone)
        self._state.synced(resource_version)
        log.info(
            "validation config: loaded %d tokens from %d Secrets in %s at resourceVersion %s",
            len(self._state.index),
            len(present),
            self._namespace,
            resource_version,
        )
        return resource_version

    async def _watch(self, resource_version: str) -> str:
        async for event in self._client.watch(
            self._path,
            resource_version=resource_version,
            label_selector=LABEL_SELECTOR,
            timeout_seconds=self._watch_timeout,
        ):
            version = str((event.object.get("metadata") or {}).get("resourceVersion") or resource_version)
            if event.type in ("ADDED", "MODIFIED"):
                self._apply(event.object)
            elif event.type == "DELETED":
                self._state.remove_source(event.object["metadata"]["name"])
            resource_version = version
            self._state.synced(resource_version)
        # The server ended the watch on time: the copy was current until now.
        self._state.synced(resource_version)
        return resource_version

    def _apply(self, secret: dict[str, Any]) -> None:
        meta = secret.get("metadata") or {}
        name = str(meta.get("name"))
        digest = str((meta.get("annotations") or {}).get(DIGEST_ANNOTATION) or meta.get("resourceVersion"))
        if self._state.index.source_version(name) == digest:
            return
        try:
            entries = decode_shard((secret.get("data") or {}).get(DATA_KEY, ""))
        except ValueError as exc:
            # Keep what this Secret held before: a broken write must not revoke every token in it.
            log.error(
                "validation config: Secret %s/%s is unreadable (%s); keeping its last good copy",
                self._namespace,
                name,
                exc,
            )
            return
        self._state.replace_source(name, digest, entries)
        log.debug("validation config: %s now holds %d tokens", name, len(entries))
