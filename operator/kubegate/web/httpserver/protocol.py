"""One client connection: bytes in, parsed by httptools, answered in order, with limits and deadlines.

A connection is in one of four phases, and each phase but `HANDLING` has a deadline, checked by the
listener's sweep (one timer for all connections, not one per request):
- `IDLE`: between requests (or before the first); closed silently after `idle_timeout`;
- `HEAD`: a request began and its headers are arriving; answered 408 and closed after `header_timeout`;
- `BODY`: its body is arriving; answered 408 and closed after `body_timeout`;
- `HANDLING`: every request received is being answered; no deadline (the handlers bound their own calls).

Requests pipelined on one connection are answered in the order they came. What exceeds a limit (the
request line, one header, all headers, the body) is refused with its status and the connection closed,
since the rest of its bytes cannot be trusted to frame a next request.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import cast

import httptools

from kubegate.web.httpserver.app import HttpApp, RouteTarget
from kubegate.web.httpserver.request import HttpRequest, header_dict
from kubegate.web.httpserver.routing import Match
from kubegate.web.httpserver.wire import CONTINUE, refusal, serialize
from kubegate.web.responses import Response

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499
"""The status counted and logged for a request whose client went away before its answer (nginx's code)."""
UNMATCHED = "unmatched"
"""The route label of requests no route matched, and of those refused before routing."""


class Phase(enum.Enum):
    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    HANDLING = "handling"


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_body_bytes: int
    max_header_field_bytes: int
    """The longest single header line (name and value)."""
    max_header_bytes: int = 64 * 1024
    """All header lines of one request together."""
    max_headers: int = 100
    max_url_bytes: int = 8 * 1024
    idle_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_pipelined: int = 16
    """Requests received but not yet answered on one connection before it stops reading."""


class _Refused(Exception):  # noqa: N818 - control flow out of a parser callback
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Exchange:
    """One request from its first byte to its answer."""

    __slots__ = (
        "body",
        "body_size",
        "header_bytes",
        "headers",
        "keep_alive",
        "method",
        "query",
        "refused",
        "request",
        "started",
        "target",
        "token_id",
        "url",
    )

    def __init__(self, started: float) -> None:
        self.started = started
        self.url = b""
        self.query = b""
        self.refused = 0
        """The status of a refusal the protocol answers itself; 0: none."""
        self.token_id = ""
        self.request: HttpRequest | None = None
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.method = ""
        self.keep_alive = True
        self.target: Match[RouteTarget] | frozenset[str] | None = None

    @property
    def label(self) -> str:
        return self.target.target.label if isinstance(self.target, Match) else UNMATCHED


class Connections:
    """Every open connection of one listener, and what they share."""

    def __init__(self) -> None:
        self.open: set[HttpProtocol] = set()
        self.stopping = False
        self.date = b""
        self._none_open = asyncio.Event()

    def add(self, connection: HttpProtocol) -> None:
        self.open.add(connection)
        self._none_open.clear()

    def discard(self, connection: HttpProtocol) -> None:
        self.open.discard(connection)
        if not self.open:
            self._none_open.set()

    async def all_closed(self) -> None:
        if self.open:
            await self._none_open.wait()


class HttpProtocol(asyncio.Protocol):
    def __init__(self, app: HttpApp, connections: Connections, limits: Limits) -> None:
        self._app = app
        self._connections = connections
        self._limits = limits
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._remote = ""
        self._parsing: _Exchange | None = None
        self._queue: deque[_Exchange] = deque()
        self._answering: asyncio.Task[None] | None = None
        self._reading = True
        self._writable = True
        self._refused = False
        self.phase = Phase.IDLE
        self.deadline: float | None = None

    # -- the transport's calls ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self._connections.add(self)
        # A connection that sends nothing is as idle as one between requests.
        self.deadline = self._loop.time() + self._limits.idle_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None
        exchange = self._parsing
        if exchange is not None and exchange.target is not None:
            # Hung up mid-body: the route is known, and nothing can answer it.
            self._record(exchange, CLIENT_CLOSED_REQUEST)
        self._parsing = None
        self.deadline = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.status)
            else:
                log.error("HTTP parser callback failed: %s", type(refused).__name__)
                self._refuse(500)
        except httptools.HttpParserUpgrade:
            # An Upgrade (WebSocket, h2c) or CONNECT: the request itself is answered as HTTP/1.1 (a server
            # may ignore Upgrade), but what follows it is another protocol: read no more, close after it.
            if self._parsing is None and self._queue:
                self._queue[-1].keep_alive = False
                self._refused = True
                self._pause()
            else:
                self._refuse(400)
        except httptools.HttpParserError:
            self._refuse(400)

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its requests until it does.
        self._writable = False
        self._pause()

    def resume_writing(self) -> None:
        self._writable = True
        self._resume()

    # -- the parser's calls ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        now = self._loop.time()
        self._parsing = _Exchange(now)
        if self.phase is not Phase.HANDLING:
            self.phase = Phase.HEAD
        self.deadline = now + self._limits.header_timeout

    def on_url(self, url: bytes) -> None:
        exchange = self._parsing
        assert exchange is not None
        exchange.url += url
        if len(exchange.url) > self._limits.max_url_bytes:
            raise _Refused(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self._parsing
        assert exchange is not None
        size = len(name) + len(value)
        exchange.header_bytes += size
        limits = self._limits
        if (
            size > limits.max_header_field_bytes
            or exchange.header_bytes > limits.max_header_bytes
            or len(exchange.headers) >= limits.max_headers
        ):
            raise _Refused(431)
        exchange.headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        exchange = self._parsing
        assert exchange is not None
        parser = self._parser
        exchange.method = parser.get_method().decode("ascii", "replace")
        exchange.keep_alive = parser.should_keep_alive()
        try:
            url = httptools.parse_url(exchange.url)
        except httptools.HttpParserInvalidURLError:
            raise _Refused(400) from None
        exchange.query = url.query or b""
        exchange.target = self._app.router.match(exchange.method, url.path.decode("latin-1"))
        length = _content_length(exchange.headers)
        if length is not None and length > self._limits.max_body_bytes:
            raise _Refused(413)
        if self.phase is not Phase.HANDLING:
            self.phase = Phase.BODY
        self.deadline = self._loop.time() + self._limits.body_timeout
        if length and any(n.lower() == "expect" and v.lower() == "100-continue" for n, v in exchange.headers):
            self._write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        assert exchange is not None
        exchange.body_size += len(body)
        if exchange.body_size > self._limits.max_body_bytes:
            raise _Refused(413)
        exchange.body.append(body)

    def on_message_complete(self) -> None:
        exchange = self._parsing
        assert exchange is not None
        self._parsing = None
        if self._transport is None or self._transport.is_closing():
            return  # pipelined behind a request that closed the connection
        self._queue.append(exchange)
        self.phase = Phase.HANDLING
        self.deadline = None
        if len(self._queue) >= self._limits.max_pipelined:
            self._pause()
        if self._answering is None:
            self._answer_queue()

    # -- answering ------------------------------------------------------------------------------------

    def _answer_queue(self) -> None:
        """Answer the queued requests in order: at once those whose answer needs no waiting (a static token
        verified from memory), in a task from the first that does."""
        queue = self._queue
        while queue:
            exchange = queue[0]
            answer = self._start(exchange)
            if not isinstance(answer, Response):
                self._answering = self._loop.create_task(self._finish_queue(exchange, answer))
                return
            queue.popleft()
            if not self._deliver(exchange, answer):
                break
        self._idle()

    async def _finish_queue(self, exchange: _Exchange, answer: Awaitable[Response]) -> None:
        response = await answer
        if self._queue and self._queue[0] is exchange:
            self._queue.popleft()
        self._answering = None
        if self._deliver(exchange, response):
            self._answer_queue()
        else:
            self._idle()

    def _deliver(self, exchange: _Exchange, response: Response) -> bool:
        """Write the answer; False when the connection is closed or closes after it."""
        if self._transport is None:
            self._record(exchange, CLIENT_CLOSED_REQUEST)
            self._queue.clear()
            return False
        close = not exchange.keep_alive or self._connections.stopping
        self._send(exchange, response, close=close)
        if close:
            self._queue.clear()
        return not close

    def _idle(self) -> None:
        self._resume()
        parsing = self._parsing
        if self._transport is None or self._refused or self._transport.is_closing():
            return
        if parsing is None:
            self.phase = Phase.IDLE
            self.deadline = self._loop.time() + self._limits.idle_timeout
        else:  # the next request is arriving; its deadline runs since its first byte
            self.phase = Phase.HEAD if parsing.target is None else Phase.BODY

    def _start(self, exchange: _Exchange) -> Response | Awaitable[Response]:
        if exchange.refused:
            return refusal(exchange.refused)
        target = exchange.target
        if not isinstance(target, Match):
            return self._app.unmatched(target or frozenset())
        route = target.target
        request = HttpRequest(
            exchange.method,
            exchange.query.decode("utf-8", "surrogateescape"),
            header_dict(exchange.headers),
            target.params,
            b"".join(exchange.body) if route.reads_body else b"",
        )
        exchange.body = []
        exchange.request = request
        return route.answer(request)

    def _send(self, exchange: _Exchange, response: Response, *, close: bool) -> None:
        try:
            data = serialize(
                response,
                date=self._connections.date,
                keep_alive=exchange.keep_alive and self._parser.get_http_version() == "1.0",
                close=close,
                head=exchange.method == "HEAD",
            )
        except ValueError:
            log.exception("an answer to %s %s could not be written", exchange.method, exchange.label)
            response = refusal(500)
            data = serialize(response, date=self._connections.date, keep_alive=False, close=True, head=False)
            close = True
        self._write(data)
        request = exchange.request
        if request is not None and request.authentication is not None:
            exchange.token_id = request.authentication.id
        self._record(exchange, response.status)
        if close:
            self._close()

    def _refuse(self, status: int) -> None:
        """Answer what the parser or a limit refused, then close: the rest of the bytes cannot be framed."""
        exchange = self._parsing or _Exchange(self._loop.time())
        self._parsing = None
        self._refused = True
        self._pause()
        self.deadline = None
        if self._answering is not None:
            # Earlier requests are still being answered: they keep their turn, the refusal comes last.
            exchange.keep_alive = False
            exchange.refused = status
            self._queue.append(exchange)
            return
        self._send(exchange, refusal(status), close=True)

    def expire(self) -> None:
        """The phase's deadline passed: close, answering 408 when a request was under way."""
        if self.phase is Phase.IDLE:
            self._close()
        elif self.phase in (Phase.HEAD, Phase.BODY):
            exchange = self._parsing or _Exchange(self._loop.time())
            self._parsing = None
            self.phase = Phase.IDLE
            self._send(exchange, refusal(408), close=True)

    def shut_down(self) -> None:
        """The server stops: close now if idle, else after the answers under way."""
        if self.phase is Phase.IDLE:
            self._close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # -- plumbing -------------------------------------------------------------------------------------

    def _record(self, exchange: _Exchange, status: int) -> None:
        self._app.record(
            exchange.method or "-",
            exchange.label,
            status,
            seconds=self._loop.time() - exchange.started,
            remote=self._remote,
            token_id=exchange.token_id,
        )

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        self.deadline = None
        if self._transport is not None:
            self._transport.close()

    def _pause(self) -> None:
        if self._reading and self._transport is not None:
            self._reading = False
            self._transport.pause_reading()

    def _resume(self) -> None:
        if (
            not self._reading
            and self._writable
            and self._transport is not None
            and not self._transport.is_closing()
            and len(self._queue) < self._limits.max_pipelined
        ):
            self._reading = True
            self._transport.resume_reading()


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                raise _Refused(400) from None
    return None
