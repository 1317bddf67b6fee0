"""The config watcher: ready after the first list, follows changes, keeps the last good copy when the API
fails, lists again after 410 Gone, and never decodes an unchanged shard twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from kubegate.contracts.token_format import hash_token
from kubegate.kube import ApiUnavailable, Gone, WatchEvent
from kubegate.state.config import ConfigState
from kubegate.state.config_watch import ConfigWatcher
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.shards import DATA_KEY, DIGEST_ANNOTATION, encode_shard
from kubegate.verify import StaticTokenIndex, token_digest

_CLOSED = object()


class FakeApi:
    """Secrets and a watch stream, with outages on demand."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.version = 100
        self.down = False
        self.gone = False
        self.lists = 0
        self.watches: list[str] = []
        self._events: asyncio.Queue[object] = asyncio.Queue()

    def _secret(self, name: str, tokens: list[str], *, data: str | None = None) -> dict[str, Any]:
        self.version += 1
        entries = [
            TokenEntry(
                sha256=hash_token(t), token_id=str(uuid.uuid4()), name=t, namespace="ns", created_at=datetime.now(UTC)
            )
            for t in tokens
        ]
        encoded = encode_shard(entries)
        return {
            "metadata": {
                "name": name,
                "resourceVersion": str(self.version),
                "annotations": {DIGEST_ANNOTATION: encoded.digest if data is None else "broken"},
            },
            "data": {DATA_KEY: encoded.data if data is None else data},
        }

    def put(self, name: str, tokens: list[str], *, data: str | None = None, quiet: bool = False) -> None:
        kind = "MODIFIED" if name in self.secrets else "ADDED"
        self.secrets[name] = self._secret(name, tokens, data=data)
        if not quiet:
            self._events.put_nowait(WatchEvent(type=kind, object=self.secrets[name]))

    def delete(self, name: str, *, quiet: bool = False) -> None:
        secret = self.secrets.pop(name)
        self.version += 1
        secret["metadata"] = {**secret["metadata"], "resourceVersion": str(self.version)}
        if not quiet:
            self._events.put_nowait(WatchEvent(type="DELETED", object=secret))

    def drop_connection(self) -> None:
        self._events.put_nowait(_CLOSED)

    def emit(self, event: WatchEvent) -> None:
        self._events.put_nowait(event)

    async def list_all(
        self, path: str, *, label_selector: str | None = None, page_size: int = 500
    ) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        if self.down:
            raise ApiUnavailable("connection refused")
        return list(self.secrets.values()), str(self.version)

    async def watch(
        self, path: str, *, resource_version: str, label_selector: str | None = None, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]:
        self.watches.append(resource_version)
        if self.down:
            raise ApiUnavailable("connection refused")
        if self.gone:
            self.gone = False
            raise Gone(status=410, reason="Expired", message="too old resource version")
        while True:
            event = await self._events.get()
            if event is _CLOSED:
                raise ApiUnavailable("connection reset")
            assert isinstance(event, WatchEvent)
            yield event


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def accepts(state: ConfigState, token: str) -> bool:
    return state.index.lookup(token_digest(token)) is not None


@pytest.fixture
async def running() -> AsyncIterator[tuple[FakeApi, ConfigState, ConfigWatcher, Clock]]:
    api, clock = FakeApi(), Clock()
    state = ConfigState(StaticTokenIndex(), clock=clock)
    watcher = ConfigWatcher(client=api, namespace="kubegate-system", state=state, min_backoff=0.01, max_backoff=0.05)
    api.put("shard-0", ["a", "b"], quiet=True)
    task = asyncio.create_task(watcher.run())
    yield api, state, watcher, clock
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_not_ready_until_the_first_full_list() -> None:
    api = FakeApi()
    api.down = True
    api.put("shard-0", ["a"], quiet=True)
    state = ConfigState(StaticTokenIndex())
    watcher = ConfigWatcher(client=api, namespace="ns", state=state, min_backoff=0.01, max_backoff=0.02)
    task = asyncio.create_task(watcher.run())
    try:
        await eventually(lambda: api.lists >= 3)
        assert not state.ready
        assert len(state.index) == 0
        api.down = False
        await eventually(lambda: state.ready)
        assert accepts(state, "a")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_follows_additions_changes_and_deletions(
    running: tuple[FakeApi, ConfigState, ConfigWatcher, Clock],
) -> None:
    api, state, _, _ = running
    await eventually(lambda: state.ready)
    assert accepts(state, "a")
    assert accepts(state, "b")
    api.put("shard-1", ["c"])
    await eventually(lambda: accepts(state, "c"))
    api.put("shard-0", ["a"])
    await eventually(lambda: not accepts(state, "b"))
    api.delete("shard-1")
    await eventually(lambda: not accepts(state, "c"))
    assert accepts(state, "a")
    assert state.resource_version == str(api.version)


