"""Writes the validation config Secrets from the registry: only dirty shards, only when they changed.

Every write carries the resourceVersion it was computed from, so two writers (an old and a new active
replica during a hand-over) can never overwrite each other's newer content: a conflict reloads the
shard and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubegate.contracts.api_paths import path_for
from kubegate.kube import AlreadyExists, ApiError, ApiUnavailable, Conflict, KubeApi, NotFound
from kubegate.validation_config.registry import Key, Registry
from kubegate.validation_config.shards import (
    DATA_KEY,
    DIGEST_ANNOTATION,
    ENTRIES_ANNOTATION,
    SECRET_TYPE,
    SHARD_INDEX_ANNOTATION,
    SHARD_LABEL,
    SHARD_LABEL_VALUE,
    ShardTooLarge,
    decode_shard,
    encode_shard,
    shard_secret_name,
)

log = logging.getLogger(__name__)
NAME_PREFIX = "kubegate-static-tokens"
MAX_BACKOFF = 30.0
# Shards written at once: a reconcile waits for its shard before it writes Ready, so a burst that dirties
# every shard must not wait for them one after the other.
WRITE_CONCURRENCY = 32


@dataclass
class _Known:
    name: str
    digest: str
    resource_version: str


def _shard_position(secret: dict[str, Any]) -> tuple[int, int] | None:
    """(index, count) from a shard Secret's annotation, or None when it is not one of ours."""
    value = (secret.get("metadata", {}).get("annotations") or {}).get(SHARD_INDEX_ANNOTATION, "")
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit()):
        return None
    return int(index), int(count)


