"""What this server knows of the validation config: the token index, whether it is loaded, how fresh it is.

The watcher writes it; handlers read it, and wait on it for a change of their own to arrive.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable

from kubegate.state.static_tokens import StaticTokenIndex
from kubegate.validation_config.model import TokenEntry


class ConfigState:
    def __init__(self, index: StaticTokenIndex, *, clock: Callable[[], float] = time.time) -> None:
        self.index = index
        self._clock = clock
        self.ready = False
        """True once the first full list was loaded; stays True when the API goes away (memory serves)."""
        self.resource_version = ""
        """The Kubernetes resourceVersion the copy in memory is at."""
        self.last_change: float | None = None
        """When the content last changed (POSIX seconds)."""
        self._stale_since: float | None = clock()
        self._changed = asyncio.Event()

    # --- written by the watcher ------------------------------------------------------------------

    def replace_source(self, source: str, version: str, entries: Iterable[TokenEntry]) -> None:
        self.index.replace_source(source, version, entries)
        self._notify()

    def remove_source(self, source: str) -> None:
        if source in self.index.sources():
            self.index.remove_source(source)
            self._notify()

    def synced(self, resource_version: str) -> None:
        """The copy is complete and current at `resource_version` (after a full list, or a watch event)."""
        self.resource_version = resource_version
        self.ready = True
        self._stale_since = None

    def stale(self) -> None:
        """The connection to the API is lost: the copy ages from now on until `synced` is called again."""
        if self._stale_since is None:
            self._stale_since = self._clock()

    # --- read by handlers and metrics -------------------------------------------------------------

    @property
    def age(self) -> float:
        """Seconds since the copy was last known to be current; 0 while the watch is live."""
        return 0.0 if self._stale_since is None else max(0.0, self._clock() - self._stale_since)

    async def wait_until(self, done: Callable[[], bool], *, timeout: float) -> bool:
        """Wait until `done()` holds after some change (or already holds); False when `timeout` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return done()
        return True

    def _notify(self) -> None:
        # The index is long-lived and large (tens of thousands of objects): move it out of the garbage
        # collector's reach, or every full collection walks it and stalls requests for tens of ms.
        gc.freeze()
        self.last_change = self._clock()
        # Wake every current waiter; later waiters wait on a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()
