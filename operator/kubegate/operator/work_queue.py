"""Keys waiting to be reconciled, now or at a set time, for a fixed pool of workers.

A key is queued at most once and held by at most one worker: a key added while a worker holds it runs
again once that worker is done, so every change is acted on after it happened, and never twice at once.
Each key also has at most one due time (the last one set): one heap serves expiries, rotations, resyncs
and retries of every object, instead of a sleeping task per object.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
RETRY_BACKOFF_CAP = 300.0


def retry_backoff(failures: int) -> float:
    """Seconds before the next attempt after `failures` failures in a row (1 or more): 5 s, doubling, at
    most 5 minutes."""
    return float(min(5.0 * 2 ** (failures - 1), RETRY_BACKOFF_CAP))


class WorkQueue(Generic[K]):
    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        """`clock`: monotonic seconds; the event loop's time unless a test sets one."""
        self._clock = clock
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._held: set[K] = set()
        self._again: set[K] = set()
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._order = 0
        self._signal = asyncio.Event()

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def __len__(self) -> int:
        """Keys waiting now (not those held or due later)."""
        return len(self._ready)

    def add(self, key: K) -> None:
        """Reconcile `key` as soon as a worker is free (after the worker that holds it, if one does)."""
        if key in self._held:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._signal.set()

    def add_at(self, key: K, when: float) -> None:
        """Reconcile `key` at `when` (the queue's clock); replaces the time set before."""
        self._due[key] = when
        self._order += 1
        heapq.heappush(self._heap, (when, self._order, key))
        if len(self._heap) > 2 * len(self._due) + 64:
            # Each new time leaves the old entry behind; drop those now and then.
            self._heap = [(w, o, k) for w, o, k in self._heap if self._due.get(k) == w]
            heapq.heapify(self._heap)
        if self._heap[0][2] == key:
            self._signal.set()

    def due(self, key: K) -> float | None:
        return self._due.get(key)

    def forget(self, key: K) -> None:
        """No more due time for `key` (its object is gone)."""
        self._due.pop(key, None)

    async def get(self) -> K:
        """The next key to reconcile; the caller holds it until `done(key)`."""
        while True:
            self._promote_due()
            if self._ready:
                key = self._ready.popleft()
                self._queued.discard(key)
                self._held.add(key)
                if self._ready:
                    self._signal.set()  # another worker may take the next one
                return key
            self._signal.clear()
            timeout = self._heap[0][0] - self.now() if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._signal.wait(), timeout)

    def done(self, key: K) -> None:
        self._held.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def _promote_due(self) -> None:
        now = self.now()
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == when:
                del self._due[key]
                self.add(key)
