"""Keeps `ConfigState` in line with the validation-config Secrets (through a `Reflector`).

On any API failure the last good copy stays in memory and keeps serving. Shards whose digest annotation
did not change are not decoded again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubegate.contracts.api_paths import path_for
from kubegate.kube import WatchEvent
from kubegate.kube.reflector import MAX_BACKOFF, MIN_BACKOFF, Reflector, Source
from kubegate.state.config import ConfigState
from kubegate.validation_config.shards import DATA_KEY, DIGEST_ANNOTATION, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard

log = logging.getLogger(__name__)

LABEL_SELECTOR = f"{SHARD_LABEL}={SHARD_LABEL_VALUE}"


class ConfigWatcher:
    """The validation config's reflector and the sink that turns shard Secrets into the token index."""

    def __init__(
        self,
        *,
        client: Source,
        namespace: str,
        state: ConfigState,
        min_backoff: float = MIN_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        watch_timeout: int = 300,
    ) -> None:
        self._namespace = namespace
        self._state = state
        self._reflector = Reflector(
            client=client,
            path=path_for(plural="secrets", namespace=namespace),
            sink=self,
            what="validation config",
            label_selector=LABEL_SELECTOR,
            min_backoff=min_backoff,
            max_backoff=max_backoff,
            watch_timeout=watch_timeout,
        )

    @property
    def failures(self) -> int:
        """API failures since start (tests read it)."""
        return self._reflector.failures

    async def run(self) -> None:
        await self._reflector.run()

    async def replace(self, items: list[dict[str, Any]]) -> None:
        present = set()
        for secret in items:
            present.add(secret["metadata"]["name"])
            self._apply(secret)
            await asyncio.sleep(0)  # decoding a shard takes milliseconds: let requests through between shards
        for gone in set(self._state.index.sources()) - present:
            self._state.remove_source(gone)
        log.info(
            "validation config: loaded %d tokens from %d Secrets in %s",
            len(self._state.index),
            len(present),
            self._namespace,
        )

    def apply(self, event: WatchEvent) -> None:
        if event.type == "DELETED":
            self._state.remove_source(event.object["metadata"]["name"])
        else:
            self._apply(event.object)

    def synced(self, resource_version: str) -> None:
        self._state.synced(resource_version)

    def stale(self) -> None:
        self._state.stale()

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
