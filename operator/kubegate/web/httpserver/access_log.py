"""One access-log line per request, without any credential: no headers, no cookies, no query string, no
raw path (the route template stands in for it), and the token id rather than the token.

Lines are formatted like every other kubegate log line (logfmt), but collected and written in batches:
going through `logging` for each request would cost more than verifying the credential.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import TextIO

LOGGER_NAME = "kubegate.access"
FLUSH_INTERVAL = 0.2
MAX_BUFFERED_LINES = 512


class AccessLog:
    """Collects access-log lines and writes them out together, at least every `FLUSH_INTERVAL` seconds."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    @staticmethod
    def enabled() -> bool:
        """Whether the `kubegate.access` logger takes INFO (how the access log is switched off)."""
        return logging.getLogger(LOGGER_NAME).isEnabledFor(logging.INFO)

    def write(self, method: str, route: str, status: int, *, seconds: float, remote: str, token_id: str) -> None:
        self.add(
            f"{self.timestamp(time.time())} INFO {LOGGER_NAME}: {method} {route} {status} "
            f"duration_ms={seconds * 1000:.3f} remote={json.dumps(remote)} "
            f'token_id="{token_id}"\n'
        )

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= MAX_BUFFERED_LINES:
            self.flush()

    def timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"

    def flush(self) -> None:
        if not self._lines:
            return
        text, self._lines = "".join(self._lines), []
        stream = self._stream or sys.stderr
        stream.write(text)
        stream.flush()

    async def run(self) -> None:
        """Flush every `FLUSH_INTERVAL` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL)
                self.flush()
        finally:
            self.flush()
