"""What this server knows of the validation config: the token index, whether it is loaded, how fresh it is.

The watcher writes it; handlers read it, and wait on it for a change of their own to arrive. The token
method adds provisional entries for the tokens it created, until the operator's published config carries
them (see `add_provisional`).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable

from kubegate.state.static_tokens import StaticTokenIndex, StaticTokenRecord
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

    # --- written by the token method --------------------------------------------------------------

    def add_provisional(self, entry: TokenEntry) -> StaticTokenRecord:
        """Accept a token this server just created, before the operator publishes it; the published entry
        supersedes it when it arrives."""
        record = self.index.add_provisional(entry)
        self._notify()
        return record

    def is_provisional(self, entry: TokenEntry) -> bool:
        """Whether `entry` is still held provisionally: not yet published, nor dropped."""
        return self.index.provisional(bytes.fromhex(entry.sha256)) is not None

    def drop_provisional(self, token_id: str) -> None:
        """The StaticToken of `token_id` is gone: stop accepting a provisional entry of it."""
        digest = self.index.digest_of(token_id)
        if digest is not None and self.index.drop_provisional(digest):
            self._notify()

    def expire_provisional(self, token_id: str, at: float) -> None:
        """The StaticToken of `token_id` got an expiry through this server: a provisional entry takes it too."""
        if self.index.expire_provisional(token_id, at):
            self._notify()

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
