"""Serving an application on a TCP address (TLS optional), with kubegate's access log."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from kubegate.web.aiohttp_adapter import log_filters
from kubegate.web.aiohttp_adapter.access_log import LOGGER_NAME, AccessLogger, AccessLogSink


@dataclass(frozen=True)
class Listening:
    addresses: tuple[str, ...]
    """The bound `host:port`s (a port 0 in the settings became a free port)."""
    access_log: AccessLogSink
    """Run `access_log.run()` while serving; it flushes the lines in batches."""


@asynccontextmanager
async def listening(
    app: web.Application,
    *,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    access_log: bool,
    shutdown_timeout: float,
) -> AsyncIterator[Listening]:
    """Serve `app` until the block ends; then stop taking requests and finish those in flight."""
    log_filters.install()
    sink = AccessLogSink()
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger.bound_to(sink),
        access_log=logging.getLogger(LOGGER_NAME) if access_log else None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
        addresses = tuple(f"{a[0]}:{a[1]}" for a in runner.addresses)
        yield Listening(addresses=addresses, access_log=sink)
    finally:
        await runner.cleanup()
        sink.flush()
