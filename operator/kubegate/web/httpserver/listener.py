"""Serving an `HttpApp` on a TCP address (TLS optional): deadlines swept once for all connections, the access
log flushed in batches, and a graceful stop that lets the answers under way finish."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from kubegate.web.httpserver.access_log import AccessLog
from kubegate.web.httpserver.app import HttpApp
from kubegate.web.httpserver.protocol import Connections, HttpProtocol, Limits
from kubegate.web.httpserver.wire import http_date

BACKLOG = 1024


@dataclass(frozen=True)
class Listening:
    addresses: tuple[str, ...]
    """The bound `host:port`s (a port 0 in the settings became a free port)."""
    connections: Connections


@asynccontextmanager
async def listening(
    app: HttpApp,
    *,
    limits: Limits,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    ssl_context: ssl.SSLContext | None = None,
    access_log: AccessLog | None = None,
    shutdown_timeout: float = 10.0,
) -> AsyncIterator[Listening]:
    """Serve `app` on `host:port` (or on the listening socket `sock`, which worker processes share) until the
    block ends; then take no new connection or request, close idle connections, let the answers under way
    finish for up to `shutdown_timeout` seconds, and cut what is left."""
    loop = asyncio.get_running_loop()
    connections = Connections()
    connections.date = http_date()
    app.access_log = access_log

    def protocol() -> HttpProtocol:
        return HttpProtocol(app, connections, limits)

    if sock is not None:
        server = await loop.create_server(protocol, sock=sock, ssl=ssl_context, backlog=BACKLOG)
    else:
        server = await loop.create_server(protocol, host, port, ssl=ssl_context, reuse_address=True, backlog=BACKLOG)
    tasks = [asyncio.create_task(_sweep(connections, limits), name="http-deadlines")]
    if access_log is not None:
        tasks.append(asyncio.create_task(access_log.run(), name="access-log"))
    addresses = tuple(_address(s.getsockname()) for s in server.sockets)
    try:
        yield Listening(addresses=addresses, connections=connections)
    finally:
        server.close()
        connections.stopping = True
        for connection in list(connections.open):
            connection.shut_down()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connections.all_closed(), shutdown_timeout)
        for connection in list(connections.open):
            connection.abort()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        if access_log is not None:
            access_log.flush()


def sweep_interval(limits: Limits) -> float:
    """How often deadlines are checked: a quarter of the shortest timeout, at most a second (the Date
    header is refreshed at the same time)."""
    return max(0.01, min(1.0, limits.idle_timeout / 4, limits.header_timeout / 4, limits.body_timeout / 4))


async def _sweep(connections: Connections, limits: Limits) -> None:
    loop = asyncio.get_running_loop()
    interval = sweep_interval(limits)
    while True:
        await asyncio.sleep(interval)
        connections.date = http_date()
        now = loop.time()
        for connection in list(connections.open):
            deadline = connection.deadline
            if deadline is not None and deadline <= now:
                connection.expire()


def _address(name: object) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        host = str(name[0])
        return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"
    return str(name)
