"""A tiny server run by test_server_workers.py in its own process: `run_workers` with N workers, each
answering /pid with its process id, on one socket bound to a free loopback port (printed first)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

from kubegate.server.metrics import Metrics
from kubegate.server.workers import bind, run_workers
from kubegate.verify import StaticTokenIndex, Verifier
from kubegate.web.authenticate import Authenticator
from kubegate.web.httpserver.app import HttpApp
from kubegate.web.httpserver.listener import listening
from kubegate.web.httpserver.protocol import Limits
from kubegate.web.request import Request
from kubegate.web.responses import Response
from kubegate.web.routes import Public, Route


async def pid(request: Request) -> Response:
    return Response(body=str(os.getpid()).encode())


async def serve(sock: socket.socket) -> None:
    metrics = Metrics()
    authenticator = Authenticator(
        verifier=Verifier(static_tokens=StaticTokenIndex()), ready=lambda: True, observer=metrics
    )
    app = HttpApp(
        [Route("GET", "/pid", pid, Public())], authenticator=authenticator, count_request=metrics.count_request
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with listening(app, limits=Limits(max_body_bytes=1024, max_header_field_bytes=1024), sock=sock):
        await stop.wait()


def serve_one(sock: socket.socket) -> int:
    asyncio.run(serve(sock))
    return 0


if __name__ == "__main__":
    listening_socket = bind("127.0.0.1", 0)
    print(listening_socket.getsockname()[1], flush=True)
    sys.exit(run_workers(int(sys.argv[1]), listening_socket, serve_one))