class ConfigWriter:
    def __init__(
        self,
        *,
        client: KubeApi,
        namespace: str,
        registry: Registry,
        write_delay: float,
        list_token_keys: Callable[[], Awaitable[set[Key]]],
        write_interval: float = 0.0,
    ) -> None:
        """`write_delay`: seconds from a change after a quiet spell to the write. `write_interval`: the least
        time from the start of one write round to the next."""
        self._client = client
        self._namespace = namespace
        self.registry = registry
        self._write_delay = write_delay
        self._write_interval = write_interval
        self._list_token_keys = list_token_keys
        self._known: dict[int, _Known] = {}
        self._stale: set[str] = set()
        self._written_generation: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._waiting: dict[int, list[tuple[int, asyncio.Future[None]]]] = {}
        """By shard: the generation each waiter waits for. Hundreds of reconciles wait at once in a burst;
        one Condition for all would wake every one of them on every shard written."""
        self._task: asyncio.Task[None] | None = None

    @property
    def _collection(self) -> str:
        return path_for(plural="secrets", namespace=self._namespace)

    async def start(self) -> None:
        """Load the current shards, drop tokens whose StaticToken is gone, and start writing changes."""
        while True:
            try:
                await self._load()
                existing = await self._list_token_keys()
                for key in self.registry.keys() - existing - self.registry.touched:
                    self.registry.set(key, (), touch=False)
                await self.flush()
                break
            except (ApiUnavailable, Conflict) as exc:
                log.warning("validation config: start-up sync failed (%s); retrying", exc)
                await asyncio.sleep(2.0)
        self._task = asyncio.create_task(self._run(), name="validation-config-writer")

    async def stop(self) -> None:
        """Stop the background writer, writing what is still pending (best effort: we are shutting down)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.registry.dirty:
            try:
                await self.flush()
            except (ApiUnavailable, ApiError, ShardTooLarge) as exc:
                log.error("validation config: pending changes not written at shutdown (%s)", exc)

    def changed(self) -> None:
        """Tell the writer the registry changed; it writes after `write_delay`."""
        self._changed.set()

    async def wait_written(self, key: Key, *, timeout: float) -> bool:
        """Wait until the shard of `key` is written with every change made to it so far.

        Later changes to the shard do not hold the wait: in a burst the shard may never be clean.
        """
        shard = self.registry.shard(key)
        target = self.registry.generation(shard)
        self.changed()
        if self._written_generation.get(shard, 0) >= target:
            return True
        written = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(shard, []).append((target, written))
        try:
            await asyncio.wait_for(written, timeout)
        except TimeoutError:
            return False
        return True

    def _mark_written(self, shard: int, generation: int) -> None:
        self._written_generation[shard] = generation
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, written in self._waiting.pop(shard, []):
            if written.done():  # timed out
                continue
            if target <= generation:
                written.set_result(None)
            else:
                still.append((target, written))
        if still:
            self._waiting[shard] = still

    async def _load(self) -> None:
        secrets, _ = await self._client.list_all(self._collection, label_selector=f"{SHARD_LABEL}={SHARD_LABEL_VALUE}")
        self._known.clear()
        self._stale.clear()
        for secret in secrets:
            name = secret["metadata"]["name"]
            position = _shard_position(secret)
            try:
                entries = decode_shard((secret.get("data") or {}).get(DATA_KEY, ""))
            except ValueError as exc:
                log.error("validation config: Secret %s is unreadable (%s); it will be rewritten", name, exc)
                entries = []
            self.registry.load_all(entries)
            if position is None or position[1] != self.registry.shard_count:
                self._stale.add(name)
                continue
            index = position[0]
            digest = (secret["metadata"].get("annotations") or {}).get(DIGEST_ANNOTATION, "")
            self._known[index] = _Known(name, digest, secret["metadata"]["resourceVersion"])
        if self._stale:
            # A different shard count: write the whole new set, then remove the old one.
            self.registry.dirty.update(range(self.registry.shard_count))

    async def _run(self) -> None:
        backoff = 1.0
        loop = asyncio.get_running_loop()
        last_round = -self._write_interval
        while True:
            await self._changed.wait()
            # In a stream of changes, a round every write_interval: each shard write then carries every change
            # made to the shard since the last, instead of one token's.
            await asyncio.sleep(max(self._write_delay, last_round + self._write_interval - loop.time()))
            self._changed.clear()
            last_round = loop.time()
            try:
                await self.flush()
                backoff = 1.0
            except Conflict as exc:
                log.info("validation config: %s; writing again", exc.message)
                self._changed.set()
            except (ApiUnavailable, ApiError, ShardTooLarge) as exc:
                log.error("validation config: write failed (%s); retrying in %.0fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                self._changed.set()

    async def flush(self) -> None:
        """Write every dirty shard whose content changed, a few at once; then raise the first failure (the
        shards that failed stay dirty)."""
        limit = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def write(shard: int) -> None:
            async with limit:
                generation = self.registry.generation(shard)
                await self._write_shard(shard)
            if self.registry.generation(shard) == generation:
                self.registry.dirty.discard(shard)
            self._mark_written(shard, generation)

        results = await asyncio.gather(*(write(s) for s in sorted(self.registry.dirty)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        for name in sorted(self._stale):
            await self._delete(name)
            self._stale.discard(name)

    async def _write_shard(self, shard: int) -> None:
        count = self.registry.shard_count
        name = shard_secret_name(NAME_PREFIX, shard, count)
        entries = self.registry.shard_entries(shard)
        known = self._known.get(shard)
        if not entries:
            if known is not None:
                await self._delete(name)
                del self._known[shard]
            return
        encoded = encode_shard(entries)
        if known is not None and known.digest == encoded.digest:
            return
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": {
                "name": name,
                "namespace": self._namespace,
                "labels": {SHARD_LABEL: SHARD_LABEL_VALUE, "app.kubernetes.io/managed-by": "kubegate"},
                "annotations": {
                    SHARD_INDEX_ANNOTATION: f"{shard}/{count}",
                    DIGEST_ANNOTATION: encoded.digest,
                    ENTRIES_ANNOTATION: str(encoded.entries),
                },
            },
            "data": {DATA_KEY: encoded.data},
        }
        try:
            if known is None:
                written = await self._client.create(self._collection, body)
            else:
                body["metadata"]["resourceVersion"] = known.resource_version
                written = await self._client.replace(f"{self._collection}/{name}", body)
        except (AlreadyExists, Conflict, NotFound):
            # Someone else wrote (or removed) this shard since we read it: adopt what is there for the
            # tokens we have not reconciled ourselves, and write again on the next round.
            await self._reload(shard, name)
            raise Conflict(status=409, reason="Conflict", message=f"shard {name} changed; reloaded") from None
        self._known[shard] = _Known(name, encoded.digest, written["metadata"]["resourceVersion"])
        log.debug("validation config: wrote %s (%d entries)", name, encoded.entries)

    async def _reload(self, shard: int, name: str) -> None:
        try:
            secret = await self._client.get(f"{self._collection}/{name}")
        except NotFound:
            self._known.pop(shard, None)
            self.registry.load_shard(shard, [])
            return
        entries = decode_shard((secret.get("data") or {}).get(DATA_KEY, ""))
        self.registry.load_shard(shard, entries)
        digest = (secret["metadata"].get("annotations") or {}).get(DIGEST_ANNOTATION, "")
        self._known[shard] = _Known(name, digest, secret["metadata"]["resourceVersion"])
        self.registry.dirty.add(shard)

    async def _delete(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._client.delete(f"{self._collection}/{name}")
