"""The work queue: each key once, never in two workers at once, again after a change; due times in order."""

from __future__ import annotations

import asyncio

from kubegate.operator.work_queue import WorkQueue, retry_backoff


async def test_a_key_added_twice_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert [await queue.get(), await queue.get()] == ["a", "b"]
    assert len(queue) == 0


async def test_a_key_added_while_held_comes_again_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    assert len(queue) == 0, "handed to a second worker while the first holds it"
    queue.done("a")
    assert await asyncio.wait_for(queue.get(), 1) == "a"


async def test_due_keys_come_in_time_order_and_the_last_time_set_wins() -> None:
    now = [0.0]
    queue: WorkQueue[str] = WorkQueue(clock=lambda: now[0])
    queue.add_at("late", 2.0)
    queue.add_at("early", 1.0)
    queue.add_at("moved", 0.5)
    queue.add_at("moved", 3.0)
    getting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    assert not getting.done()
    now[0] = 2.5  # the waiting worker looks again when the earliest time was due (1 s here)
    assert [await getting, await queue.get()] == ["early", "late"]
    assert queue.due("moved") == 3.0
    queue.forget("moved")
    assert queue.due("moved") is None


def test_retries_back_off_to_five_minutes() -> None:
    assert [retry_backoff(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert retry_backoff(30) == 300.0
