"""kubegate's routes served on one HTTP stack, for bench/server_stacks.py.

    python bench/stack_candidates.py CANDIDATE PORT TOKENS_FILE

Every candidate serves the same `HttpApp` (the unit tests' in-memory server parts, with the plaintext tokens
of TOKENS_FILE, one a line, loaded as valid static tokens): the stack only turns its request into an
`HttpRequest`, awaits the route's `answer` (authentication, handler, error handling), counts the request as
kubegate's own server does (`HttpApp.record`, access log off) and writes the returned `Response`. Logs are
at WARNING; no access log anywhere.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from multidict import CIMultiDictProxy
from server_harness import SOURCE, Harness

from kubegate.contracts.token_format import hash_token
from kubegate.server.app import build_app, limits
from kubegate.settings import ServerSettings
from kubegate.validation_config.model import TokenEntry
from kubegate.web.httpserver.app import HttpApp
from kubegate.web.httpserver.listener import listening
from kubegate.web.httpserver.request import HttpRequest, header_dict
from kubegate.web.httpserver.routing import Match
from kubegate.web.responses import Response

HOST = "127.0.0.1"
TOKENS_ENV = "KUBEGATE_BENCH_TOKENS"
"""Where granian's worker process, which loads the app by name, finds the tokens file."""
SETTINGS = ServerSettings(insecure_http=True)


def kubegate_app(tokens_file: Path) -> HttpApp:
    """The server's routes over an in-memory config holding every token of `tokens_file`."""
    harness = Harness(SETTINGS)
    now = datetime.now(UTC)
    entries = [
        TokenEntry(
            sha256=hash_token(token),
            token_id=str(uuid.uuid4()),
            name=f"bench-{i:06d}",
            namespace="bench",
            groups=("bench",),
            metadata={"io.kubegate.auth.token.name": f"bench_{i}"},
            created_at=now,
        )
        for i, token in enumerate(tokens_file.read_text().split())
    ]
    harness.config.replace_source(SOURCE, "bench", entries)
    return build_app(harness.parts)


async def answer(
    app: HttpApp,
    *,
    method: str,
    path: str,
    query_string: str,
    headers: CIMultiDictProxy[str],
    read_body: Callable[[], Awaitable[bytes]],
    remote: str,
) -> Response:
    """What kubegate answers to this request: the same work whatever the stack."""
    started = time.monotonic()
    target = app.router.match(method, path)
    if not isinstance(target, Match):
        return app.unmatched(target)
    route = target.target
    request = HttpRequest(
        method=method,
        query_string=query_string,
        headers=headers,
        params=target.params,
        body=await read_body() if route.reads_body else b"",
    )
    answered = route.answer(request)  # the answer itself when it needed no waiting, as kubegate's server does
    response = answered if isinstance(answered, Response) else await answered
    token_id = request.authentication.id if request.authentication is not None else ""
    app.record(
        method, route.label, response.status, seconds=time.monotonic() - started, remote=remote, token_id=token_id
    )
    return response


def header_pairs(response: Response) -> Iterable[tuple[str, str]]:
    if response.content_type is not None:
        yield "Content-Type", response.content_type
    yield from response.headers.items()


# aiohttp: web.Application (one catch-all route; kubegate's router picks the target) or the low-level web.Server.


def aiohttp_handler(app: HttpApp) -> Callable[[web.BaseRequest], Awaitable[web.Response]]:
    async def handle(request: web.BaseRequest) -> web.Response:
        response = await answer(
            app,
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=request.headers,
            read_body=request.read,
            remote=request.remote or "",
        )
        return web.Response(status=response.status, body=response.body, headers=dict(header_pairs(response)))

    return handle


async def serve_aiohttp_application(app: HttpApp, port: int) -> None:
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", aiohttp_handler(app))
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    await asyncio.Event().wait()


async def serve_aiohttp_server(app: HttpApp, port: int) -> None:
    server = web.Server(aiohttp_handler(app), access_log=None)
    await asyncio.get_running_loop().create_server(server, HOST, port)
    await asyncio.Event().wait()


# uvicorn: a raw ASGI app.


def asgi_app(app: HttpApp) -> Callable[..., Awaitable[None]]:
    async def asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        async def read_body() -> bytes:
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    return b"".join(chunks)

        headers = header_dict([(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]])
        client = scope.get("client")
        response = await answer(
            app,
            method=scope["method"],
            path=scope["path"],
            query_string=scope["query_string"].decode("latin-1"),
            headers=headers,
            read_body=read_body,
            remote=client[0] if client else "",
        )
        wire = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in header_pairs(response)]
        wire.append((b"content-length", b"%d" % len(response.body)))
        await send({"type": "http.response.start", "status": response.status, "headers": wire})
        await send({"type": "http.response.body", "body": response.body})

    return asgi


def run_uvicorn(app: HttpApp, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        asgi_app(app),
        host=HOST,
        port=port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        lifespan="off",
        log_level="warning",
    )
    uvicorn.Server(config).run()


# kubegate's own server (web.httpserver), as `kubegate server` runs it.


async def serve_kubegate(app: HttpApp, port: int) -> None:
    async with listening(app, limits=limits(SETTINGS), host=HOST, port=port):
        await asyncio.Event().wait()


# granian: RSGI, one worker process with a single-threaded runtime; it loads `granian_app` by name.


def granian_app() -> Callable[..., Awaitable[None]]:
    app = kubegate_app(Path(os.environ[TOKENS_ENV]))

    async def rsgi(scope: Any, protocol: Any) -> None:
        async def read_body() -> bytes:
            body: bytes = await protocol()
            return body

        response = await answer(
            app,
            method=scope.method,
            path=scope.path,
            query_string=scope.query_string,
            headers=header_dict(list(scope.headers.items())),
            read_body=read_body,
            remote=scope.client.rpartition(":")[0],
        )
        protocol.response_bytes(response.status, list(header_pairs(response)), response.body)

    return rsgi


def run_granian(port: int, tokens_file: Path) -> None:
    from granian.server import Server

    os.environ[TOKENS_ENV] = str(tokens_file.resolve())
    Server(
        "stack_candidates:granian_app",
        address=HOST,
        port=port,
        interface="rsgi",  # type: ignore[arg-type]
        factory=True,
        workers=1,
        runtime_threads=1,
        runtime_mode="st",  # type: ignore[arg-type]
        loop="uvloop",  # type: ignore[arg-type]
        http="1",  # type: ignore[arg-type]
        websockets=False,
        log_level="warning",  # type: ignore[arg-type]
        log_access=False,
        working_dir=Path(__file__).parent,
    ).serve()


ON_LOOP: dict[str, tuple[Callable[[HttpApp, int], Awaitable[None]], Callable[..., None]]] = {
    "aiohttp-app": (serve_aiohttp_application, asyncio.run),
    "aiohttp-app-uvloop": (serve_aiohttp_application, uvloop.run),
    "aiohttp-server-uvloop": (serve_aiohttp_server, uvloop.run),
    "kubegate": (serve_kubegate, uvloop.run),
}
CANDIDATES = (*ON_LOOP, "uvicorn", "granian")


def main() -> int:
    name, port, tokens_file = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    if name == "granian":
        run_granian(port, tokens_file)
        return 0
    app = kubegate_app(tokens_file)
    if name == "uvicorn":
        run_uvicorn(app, port)
        return 0
    serve, run = ON_LOOP[name]
    run(serve(app, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