async def test_unchanged_shard_is_not_applied_again(running: tuple[FakeApi, ConfigState, ConfigWatcher, Clock]) -> None:
    api, state, _, _ = running
    await eventually(lambda: state.ready)
    generation = state.index.generation
    same = dict(api.secrets["shard-0"])
    same["metadata"] = {**same["metadata"], "resourceVersion": "999"}  # a label change, say: same digest
    api.emit(WatchEvent(type="MODIFIED", object=same))
    api.put("shard-1", ["c"])
    await eventually(lambda: accepts(state, "c"))
    assert state.index.generation == generation + 1


async def test_api_outage_keeps_the_copy_and_the_watch_resumes_where_it_stopped(
    running: tuple[FakeApi, ConfigState, ConfigWatcher, Clock],
) -> None:
    api, state, watcher, clock = running
    await eventually(lambda: state.ready)
    assert state.age == 0
    api.down = True
    api.drop_connection()
    await eventually(lambda: watcher.failures >= 3)
    clock.now += 30
    assert state.ready
    assert accepts(state, "a")
    assert state.age == 30
    lists = api.lists
    api.put("shard-1", ["during-outage"])  # queued: delivered once the watch resumes
    api.down = False
    await eventually(lambda: accepts(state, "during-outage"))
    assert state.age == 0
    assert api.lists == lists  # resumed from its resourceVersion, no second full list


async def test_gone_lists_again_and_drops_what_disappeared(
    running: tuple[FakeApi, ConfigState, ConfigWatcher, Clock],
) -> None:
    api, state, _, _ = running
    await eventually(lambda: state.ready)
    api.gone = True
    api.delete("shard-0", quiet=True)
    api.put("shard-2", ["z"], quiet=True)
    api.drop_connection()
    await eventually(lambda: accepts(state, "z") and not accepts(state, "a"))
    assert api.lists == 2


async def test_unreadable_shard_keeps_its_last_good_copy(
    running: tuple[FakeApi, ConfigState, ConfigWatcher, Clock],
) -> None:
    api, state, _, _ = running
    await eventually(lambda: state.ready)
    api.put("shard-0", [], data="bm90IGd6aXA=")
    api.put("shard-1", ["after"])
    await eventually(lambda: accepts(state, "after"))
    assert accepts(state, "a")


async def test_an_unexpected_event_does_not_stop_the_watch(
    running: tuple[FakeApi, ConfigState, ConfigWatcher, Clock],
) -> None:
    api, state, watcher, _ = running
    await eventually(lambda: state.ready)
    api.emit(WatchEvent(type="DELETED", object={"kind": "Status"}))
    await eventually(lambda: watcher.failures >= 1)
    api.put("shard-1", ["later"])
    await eventually(lambda: accepts(state, "later"))


async def test_waiters_wake_on_changes_and_time_out() -> None:
    state = ConfigState(StaticTokenIndex())
    assert not await state.wait_until(lambda: False, timeout=0.05)

    async def change() -> None:
        await asyncio.sleep(0.05)
        state.remove_source("nothing")  # not a change: waiters keep waiting
        entries = [
            TokenEntry(sha256=hash_token("t"), token_id="1", name="n", namespace="ns", created_at=datetime.now(UTC))
        ]
        state.replace_source("s", "1", entries)

    task = asyncio.create_task(change())
    assert await state.wait_until(lambda: accepts(state, "t"), timeout=5)
    await task
