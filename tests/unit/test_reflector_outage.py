"""A reflector through an API outage: it retries often enough to catch up at once when the API returns,
and logs the outage a bounded number of times however long it lasts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubegate.kube import ApiUnavailable, WatchEvent
from kubegate.kube.reflector import MAX_BACKOFF, Reflector


class FlakySource:
    """Lists fail while `down`; a list that succeeds returns no items; watches wait for ever."""

    def __init__(self) -> None:
        self.down = True
        self.lists: list[float] = []

    async def list_all(self, path: str, **_: Any) -> tuple[list[dict[str, Any]], str]:
        self.lists.append(asyncio.get_running_loop().time())
        if self.down:
            raise ApiUnavailable("connection refused")
        return [], "1"

    async def watch(self, path: str, **_: Any) -> AsyncIterator[WatchEvent]:
        await asyncio.Event().wait()
        yield WatchEvent(type="BOOKMARK", object={})  # pragma: no cover - never reached


class Sink:
    def __init__(self) -> None:
        self.synced_at: float | None = None

    async def replace(self, items: list[dict[str, Any]]) -> None:
        pass

    def apply(self, event: WatchEvent) -> None:
        pass

    def synced(self, resource_version: str) -> None:
        self.synced_at = asyncio.get_running_loop().time()

    def stale(self) -> None:
        pass


async def test_an_outage_is_logged_at_its_start_every_report_period_and_at_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="kubegate.kube.reflector")
    source, sink = FlakySource(), Sink()
    reflector = Reflector(
        client=source, path="/x", sink=sink, what="things", min_backoff=0.005, max_backoff=0.01, report_every=0.25
    )
    task = asyncio.create_task(reflector.run())
    try:
        await asyncio.sleep(1.0)
        attempts = len(source.lists)
        source.down = False
        for _ in range(100):
            if sink.synced_at is not None:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert attempts >= 50  # it kept retrying, every few milliseconds here
    records = [r for r in caplog.records if r.name == "kubegate.kube.reflector"]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert (
        warnings[0]
        == "things: Kubernetes API call failed (connection refused); serving the copy in memory and retrying"
    )
    # One line at the start, then one per report period (1 s / 0.25 s), whatever the number of attempts.
    assert 3 <= len(warnings) <= 5, warnings
    assert all("still failing after" in w for w in warnings[1:])
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert infos[0].startswith("things: the Kubernetes API answers again after 1.")
    assert sink.synced_at is not None


async def test_after_a_long_outage_the_next_attempt_is_never_more_than_the_cap_away() -> None:
    source, sink = FlakySource(), Sink()
    reflector = Reflector(client=source, path="/x", sink=sink, what="things", report_every=3600)
    task = asyncio.create_task(reflector.run())
    try:
        await asyncio.sleep(4 * MAX_BACKOFF)  # long enough for the backoff to reach its cap
        source.down = False
        back = asyncio.get_running_loop().time()
        for _ in range(300):
            if sink.synced_at is not None:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.synced_at is not None
    gaps = [b - a for a, b in zip(source.lists, source.lists[1:], strict=False)]
    assert max(gaps) <= MAX_BACKOFF + 0.1
    assert sink.synced_at - back <= MAX_BACKOFF + 0.1
