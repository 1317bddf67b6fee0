"""The HTTP/1.1 server on the wire: keep-alive, pipelining in order, 100-continue, HEAD, chunked bodies,
limits, deadlines that close slow or idle clients while others are served, and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvloop

from kubegate.server.metrics import Metrics
from kubegate.verify import StaticTokenIndex, Verifier
from kubegate.web.authenticate import Authenticator
from kubegate.web.httpserver.app import HttpApp
from kubegate.web.httpserver.listener import listening
from kubegate.web.httpserver.protocol import Limits
from kubegate.web.request import Request
from kubegate.web.responses import Response
from kubegate.web.routes import Public, Route


@dataclass
class Slow:
    """A route that answers only once `release` is set."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        self.started.set()
        await self.release.wait()
        return Response(body=b"slow done")


async def echo(request: Request) -> Response:
    return Response(body=request.params.get("word", "").encode() + b"|" + request.body, content_type="text/plain")


def app(slow: Slow, metrics: Metrics) -> HttpApp:
    routes = [
        Route("GET", "/echo/{word}", echo, Public()),
        Route("POST", "/echo/{word}", echo, Public(), reads_body=True),
        Route("GET", "/slow", slow.handle, Public()),
    ]
    verifier = Verifier(static_tokens=StaticTokenIndex())
    authenticator = Authenticator(verifier=verifier, ready=lambda: True, observer=metrics)
    return HttpApp(routes, authenticator=authenticator, count_request=metrics.count_request)


LIMITS = Limits(max_body_bytes=1024, max_header_field_bytes=512, idle_timeout=0.4, header_timeout=0.4, body_timeout=0.4)


