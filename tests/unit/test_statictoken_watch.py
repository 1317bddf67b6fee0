"""StaticTokens reconciled from a watch: what is found at start, changes, deletions, the schedule, and the
API calls they cost (a watch's own echo costs none)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
from fake_kube import FakeKube

from kubegate.contracts.api_paths import path_for
from kubegate.kube import WatchEvent
from kubegate.operator import app, statictoken_watch
from kubegate.operator.statictoken_watch import OLD_FINALIZER
from kubegate.operator.status import Retry
from kubegate.resources.statictoken import StaticToken
from kubegate.settings import OperatorSettings
from kubegate.validation_config.shards import DATA_KEY, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard

NS, OPS = "apps", "kubegate-system"
SETTINGS = OperatorSettings(operator_namespace=OPS, namespaces=[NS], config_shards=2, config_write_delay=0)


class WatchedKube(FakeKube):
    """A FakeKube that also watches: the test pushes the events; reads of StaticTokens are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.events: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self.token_reads = 0

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        if "/statictokens/" in path:
            self.token_reads += 1
        return await super().get(path, **params)

    async def watch(self, path: str, *, resource_version: str, **_: Any) -> AsyncIterator[WatchEvent]:
        while True:
            yield await self.events.get()

    def add(self, name: str, **meta: Any) -> dict[str, Any]:
        return self.put(
            StaticToken.path(namespace=NS, name=name),
            {
                "apiVersion": StaticToken.api_version,
                "kind": StaticToken.kind,
                "metadata": {"name": name, "namespace": NS, "generation": 1, **meta},
                "spec": {},
            },
        )

    def token(self, name: str) -> dict[str, Any]:
        return self.objects[StaticToken.path(namespace=NS, name=name)]

    def ready(self, name: str) -> bool:
        conditions = (self.token(name).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def published_names(self) -> set[str]:
        prefix = path_for(plural="secrets", namespace=OPS) + "/"
        return {
            e.name
            for p, o in self.objects.items()
            if p.startswith(prefix) and (o["metadata"].get("labels") or {}).get(SHARD_LABEL) == SHARD_LABEL_VALUE
            for e in decode_shard(o["data"][DATA_KEY])
        }


@contextlib.asynccontextmanager
async def operating(kube: WatchedKube, settings: OperatorSettings = SETTINGS) -> AsyncIterator[app.Operator]:
    operator = app.Operator(settings=settings, client=cast(Any, kube))
    await operator.writer.start()
    task = asyncio.create_task(operator.tokens.run())
    try:
        yield operator
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await operator.writer.stop()


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    for _ in range(int(seconds * 50)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


async def test_tokens_found_at_start_become_ready_and_published_without_reading_them() -> None:
    kube = WatchedKube()
    for name in ("a", "b", "c"):
        kube.add(name)
    async with operating(kube):
        assert await eventually(lambda: all(kube.ready(n) for n in "abc"))
        assert await eventually(lambda: kube.published_names() == {"a", "b", "c"})
    assert kube.token_reads == 0


async def test_the_echo_of_our_own_status_write_costs_no_call() -> None:
    kube = WatchedKube()
    kube.add("a")
    async with operating(kube):
        assert await eventually(lambda: kube.ready("a"))
        writes, reads = kube.writes, kube.token_reads
        kube.events.put_nowait(WatchEvent("MODIFIED", copy.deepcopy(kube.token("a"))))
        await asyncio.sleep(0.3)
        assert (kube.writes, kube.token_reads) == (writes, reads)


async def test_a_change_the_watch_reports_is_reconciled() -> None:
    kube = WatchedKube()
    kube.add("a")
    async with operating(kube):
        assert await eventually(lambda: kube.ready("a"))
        del kube.token("a")["status"]
        changed = kube.put(StaticToken.path(namespace=NS, name="a"), kube.token("a"))
        kube.events.put_nowait(WatchEvent("MODIFIED", changed))
        assert await eventually(lambda: kube.ready("a"))


async def test_the_resync_finds_what_changed_without_an_event() -> None:
    kube = WatchedKube()
    kube.add("a")
    async with operating(kube, SETTINGS.model_copy(update={"resync_interval": "1s"})):
        assert await eventually(lambda: kube.ready("a"))
        # The status is lost (someone replaced it) and no event reaches the operator.
        del kube.token("a")["status"]
        assert await eventually(lambda: kube.ready("a"), seconds=3.0), "not reconciled within the resync interval"


async def test_a_deleted_token_leaves_the_validation_config() -> None:
    kube = WatchedKube()
    kube.add("a")
    kube.add("b")
    async with operating(kube):
        assert await eventually(lambda: kube.published_names() == {"a", "b"})
        gone = kube.objects.pop(StaticToken.path(namespace=NS, name="a"))
        kube.events.put_nowait(WatchEvent("DELETED", gone))
        assert await eventually(lambda: kube.published_names() == {"b"})
        assert kube.ready("b")


async def test_the_finalizer_of_the_older_operator_goes_when_its_token_is_deleted() -> None:
    kube = WatchedKube()
    kube.add("a", finalizers=[OLD_FINALIZER, "example.com/other"])
    async with operating(kube):
        assert await eventually(lambda: kube.published_names() == {"a"})
        kube.token("a")["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        deleting = kube.put(StaticToken.path(namespace=NS, name="a"), kube.token("a"))
        kube.events.put_nowait(WatchEvent("MODIFIED", deleting))
        assert await eventually(lambda: kube.token("a")["metadata"]["finalizers"] == ["example.com/other"])
        assert kube.published_names() == set()


async def test_a_failed_reconcile_is_tried_again_after_a_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statictoken_watch, "retry_backoff", lambda failures: 0.2 * failures)
    kube = WatchedKube()
    kube.add("a")
    async with operating(kube) as operator:
        real = operator.reconciler.reconcile
        calls = 0

        async def api_down_once(namespace: str, name: str, *, body: dict[str, Any] | None = None) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise Retry("the API is down")
            return await real(namespace, name, body=body)

        monkeypatch.setattr(operator.reconciler, "reconcile", api_down_once)
        assert await eventually(lambda: kube.ready("a"))
        assert calls == 2
