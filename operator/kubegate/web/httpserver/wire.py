"""Responses as bytes on the wire (HTTP/1.1), and the refusals the protocol answers on its own."""

from __future__ import annotations

import http
from email.utils import formatdate

from kubegate.web.errors import http_error
from kubegate.web.responses import Response

_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n".encode("ascii")
        _STATUS_LINES[status] = line
    return line


def http_date() -> bytes:
    return f"Date: {formatdate(usegmt=True)}\r\n".encode("ascii")


def serialize(response: Response, *, date: bytes, keep_alive: bool, close: bool, head: bool) -> bytes:
    """`keep_alive`: say so explicitly (an HTTP/1.0 client asked for it); `close`: the connection closes
    after this answer; `head`: the answer to a HEAD request, without its body. ValueError when a header value
    holds a line break."""
    headers = response.wire_headers
    if headers is None:
        headers = response.wire_headers = encode_headers(response)
    body = response.body
    ending = b"Connection: close\r\n\r\n" if close else b"Connection: keep-alive\r\n\r\n" if keep_alive else b"\r\n"
    return b"".join(
        (
            status_line(response.status),
            date,
            b"Content-Length: %d\r\n" % len(body),
            headers,
            ending,
            b"" if head else body,
        )
    )


_PLAIN_HEADERS: dict[str | None, bytes] = {}


def encode_headers(response: Response) -> bytes:
    """The Content-Type and other headers of `response`, encoded."""
    if not response.headers:
        encoded = _PLAIN_HEADERS.get(response.content_type)
        if encoded is None:
            encoded = _PLAIN_HEADERS[response.content_type] = _encode_headers(response)
        return encoded
    return _encode_headers(response)


def _encode_headers(response: Response) -> bytes:
    pairs = list(response.headers.items())
    if response.content_type is not None:
        pairs.insert(0, ("Content-Type", response.content_type))
    lines = []
    for name, value in pairs:
        # A header value built from a client's input must not split the answer (response splitting).
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("utf-8")


def refusal(status: int) -> Response:
    """What the protocol answers when it refuses a request before any route sees it."""
    return http_error(status, _REASONS.get(status, "Bad Request")).response()