@contextlib.asynccontextmanager
async def served(slow: Slow, limits: Limits = LIMITS) -> AsyncIterator[tuple[int, Metrics]]:
    metrics = Metrics()
    async with listening(app(slow, metrics), limits=limits, shutdown_timeout=2.0) as listener:
        yield int(listener.addresses[0].rpartition(":")[2]), metrics


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0"))) if status != 100 else b""
    return status, headers, body


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server still sent before it closed the connection; fails if it stays open `within` seconds."""
    return await asyncio.wait_for(reader.read(), within)


async def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async with served(Slow()) as (port, _):
        reader, writer = await connect(port)
        writer.write(
            b"GET /echo/one HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo/two HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
            b"POST /echo/three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        answers = [await read_answer(reader) for _ in range(3)]
        assert [(status, body) for status, _, body in answers] == [
            (200, b"one|"),
            (200, b"two|body"),
            (200, b"three|abcde"),
        ]
        assert all("date" in headers and "connection" not in headers for _, headers, _ in answers)
        writer.close()


async def test_http_1_0_keep_alive_is_said_and_close_is_honoured() -> None:
    async with served(Slow()) as (port, _):
        reader, writer = await connect(port)
        writer.write(b"GET /echo/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = await read_answer(reader)
        assert (status, headers["connection"]) == (200, "keep-alive")
        writer.write(b"GET /echo/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = await read_answer(reader)
        assert (status, headers["connection"], body) == (200, "close", b"b|")
        assert await closed_by_server(reader, 2) == b""


async def test_expect_100_continue_head_and_percent_decoded_parameters() -> None:
    async with served(Slow()) as (port, _):
        reader, writer = await connect(port)
        writer.write(b"POST /echo/a%2Fb HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert (await read_answer(reader))[0] == 100
        writer.write(b"hi")
        assert (await read_answer(reader))[2] == b"a%2Fb|hi"  # an encoded slash splits nothing, decoded or not
        writer.write(b"GET /%65cho/caf%C3%A9%252F HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader))[2] == "café%2F|".encode()  # decoded once, never twice
        writer.write(b"HEAD /echo/a HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/c HTTP/1.1\r\nHost: x\r\n\r\n")
        # HEAD is no route here: 405 with Allow, and no body although Content-Length says how long it is.
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 405 ")
        assert b"Allow: GET,POST" in head
        assert (await read_answer(reader))[2] == b"c|"
        writer.close()


LIMIT_CASES = [
    (b"POST /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n", 413),
    (b"POST /echo/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n" + b"x" * 1025, 413),
    (b"GET /echo/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /echo/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 600 + b"\r\n\r\n", 431),
    (b"GET /echo/a HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"GET /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n", 400),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
]


@pytest.mark.parametrize(("raw", "status"), LIMIT_CASES)
async def test_what_exceeds_a_limit_is_refused_and_the_connection_closed(raw: bytes, status: int) -> None:
    async with served(Slow()) as (port, metrics):
        reader, writer = await connect(port)
        writer.write(raw)
        answer = await closed_by_server(reader, 2)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
        assert b"Connection: close" in answer
        writer.close()
        # The server goes on serving others.
        reader, writer = await connect(port)
        writer.write(b"GET /echo/ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader))[2] == b"ok|"
        writer.close()
    assert f'code="{status}"' in metrics.render()


async def test_an_upgrade_is_answered_as_http_1_1_and_the_connection_closed() -> None:
    async with served(Slow()) as (port, _):
        reader, writer = await connect(port)
        writer.write(
            b"GET /echo/u HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello"
        )
        answer = await closed_by_server(reader, 2)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert b"Connection: close" in answer
        assert answer.endswith(b"u|")
        writer.close()


async def test_idle_slow_header_and_slow_body_clients_are_closed_while_others_are_served() -> None:
    async with served(Slow()) as (port, metrics):
        idle_reader, idle = await connect(port)
        head_reader, slow_head = await connect(port)
        slow_head.write(b"GET /echo/a HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        body_reader, slow_body = await connect(port)
        slow_body.write(b"POST /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        kept_reader, kept = await connect(port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # A client that keeps asking is served all along, on a connection that stays open.
        for _ in range(8):
            kept.write(b"GET /echo/k HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_answer(kept_reader))[2] == b"k|"
            await asyncio.sleep(0.1)
        assert await closed_by_server(idle_reader, 2) == b""
        assert (await closed_by_server(head_reader, 2)).startswith(b"HTTP/1.1 408 ")
        assert (await closed_by_server(body_reader, 2)).startswith(b"HTTP/1.1 408 ")
        # Closed after the bound (0.4 s), swept every 0.1 s: well before the 2 s a wrong bound would take.
        assert loop.time() - started < 2.5
        kept.write(b"GET /echo/k2 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(kept_reader))[2] == b"k2|"
        for writer in (idle, slow_head, slow_body, kept):
            writer.close()
    rendered = metrics.render()
    assert 'route="/echo/{word}",method="POST",code="408"' in rendered
    assert 'code="408"' in rendered


async def test_a_graceful_stop_finishes_the_answer_under_way_and_closes_idle_connections() -> None:
    slow = Slow()
    async with contextlib.AsyncExitStack() as stack:
        port, _ = await stack.enter_async_context(served(slow, Limits(max_body_bytes=1024, max_header_field_bytes=512)))
        busy_reader, busy = await connect(port)
        busy.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        idle_reader, idle = await connect(port)
        idle.write(b"GET /echo/i HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(idle_reader))[2] == b"i|"
        await asyncio.wait_for(slow.started.wait(), 5)
        stopping = asyncio.create_task(stack.aclose())
        assert await closed_by_server(idle_reader, 2) == b""
        with pytest.raises(ConnectionRefusedError):
            await connect(port)
        assert not stopping.done()
        slow.release.set()
        status, headers, body = await read_answer(busy_reader)
        assert (status, headers["connection"], body) == (200, "close", b"slow done")
        await asyncio.wait_for(stopping, 5)
        busy.close()
        idle.close()


def test_the_same_on_uvloop_which_kubegate_server_runs() -> None:
    async def everything() -> None:
        await test_keep_alive_and_pipelined_requests_are_answered_in_order()
        await test_http_1_0_keep_alive_is_said_and_close_is_honoured()
        await test_expect_100_continue_head_and_percent_decoded_parameters()
        for raw, status in LIMIT_CASES:
            await test_what_exceeds_a_limit_is_refused_and_the_connection_closed(raw, status)
        await test_an_upgrade_is_answered_as_http_1_1_and_the_connection_closed()
        await test_idle_slow_header_and_slow_body_clients_are_closed_while_others_are_served()
        await test_a_graceful_stop_finishes_the_answer_under_way_and_closes_idle_connections()

    uvloop.run(everything())


async def test_a_header_value_with_a_line_break_is_a_500_not_a_split_answer() -> None:
    async def splitting(request: Request) -> Response:
        return Response(headers={"X-User": "alice\r\nX-Injected: 1"})

    metrics = Metrics()
    authenticator = Authenticator(
        verifier=Verifier(static_tokens=StaticTokenIndex()), ready=lambda: True, observer=metrics
    )
    routes = [Route("GET", "/split", splitting, Public())]
    served_app = HttpApp(routes, authenticator=authenticator, count_request=metrics.count_request)
    async with listening(served_app, limits=LIMITS, shutdown_timeout=2.0) as listener:
        reader, writer = await connect(int(listener.addresses[0].rpartition(":")[2]))
        writer.write(b"GET /split HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await closed_by_server(reader, 2)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert b"X-Injected" not in answer
