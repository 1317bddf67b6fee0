"""What kopf hands a daemon, for unit tests of the operator's daemons."""

from __future__ import annotations

import asyncio


class Stop:
    """What kopf hands a daemon: false until the daemon must stop, and awaitable."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __bool__(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def set(self) -> None:
        self._event.set()
