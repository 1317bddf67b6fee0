"""The URL kopf serves the liveness endpoint (/healthz) on, from `--health-address`.

kopf reads the port from the URL and takes a missing or zero port for 80. Port 0 means "any free port"
everywhere else (and lets several operators run side by side in development and tests), so it is
resolved here: a free port is picked by binding it and handed to kopf, and the log names it. Another
process could take that port before kopf binds it again; then kopf fails to start, saying so.

kopf serves the endpoint only while it runs, and it runs only in the replica that holds the lease. A
stand-by answers on the same URL itself while it waits (`serve_while_waiting`): a failing liveness probe
would have Kubernetes restart it over and over, and no replica would be ready to take over.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web

from kubegate.settings import split_address

log = logging.getLogger(__name__)

PATH = "/healthz"


def liveness_endpoint(address: str) -> str:
    """The liveness URL for `address` (HOST:PORT, validated by the settings), with port 0 made a free port."""
    host, port = split_address(address)
    if port == 0:
        port = _free_port(host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}{PATH}"
    log.info("liveness endpoint: %s", url)
    return url


def _free_port(host: str) -> int:
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.bind(sockaddr)
        port: int = probe.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def serve_while_waiting(url: str) -> AsyncIterator[None]:
    """Answer 200 on the liveness URL until the block ends; then kopf can bind the same port."""
    parts = urlsplit(url)

    async def alive(_: web.Request) -> web.Response:
        return web.Response(text="waiting for the lease\n")

    app = web.Application()
    app.router.add_get(parts.path, alive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, parts.hostname, parts.port).start()
        yield
    finally:
        await runner.cleanup()
