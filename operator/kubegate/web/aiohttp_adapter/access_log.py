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

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from kubegate.web.aiohttp_adapter.app import AUTHENTICATION, route_of

LOGGER_NAME = "kubegate.access"
FLUSH_INTERVAL = 0.2
MAX_BUFFERED_LINES = 512
_now = time.time  # `log` has a parameter named time


class AccessLogSink:
    """Collects access-log lines and writes them out together, at least every `FLUSH_INTERVAL` seconds."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

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


class AccessLogger(AbstractAccessLogger):
    sink: AccessLogSink = AccessLogSink()
    """Set per server by `bound_to`."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        authentication = request.get(AUTHENTICATION)
        self.sink.add(
            f"{self.sink.timestamp(_now())} INFO {LOGGER_NAME}: {request.method} {route_of(request)} {response.status} "
            f"duration_ms={time * 1000:.3f} remote={json.dumps(request.remote or '')} "
            f'token_id="{authentication.id if authentication is not None else ""}"\n'
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    @classmethod
    def bound_to(cls, sink: AccessLogSink) -> type[AccessLogger]:
        return type("BoundAccessLogger", (cls,), {"sink": sink})
